package io.sparklora.adapters.vera;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * VeRA: one frozen random pair for the whole model ({@link VeraProjections}), two trainable vectors per layer
 * ({@link VeraAdapter}). Trainable: r + out per layer. Frozen: r·maxIn + maxOut·r once.
 *
 * <p>PEFT layout ({@code peft_type: VERA}): per layer {@code base_model.model.<module>.vera_lambda_b} [out] and
 * {@code .vera_lambda_d} [r]; the pair as {@code base_model.vera_A} [r, maxIn] and {@code base_model.vera_B}
 * [maxOut, r] when {@code save_projection} is true. Settings: {@code projection_prng_key} (seeds the pair),
 * {@code save_projection}, {@code d_initial} (λ_d's start); dropout is PEFT's {@code vera_dropout}.
 */
public final class VeraMethod implements AdapterMethod {
    public static final String PRNG_KEY = "projection_prng_key";
    public static final String SAVE_PROJECTION = "save_projection";
    public static final String D_INITIAL = "d_initial";

    @Override public String name() { return "vera"; }

    @Override public String description() { return "VeRA: shared frozen random A, B; trains λ_d [r] and λ_b [out] per layer"; }

    @Override
    public Map<String, String> optionDefaults() { return Map.of(PRNG_KEY, "0", SAVE_PROJECTION, "true", D_INITIAL, "0.1"); }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        c.longOption(PRNG_KEY);
        c.booleanOption(SAVE_PROJECTION);
        double d = c.doubleOption(D_INITIAL);
        if (!Double.isFinite(d)) throw new IllegalArgumentException(D_INITIAL + " must be finite, got " + d);
        if (c.rslora()) throw new IllegalArgumentException("adapter type 'vera' has no alpha/r scale, so rslora does not apply");
    }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty()) throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not vera");
        int maxIn = 0, maxOut = 0;
        for (String m : modules) {
            Linear l = model.linears().get(m);
            maxIn = Math.max(maxIn, l.inFeatures());
            maxOut = Math.max(maxOut, l.outFeatures());
        }
        Linear first = model.linears().get(modules.get(0));
        VeraProjections pair = new VeraProjections(config.r(), maxIn, maxOut, config.longOption(PRNG_KEY), first.baseWeight().dataType());
        double dInitial = config.doubleOption(D_INITIAL);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        for (String m : modules) layers.put(m, new VeraAdapter(adapterName, model.linears().get(m), config, pair, dInitial));
        Map<String, Parameter> shared = new LinkedHashMap<>();
        shared.put("vera_A", pair.a());
        shared.put("vera_B", pair.b());
        return new Layers(layers, shared);
    }

    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (int[] s : shapes.values()) n += config.r() + s[1];
        return n;
    }

    @Override
    public long frozenCount(Map<String, int[]> shapes, AdapterConfig config) {
        int maxIn = 0, maxOut = 0;
        for (int[] s : shapes.values()) {
            maxIn = Math.max(maxIn, s[0]);
            maxOut = Math.max(maxOut, s[1]);
        }
        return (long) config.r() * (maxIn + maxOut);
    }

    @Override public boolean savesSharedTensors(AdapterConfig c) { return c.booleanOption(SAVE_PROJECTION); }

    @Override public String peftType() { return "VERA"; }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        o.put("r", c.r());
        o.put(PRNG_KEY, c.longOption(PRNG_KEY));
        o.put(SAVE_PROJECTION, c.booleanOption(SAVE_PROJECTION));
        o.put("vera_dropout", c.dropout());
        o.put(D_INITIAL, c.doubleOption(D_INITIAL));
        o.put("init_weights", true);
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        if (root.has("init_weights") && !root.get("init_weights").asBoolean(true)) {
            throw new IllegalArgumentException(where + ": init_weights=false is not supported");
        }
        // only settings that differ from the defaults, so a config reads back equal to the one written
        Map<String, String> o = new LinkedHashMap<>();
        if (root.path(PRNG_KEY).asLong(0) != 0) o.put(PRNG_KEY, Long.toString(root.path(PRNG_KEY).asLong(0)));
        if (!root.path(SAVE_PROJECTION).asBoolean(true)) o.put(SAVE_PROJECTION, "false");
        if (root.path(D_INITIAL).asDouble(0.1) != 0.1) o.put(D_INITIAL, Double.toString(root.path(D_INITIAL).asDouble(0.1)));
        return new AdapterConfig("vera", root.path("r").asInt(256), 1.0, root.path("vera_dropout").asDouble(0.0), base.targetModules(),
                false, base.bias(), "kaiming").withOptions(o);
    }
}
