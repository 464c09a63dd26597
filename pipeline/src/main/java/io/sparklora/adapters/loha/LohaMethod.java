package io.sparklora.adapters.loha;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.adapters.lycoris.Lycoris;
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
    public static final String RANK_DROPOUT = Lycoris.RANK_DROPOUT;
    public static final String MODULE_DROPOUT = Lycoris.MODULE_DROPOUT;

    @Override public String name() { return "loha"; }

    @Override public String description() { return "LoHa: (alpha/r)·(w1_a·w1_b) ⊙ (w2_a·w2_b), rank up to r², w2_b zero"; }

    @Override public Map<String, String> optionDefaults() { return Map.of(RANK_DROPOUT, "0", MODULE_DROPOUT, "0"); }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        Lycoris.validate(c, name());
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
    public String peftCaveat(Architecture arch) { return Lycoris.peftCaveat(arch, "LoHa"); }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) { Lycoris.writeConfig(o, c); }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        return new AdapterConfig("loha", root.path("r").asInt(8), root.path("alpha").asDouble(8), 0.0, base.targetModules(),
                false, base.bias(), "kaiming").withOptions(Lycoris.readConfig(root, where));
    }
}
