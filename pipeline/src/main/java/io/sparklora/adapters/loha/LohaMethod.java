package io.sparklora.adapters.loha;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.model.Architecture;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.rng.Random;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoHa ({@link LohaAdapter}): ΔW = (alpha/r)·(w1_a·w1_b) ⊙ (w2_a·w2_b). Trainable: 2·r·(in + out) per layer.
 *
 * <p>PEFT layout ({@code peft_type: LOHA}): per layer {@code base_model.model.<module>.hada_w1_a} [out, r],
 * {@code .hada_w1_b} [r, in], {@code .hada_w2_a}, {@code .hada_w2_b}; the config's scale key is {@code alpha}
 * (not {@code lora_alpha}); {@code rank_dropout} and {@code module_dropout} are its dropouts (LoHa has no input
 * dropout, so the shared {@code dropout} setting must stay 0).
 *
 * <p>PEFT (and LyCORIS) attach LoHa to {@code nn.Linear} only. GPT-2's projections are Conv1D, so a GPT-2 LoHa
 * trains and merges here, but PEFT cannot load it: the adapter directory's {@code spark_lora.json} says so, and
 * {@code spark-lora merge} (or {@code export --to lora}) is the way out. Llama-family layers are nn.Linear and load.
 */
public final class LohaMethod implements AdapterMethod {
    public static final String RANK_DROPOUT = "rank_dropout";
    public static final String MODULE_DROPOUT = "module_dropout";

    @Override public String name() { return "loha"; }

    @Override public String description() { return "LoHa: (alpha/r)·(w1_a·w1_b) ⊙ (w2_a·w2_b), rank up to r², w2_b zero"; }

    @Override public Map<String, String> optionDefaults() { return Map.of(RANK_DROPOUT, "0", MODULE_DROPOUT, "0"); }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        for (String k : List.of(RANK_DROPOUT, MODULE_DROPOUT)) {
            double p = c.doubleOption(k);
            if (!(p >= 0 && p < 1)) throw new IllegalArgumentException(k + " must be in [0, 1), got " + p);
        }
        if (c.dropout() != 0) {
            throw new IllegalArgumentException("adapter type 'loha' has no input dropout (PEFT's LoHa has rank_dropout and module_dropout); got dropout "
                    + c.dropout());
        }
        if (c.rslora()) throw new IllegalArgumentException("adapter type 'loha' scales by alpha/r; rslora does not apply");
    }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty()) throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not loha");
        Random rng = io.sparklora.model.Seeds.rng(seed);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        for (String m : modules) layers.put(m, new LohaAdapter(adapterName, model.linears().get(m), config, rng));
        return new Layers(layers, Map.of());
    }

    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            int[] s = e.getValue();
            io.sparklora.adapters.ParameterCounter.requireRankFits(e.getKey(), s[0], s[1], config.r());
            n += 2L * config.r() * (s[0] + s[1]);
        }
        return n;
    }

    @Override public String peftType() { return "LOHA"; }

    @Override
    public String peftCaveat(Architecture arch) {
        return arch == Architecture.GPT2
                ? "PEFT and LyCORIS attach LoHa to nn.Linear only, and GPT-2's projections are Conv1D: PEFT cannot load this adapter."
                  + " Use it with spark-lora, merge it into the base (spark-lora merge), or convert it (spark-lora export --to lora)."
                : null;
    }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        o.remove("fan_in_fan_out");          // LoHaConfig has no such key
        o.put("r", c.r());
        o.put("alpha", c.alpha());
        o.put(RANK_DROPOUT, c.doubleOption(RANK_DROPOUT));
        o.put(MODULE_DROPOUT, c.doubleOption(MODULE_DROPOUT));
        o.put("use_effective_conv2d", false);
        o.put("init_weights", true);
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
        if (root.has("init_weights") && !root.get("init_weights").asBoolean(true)) {
            throw new IllegalArgumentException(where + ": init_weights=false is not supported");
        }
        Map<String, String> o = new LinkedHashMap<>();
        for (String k : List.of(RANK_DROPOUT, MODULE_DROPOUT)) {
            double p = root.path(k).asDouble(0.0);
            if (p != 0) o.put(k, Double.toString(p));
        }
        return new AdapterConfig("loha", root.path("r").asInt(8), root.path("alpha").asDouble(8), 0.0, base.targetModules(),
                false, base.bias(), "kaiming").withOptions(o);
    }
}
