package io.sparklora.adapters;

import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Settings of one adapter. The shared fields follow Hugging Face PEFT's {@code LoraConfig}; what only one
 * method has (DoRA's nothing, VeRA's {@code d_initial}, LoRA+'s {@code loraplus_lr_ratio}, ...) sits in
 * {@code options} under the key configs and PEFT use, and the method ({@link AdapterMethod}) defines,
 * defaults and checks it.
 *
 * @param method        a registered method name ({@link AdapterMethods#names()})
 * @param r             rank
 * @param alpha         scaling numerator: scale = alpha/r, or alpha/√r with {@code rslora}
 * @param dropout       dropout on the adapter's input during training
 * @param targetModules module names matched as PEFT does (exact name or dotted suffix), or one
 *                      regular expression prefixed with {@code re:} matched against the full name
 * @param rslora        rank-stabilised scaling
 * @param bias          "none", "all" (every base bias trains) or "lora_only" (biases of adapted layers train)
 * @param init          "kaiming" (PEFT's default: A ~ U(±1/√in)), "gaussian" (A ~ N(0, 1/r)); B starts at zero
 * @param options       the method's own settings by key (sorted, so the config prints the same everywhere)
 */
public record AdapterConfig(String method, int r, double alpha, double dropout, List<String> targetModules,
                            boolean rslora, String bias, String init, SortedMap<String, String> options) implements java.io.Serializable {

    public static final List<String> BIAS_MODES = List.of("none", "all", "lora_only");
    /**
     * PEFT's {@code trainable_token_indices}: token ids whose embedding rows train beside the adapter
     * ({@link io.sparklora.model.TokenRows}), e.g. {@code 12+40} inline or {@code [12, 40]} in YAML; empty = none.
     * The pipeline also takes {@code labels}: the tokens of the dataset's label prompt and labels.
     */
    public static final String TRAINABLE_TOKENS = "trainable_token_indices";
    /** Settings every method has, with their defaults (they sit in {@code options} beside the method's own). */
    public static final Map<String, String> COMMON_OPTIONS = Map.of(TRAINABLE_TOKENS, "");
    public static final List<String> INIT_MODES = List.of("kaiming", "gaussian");

    public AdapterConfig {
        method = method.toLowerCase(Locale.ROOT);
        if (r <= 0) throw new IllegalArgumentException("adapter rank r must be positive, got " + r);
        if (dropout < 0 || dropout >= 1) throw new IllegalArgumentException("adapter dropout must be in [0, 1), got " + dropout);
        if (!BIAS_MODES.contains(bias)) throw new IllegalArgumentException("bias must be one of " + BIAS_MODES + ", got '" + bias + "'");
        if (!INIT_MODES.contains(init)) throw new IllegalArgumentException("init must be one of " + INIT_MODES + ", got '" + init + "'");
        targetModules = List.copyOf(targetModules);
        options = Collections.unmodifiableSortedMap(new TreeMap<>(options));
    }

    public AdapterConfig(String method, int r, double alpha, double dropout, List<String> targetModules, boolean rslora, String bias, String init) {
        this(method, r, alpha, dropout, targetModules, rslora, bias, init, new TreeMap<>());
    }

    public static AdapterConfig lora(int r, double alpha, List<String> targets) {
        return new AdapterConfig("lora", r, alpha, 0.0, targets, false, "none", "kaiming");
    }

    /** A config of {@code method} with the shared settings of LoRA's defaults; the method's options at their defaults. */
    public static AdapterConfig of(String method, int r, double alpha, List<String> targets) {
        return new AdapterConfig(method, r, alpha, 0.0, targets, false, "none", "kaiming");
    }

    public double scale() { return rslora ? alpha / Math.sqrt(r) : alpha / r; }

    /** The method this config selects. */
    public AdapterMethod adapterMethod() { return AdapterMethods.get(method); }

    /** Whether {@code key} is a setting of {@code method}: its own, or one every method has. */
    public static boolean hasSetting(AdapterMethod method, String key) {
        return COMMON_OPTIONS.containsKey(key) || method.optionDefaults().containsKey(key);
    }

    /** An option's value, or the method's default for it. */
    public String option(String key) {
        String v = options.get(key);
        if (v != null) return v;
        if (COMMON_OPTIONS.containsKey(key)) return COMMON_OPTIONS.get(key);
        String d = adapterMethod().optionDefaults().get(key);
        if (d == null) throw new IllegalArgumentException("adapter type '" + method + "' has no setting '" + key + "'");
        return d;
    }

    public double doubleOption(String key) {
        String v = option(key);
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("adapter setting " + key + " must be a number, got '" + v + "'");
        }
    }

    public long longOption(String key) {
        String v = option(key);
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("adapter setting " + key + " must be an integer, got '" + v + "'");
        }
    }

    public boolean booleanOption(String key) {
        String v = option(key).toLowerCase(Locale.ROOT);
        if (!v.equals("true") && !v.equals("false")) throw new IllegalArgumentException("adapter setting " + key + " must be true or false, got '" + v + "'");
        return v.equals("true");
    }

    /** The token ids of {@link #TRAINABLE_TOKENS} (distinct, non-negative), empty when none. */
    public int[] trainableTokenIndices() {
        String v = option(TRAINABLE_TOKENS).replace("[", " ").replace("]", " ").trim();
        if (v.isEmpty()) return new int[0];
        if (v.equals("labels")) {
            throw new IllegalArgumentException(TRAINABLE_TOKENS + ": 'labels' names a dataset's label tokens; the pipeline resolves it, "
                    + "elsewhere give the token ids");
        }
        String[] parts = v.split("[,+\\s]+");
        int[] ids = new int[parts.length];
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(TRAINABLE_TOKENS + " must list token ids, got '" + parts[i] + "' in '" + option(TRAINABLE_TOKENS) + "'");
            }
            if (ids[i] < 0) throw new IllegalArgumentException(TRAINABLE_TOKENS + ": token id " + ids[i] + " is negative");
            if (!seen.add(ids[i])) throw new IllegalArgumentException(TRAINABLE_TOKENS + ": token id " + ids[i] + " is listed twice");
        }
        return ids;
    }

    /** This config with {@link #TRAINABLE_TOKENS} set to {@code ids} (none: removed). */
    public AdapterConfig withTrainableTokens(int[] ids) {
        TreeMap<String, String> o = new TreeMap<>(options);
        if (ids.length == 0) o.remove(TRAINABLE_TOKENS);
        else o.put(TRAINABLE_TOKENS, java.util.Arrays.stream(ids).mapToObj(Integer::toString).collect(java.util.stream.Collectors.joining(",")));
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, bias, init, o);
    }

    public AdapterConfig withMethod(String m) {
        return new AdapterConfig(m, r, alpha, dropout, targetModules, rslora, bias, init, options);
    }

    public AdapterConfig withOption(String key, String value) {
        TreeMap<String, String> o = new TreeMap<>(options);
        o.put(key, value);
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, bias, init, o);
    }

    public AdapterConfig withOptions(Map<String, String> more) {
        TreeMap<String, String> o = new TreeMap<>(options);
        o.putAll(more);
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, bias, init, o);
    }

    public AdapterConfig withTargets(List<String> targets) {
        return new AdapterConfig(method, r, alpha, dropout, targets, rslora, bias, init, options);
    }

    public AdapterConfig withDropout(double p) {
        return new AdapterConfig(method, r, alpha, p, targetModules, rslora, bias, init, options);
    }

    public AdapterConfig withRslora(boolean on) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, on, bias, init, options);
    }

    public AdapterConfig withBias(String mode) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, mode, init, options);
    }

    public AdapterConfig withInit(String mode) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, bias, mode, options);
    }

    /**
     * The settings a run fills in, as this config holds them: those whose default is empty (AdaLoRA's rank pattern,
     * decided in training and written only into adapter_config.json) and that have a value here.
     */
    public java.util.Map<String, String> filledIn() {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        adapterMethod().optionDefaults().forEach((k, d) -> {
            String v = options().get(k);
            if (d.isEmpty() && v != null && !v.isEmpty()) m.put(k, v);
        });
        return m;
    }
}
