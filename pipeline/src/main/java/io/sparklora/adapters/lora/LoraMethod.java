package io.sparklora.adapters.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.adapters.loraplus.LoraPlusGroups;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.ParamGroup;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoRA, with rsLoRA scaling, trainable biases, named adapters and LoRA-drop's shared adapters. The base of
 * the other methods that PEFT stores as a LoRA ({@code peft_type: LORA}): LoRA+, LoRA-FA and DoRA extend it
 * and change only what differs.
 *
 * <p>Setting {@code loraplus_lr_ratio} (λ &gt; 0) gives any of them LoRA+'s optimizer groups, as PEFT's
 * {@code create_loraplus_optimizer} does for any LoRA model.
 */
public class LoraMethod implements AdapterMethod {
    public static final String LORAPLUS_LR_RATIO = "loraplus_lr_ratio";

    @Override public String name() { return "lora"; }

    @Override public String description() { return "LoRA: W0 + (alpha/r)·B·A, A random, B zero"; }

    @Override public Map<String, String> optionDefaults() { return Map.of(LORAPLUS_LR_RATIO, "0"); }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        double ratio = c.doubleOption(LORAPLUS_LR_RATIO);
        if (!(ratio >= 0) || Double.isInfinite(ratio)) throw new IllegalArgumentException(LORAPLUS_LR_RATIO + " must be >= 0 (0: off), got " + ratio);
    }

    /** One layer's adapter with fresh tensors. */
    protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
        return new LoraAdapter(adapterName, layer, config, rng);
    }

    /** One layer's adapter over the tensors of {@code owner} (LoRA-drop's sharing). */
    protected LoraAdapter sharedLayer(String adapterName, Linear layer, AdapterConfig config, LoraAdapter owner) {
        return new LoraAdapter(adapterName, layer, config, owner);
    }

    /** ΔW = (alpha/r)·B·A with both trained (LoRA, LoRA+, DoRA's direction term). */
    @Override public String[] productFactors(AdapterConfig config) { return new String[]{"lora_B", "lora_A"}; }

    /** ΔW = s·B·A is linear in B; subclasses that keep state between steps or normalise W say no through {@link #productFactors} or here. */
    @Override public boolean foldsLinearly(AdapterConfig config) { return productFactors(config) != null; }

    /** LoRA and LoRA-FA layers can share A and B (LoRA-drop); DoRA and methods that override {@link #sharedLayer} to refuse say no. */
    @Override public boolean supportsSharing() { return true; }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        Random rng = io.sparklora.model.Seeds.rng(seed);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        Map<String, LoraAdapter> groupOwner = new LinkedHashMap<>();
        for (String m : modules) {
            Linear l = model.linears().get(m);
            String group = shareGroups.get(m);
            LoraAdapter owner = group == null ? null : groupOwner.get(group);
            LoraAdapter a = owner != null ? sharedLayer(adapterName, l, config, owner) : newLayer(adapterName, l, config, rng);
            if (group != null && owner == null) groupOwner.put(group, a);
            layers.put(m, a);
        }
        return new Layers(layers, Map.of());
    }

    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            int[] s = e.getValue();
            io.sparklora.adapters.ParameterCounter.requireRankFits(e.getKey(), s[0], s[1], config.r());
            n += perLayerTrainable(s[0], s[1], config);
        }
        return n;
    }

    @Override
    public long frozenCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (int[] s : shapes.values()) n += perLayerFrozen(s[0], s[1], config);
        return n;
    }

    /** r·(in + out): A and B. */
    protected long perLayerTrainable(int in, int out, AdapterConfig c) { return (long) c.r() * (in + out); }

    protected long perLayerFrozen(int in, int out, AdapterConfig c) { return 0; }

    @Override
    public List<ParamGroup> optimizerGroups(List<Parameter> trainable, AdapterConfig config, double weightDecay) {
        double ratio = config.doubleOption(LORAPLUS_LR_RATIO);
        return ratio > 0 ? LoraPlusGroups.groups(trainable, ratio, weightDecay) : ParamGroup.byTag(trainable, weightDecay);
    }

    @Override public String peftType() { return "LORA"; }

    /** PEFT's {@code use_dora}: whether this is DoRA. */
    protected boolean usesDora() { return false; }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        o.put("r", c.r());
        o.put("lora_alpha", c.alpha());
        o.put("lora_dropout", c.dropout());
        o.put("use_rslora", c.rslora());
        o.put("use_dora", usesDora());
        if (c.init().equals("gaussian")) o.put("init_lora_weights", "gaussian");
        else o.put("init_lora_weights", true);
        o.putObject("rank_pattern");
        o.putObject("alpha_pattern");
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        for (String key : new String[]{"rank_pattern", "alpha_pattern"}) {
            if (root.has(key) && root.get(key).isObject() && root.get(key).size() > 0) {
                throw new IllegalArgumentException(where + ": " + key + " is not supported yet");
            }
        }
        JsonNode init = root.get("init_lora_weights");
        String initMode = init != null && init.isTextual() && init.asText().equals("gaussian") ? "gaussian" : "kaiming";
        if (init != null && init.isTextual() && !init.asText().equals("gaussian")) {
            throw new IllegalArgumentException(where + ": init_lora_weights '" + init.asText() + "' is not supported (true, false or gaussian)");
        }
        String method = root.path("use_dora").asBoolean(false) ? "dora" : "lora";
        return new AdapterConfig(method, root.path("r").asInt(8), root.path("lora_alpha").asDouble(8), root.path("lora_dropout").asDouble(0.0),
                base.targetModules(), root.path("use_rslora").asBoolean(false), base.bias(), initMode);
    }
}
