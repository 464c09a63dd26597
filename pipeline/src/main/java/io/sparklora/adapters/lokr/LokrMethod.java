package io.sparklora.adapters.lokr;

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
 * LoKr ({@link LokrAdapter}): ΔW = (alpha/r)·(w1 ⊗ w2), the dimensions split by PEFT's {@link Factorization}.
 * Trainable per layer: each factor's full size, or r·(rows + columns) where PEFT's rule decomposes it.
 *
 * <p>PEFT layout ({@code peft_type: LOKR}): per layer {@code base_model.model.<module>.lokr_w1} [a, c] or
 * {@code .lokr_w1_a} [a, r] and {@code .lokr_w1_b} [r, c]; {@code .lokr_w2} [b, d] or {@code .lokr_w2_a},
 * {@code .lokr_w2_b}; no {@code .weight} suffix. Settings: {@code decompose_both} (false), {@code decompose_factor}
 * (−1), {@code rank_dropout}, {@code module_dropout}, {@code rank_dropout_scale}; the scale key is {@code alpha}.
 * Like LoHa, PEFT attaches LoKr to nn.Linear only: a GPT-2 LoKr trains and merges here, and its directory says
 * PEFT cannot load it.
 */
public final class LokrMethod implements AdapterMethod {
    public static final String RANK_DROPOUT = Lycoris.RANK_DROPOUT;
    public static final String MODULE_DROPOUT = Lycoris.MODULE_DROPOUT;
    public static final String RANK_DROPOUT_SCALE = "rank_dropout_scale";
    public static final String DECOMPOSE_BOTH = "decompose_both";
    public static final String DECOMPOSE_FACTOR = "decompose_factor";

    @Override public String name() { return "lokr"; }

    @Override public String description() { return "LoKr: (alpha/r)·(w1 ⊗ w2), factors full or rank-r by PEFT's rule, applied without the out × in matrix"; }

    @Override
    public Map<String, String> optionDefaults() {
        return Map.of(RANK_DROPOUT, "0", MODULE_DROPOUT, "0", RANK_DROPOUT_SCALE, "false", DECOMPOSE_BOTH, "false", DECOMPOSE_FACTOR, "-1");
    }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        Lycoris.validate(c, name());
        c.booleanOption(RANK_DROPOUT_SCALE);
        c.booleanOption(DECOMPOSE_BOTH);
        long f = c.longOption(DECOMPOSE_FACTOR);
        if (f == 0 || f < -1) throw new IllegalArgumentException(DECOMPOSE_FACTOR + " must be -1 or positive, got " + f);
    }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty()) throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not lokr");
        Random rng = io.sparklora.model.Seeds.rng(seed);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        for (String m : modules) layers.put(m, new LokrAdapter(adapterName, model.linears().get(m), config, rng));
        return new Layers(layers, Map.of());
    }

    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (int[] s : shapes.values()) n += LokrAdapter.Layout.of(s[0], s[1], config).trainable(config.r());
        return n;
    }

    @Override public String peftType() { return "LOKR"; }

    @Override
    public String peftCaveat(Architecture arch) { return Lycoris.peftCaveat(arch, "LoKr"); }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        Lycoris.writeConfig(o, c);
        o.put(RANK_DROPOUT_SCALE, c.booleanOption(RANK_DROPOUT_SCALE));
        o.put(DECOMPOSE_BOTH, c.booleanOption(DECOMPOSE_BOTH));
        o.put(DECOMPOSE_FACTOR, c.longOption(DECOMPOSE_FACTOR));
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        Map<String, String> o = Lycoris.readConfig(root, where);
        if (root.path(RANK_DROPOUT_SCALE).asBoolean(false)) o.put(RANK_DROPOUT_SCALE, "true");
        if (root.path(DECOMPOSE_BOTH).asBoolean(false)) o.put(DECOMPOSE_BOTH, "true");
        if (root.path(DECOMPOSE_FACTOR).asLong(-1) != -1) o.put(DECOMPOSE_FACTOR, Long.toString(root.path(DECOMPOSE_FACTOR).asLong(-1)));
        return new AdapterConfig("lokr", root.path("r").asInt(8), root.path("alpha").asDouble(8), 0.0, base.targetModules(),
                false, base.bias(), "kaiming").withOptions(o);
    }
}
