package io.sparklora.adapters;

import io.sparklora.model.Architecture;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Parses the adapter argument of the command line: either a path to a PEFT {@code adapter_config.json}
 * (or the directory holding one), or an inline list such as
 * {@code type=dora,r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05,rslora=true,bias=none,init=gaussian}.
 * Besides the shared keys, a method's own settings are accepted by their config names
 * ({@code type=vera,r=256,d_initial=0.1,projection_prng_key=0}; {@code type=loraplus,loraplus_lr_ratio=16}).
 * PEFT's flags for LoRA variants select the method too: {@code use_dora=true} is {@code type=dora},
 * {@code lora_fa=true} is {@code type=lora_fa}.
 * Missing keys take PEFT's defaults: r=8, alpha=8, dropout 0, the architecture's default targets.
 */
public final class AdapterSpecs {
    static final List<String> SHARED_KEYS = List.of("type", "r", "alpha", "dropout", "targets", "rslora", "bias", "init");
    /** PEFT-style flags that select a method of the LoRA family: key → method when true. */
    private static final Map<String, String> METHOD_FLAGS = Map.of("use_dora", "dora", "lora_fa", "lora_fa");

    private AdapterSpecs() {}

    public static AdapterConfig parse(String spec, Architecture arch) {
        Path p = Path.of(spec);
        if (!spec.contains("=") && (Files.isDirectory(p) || Files.isRegularFile(p))) {
            return PeftAdapterFormat.readConfig(Files.isDirectory(p) ? p.resolve(PeftAdapterFormat.CONFIG_FILE) : p);
        }
        if (!spec.contains("=")) {
            throw new IllegalArgumentException("adapter spec '" + spec + "' is neither an existing adapter_config.json path nor a key=value list "
                    + "(e.g. type=lora,r=8,alpha=16,targets=c_attn)");
        }
        Map<String, String> kv = new LinkedHashMap<>();
        for (String part : spec.split(",")) {
            int eq = part.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("adapter spec part '" + part + "' is not key=value (in '" + spec + "')");
            kv.put(part.substring(0, eq).trim().toLowerCase(Locale.ROOT), part.substring(eq + 1).trim());
        }
        String type = resolveType(kv.getOrDefault("type", "lora"), kv);
        AdapterMethod method = AdapterMethods.get(type);   // unknown types fail here, naming the known ones
        Map<String, String> options = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : kv.entrySet()) {
            String key = e.getKey();
            if (SHARED_KEYS.contains(key) || METHOD_FLAGS.containsKey(key)) continue;
            if (!AdapterConfig.hasSetting(method, key)) {
                throw new IllegalArgumentException("unknown adapter spec key '" + key + "' for type " + type + " (known: "
                        + "type, " + String.join(", ", method.settingNames()) + ")");
            }
            options.put(key, e.getValue());
        }
        int r = parseInt(kv.getOrDefault("r", "8"), "r");
        double alpha = parseDouble(kv.getOrDefault("alpha", "8"), "alpha");
        List<String> targets = kv.containsKey("targets")
                ? new ArrayList<>(Arrays.asList(kv.get("targets").split("\\+")))
                : TargetMatcher.defaultTargets(arch);
        AdapterConfig c = new AdapterConfig(type, r, alpha, parseDouble(kv.getOrDefault("dropout", "0"), "dropout"), targets,
                parseBoolean(kv.getOrDefault("rslora", "false"), "rslora"), kv.getOrDefault("bias", "none"),
                kv.getOrDefault("init", "kaiming")).withOptions(options);
        method.validate(c);
        return c;
    }

    /**
     * The method a type plus PEFT's method flags select: {@code lora} with {@code use_dora=true} is {@code dora},
     * with {@code lora_fa=true} {@code lora_fa}; a flag that contradicts an explicit type is an error. Used for the
     * YAML's {@code adapter} section too.
     */
    public static String resolveType(String type, Map<String, String> flags) {
        String t = type.toLowerCase(Locale.ROOT);
        for (Map.Entry<String, String> f : METHOD_FLAGS.entrySet()) {
            String v = flags.get(f.getKey());
            if (v == null || !parseBoolean(v, f.getKey())) continue;
            if (t.equals("lora")) t = f.getValue();
            else if (!t.equals(f.getValue())) {
                throw new IllegalArgumentException(f.getKey() + "=true selects type " + f.getValue() + ", which contradicts type " + type);
            }
        }
        return t;
    }

    /** Whether {@code key} is one of PEFT's method-selecting flags ({@code use_dora}, {@code lora_fa}). */
    public static boolean isMethodFlag(String key) { return METHOD_FLAGS.containsKey(key); }

    private static boolean parseBoolean(String v, String key) {
        String s = v.toLowerCase(Locale.ROOT);
        if (!s.equals("true") && !s.equals("false")) throw new IllegalArgumentException("adapter spec: " + key + " must be true or false, got '" + v + "'");
        return s.equals("true");
    }

    private static int parseInt(String v, String key) {
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("adapter spec: " + key + " must be an integer, got '" + v + "'");
        }
    }

    private static double parseDouble(String v, String key) {
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("adapter spec: " + key + " must be a number, got '" + v + "'");
        }
    }
}
