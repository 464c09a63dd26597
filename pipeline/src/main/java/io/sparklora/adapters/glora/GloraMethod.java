package io.sparklora.adapters.glora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.Architecture;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.rng.Random;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * GLoRA ({@link GloraAdapter}): W' = W0 + W0 ⊙ A + B, b' = b0 + b0 ⊙ D + E + W0·C, each term's support chosen per layer
 * ({@link GloraStructure}). The layer-wise structure search of the GLoRA paper is the Spark stage {@code glora_search},
 * which writes its choice into {@link #LAYER_STRUCTURES}.
 *
 * <p>Settings, as PEFT's {@code GloraConfig}: {@code config_A_B} (lora), {@code config_C} (lora), {@code config_D_E}
 * (constant) give every layer one structure; {@code layer_structures} ({@code module=A,B,C,D,E; ...}, modules matched as
 * targets are) overrides it per layer. {@code alpha} plays no part (GLoRA has no scale), and GLoRA has no dropout;
 * its D and E terms are how it trains biases, so {@code bias} must be none.
 *
 * <p>Trainable per layer: PEFT allocates every tensor whatever the support, 2·r·(in + out) + r·(in + 1) + 2·out
 * (the supports in use read part of them: {@link GloraStructure#effectiveCount}).
 *
 * <p>PEFT layout ({@code peft_type: GLORA}): per layer {@code base_model.model.<module>.glora_Ad} [out, r],
 * {@code .glora_Au} [r, in], {@code .glora_Bd}, {@code .glora_Bu}, {@code .glora_Cd} [in, r], {@code .glora_Cu} [r, 1],
 * {@code .glora_D} [out], {@code .glora_E} [out]; config keys {@code r}, {@code config_A_B}, {@code config_C},
 * {@code config_D_E} ({@code lora} written {@code lora_<r>}, as PEFT's post-init writes it). PEFT's config holds one
 * structure for all layers, with A = B and D = E: when the layers' structures are not that, the file states the most
 * general one (lora, lora, lora, vector, vector) and the tensors are rewritten to mean the same under it, so PEFT
 * computes what spark-lora does; spark-lora's sidecar keeps the per-layer structures.
 */
public final class GloraMethod implements AdapterMethod {
    public static final String CONFIG_A_B = "config_A_B";
    public static final String CONFIG_C = "config_C";
    public static final String CONFIG_D_E = "config_D_E";
    public static final String LAYER_STRUCTURES = "layer_structures";

    @Override public String name() { return "glora"; }

    @Override public String description() { return "GLoRA: W0 + W0⊙A + B, b0 + b0⊙D + E + W0·C, each term lora/vector/constant/none per layer"; }

    @Override
    public Map<String, String> optionDefaults() {
        return Map.of(CONFIG_A_B, "lora", CONFIG_C, "lora", CONFIG_D_E, "constant", LAYER_STRUCTURES, "");
    }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        if (c.dropout() != 0) throw new IllegalArgumentException("adapter type 'glora' has no dropout; got dropout " + c.dropout());
        if (c.rslora()) throw new IllegalArgumentException("adapter type 'glora' has no alpha/r scale, so rslora does not apply");
        if (!c.bias().equals("none")) {
            throw new IllegalArgumentException("adapter type 'glora' trains biases through its D and E terms; bias must be none, got '" + c.bias() + "'");
        }
        uniform(c);
        GloraStructure.parseLayers(c.option(LAYER_STRUCTURES));
    }

    /** The structure every layer has unless {@link #LAYER_STRUCTURES} says otherwise. */
    public static GloraStructure uniform(AdapterConfig c) {
        return GloraStructure.of(c.option(CONFIG_A_B), c.option(CONFIG_C), c.option(CONFIG_D_E));
    }

    /** Each module's structure under {@code c}, in the given order. */
    public static Map<String, GloraStructure> structures(AdapterConfig c, List<String> modules) {
        GloraStructure u = uniform(c);
        Map<String, GloraStructure> layers = GloraStructure.parseLayers(c.option(LAYER_STRUCTURES));
        Map<String, GloraStructure> m = new LinkedHashMap<>();
        for (String module : modules) m.put(module, GloraStructure.forModule(module, layers, u));
        return m;
    }

    /** {@code c} with every listed module given its own structure (what the structure search writes). */
    public static AdapterConfig withStructures(AdapterConfig c, Map<String, GloraStructure> perModule) {
        return c.withOption(LAYER_STRUCTURES, GloraStructure.formatLayers(perModule));
    }

    /**
     * The one structure PEFT's config states for the file: the uniform one when it is PEFT-expressible (A = B, D = E) and
     * every per-layer entry equals it, else the most general one (exact for every layer after the tensors are rewritten).
     */
    static GloraStructure savedStructure(AdapterConfig c) {
        GloraStructure u = uniform(c);
        for (GloraStructure s : GloraStructure.parseLayers(c.option(LAYER_STRUCTURES)).values()) {
            if (!s.equals(u)) return GloraStructure.GENERAL;
        }
        return u;
    }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty()) throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not glora");
        Random rng = io.sparklora.model.Seeds.rng(seed);
        GloraStructure saved = savedStructure(config);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        structures(config, modules).forEach((m, s) ->
                layers.put(m, new GloraAdapter(adapterName, model.linears().get(m), config, s, saved, rng)));
        return new Layers(layers, Map.of());
    }

    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        int r = config.r();
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            int in = e.getValue()[0], out = e.getValue()[1];
            ParameterCounter.requireRankFits(e.getKey(), in, out, r);
            n += 2L * r * (in + out) + (long) r * (in + 1) + 2L * out;
        }
        return n;
    }

    @Override public String peftType() { return "GLORA"; }

    @Override
    public String peftCaveat(Architecture arch) {
        return arch == Architecture.GPT2
                ? "PEFT's GLoRA attaches to nn.Linear only, and GPT-2's projections are Conv1D: PEFT cannot load this adapter."
                  + " Use it with spark-lora, merge it into the base (spark-lora merge), or convert it (spark-lora export --to lora)."
                : null;
    }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        for (String k : List.of("fan_in_fan_out", "bias", "modules_to_save", "layers_to_transform", "layers_pattern")) o.remove(k);
        GloraStructure s = savedStructure(c);
        o.put("r", c.r());
        o.put(CONFIG_A_B, peftName(s.a(), c.r()));
        o.put(CONFIG_C, peftName(s.c(), c.r()));
        o.put(CONFIG_D_E, peftName(s.d(), c.r()));
    }

    private static String peftName(GloraStructure.Support s, int r) {
        return s == GloraStructure.Support.LORA ? "lora_" + r : s.key();
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        int r = root.path("r").asInt(8);
        Map<String, String> o = new LinkedHashMap<>();
        Map<String, String> defaults = optionDefaults();
        for (String k : List.of(CONFIG_A_B, CONFIG_C, CONFIG_D_E)) {
            if (!root.hasNonNull(k)) continue;
            String v = root.get(k).asText().toLowerCase(java.util.Locale.ROOT);
            if (v.startsWith("lora_") && !v.equals("lora_" + r)) {
                throw new IllegalArgumentException(where + ": " + k + " '" + v + "' has a rank other than r = " + r + ", which is not supported");
            }
            if (v.startsWith("lora")) v = "lora";
            if (!v.equals(defaults.get(k))) o.put(k, v);
        }
        AdapterConfig c = new AdapterConfig("glora", r, 1.0, 0.0, base.targetModules(), false, "none", "kaiming").withOptions(o);
        try {
            uniform(c);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
        return c;
    }
}
