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
 * {@code type=lora,r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05,rslora=true,bias=none,init=gaussian}.
 * Missing keys take PEFT's defaults: r=8, alpha=8, dropout 0, the architecture's default targets.
 */
public final class AdapterSpecs {
    private static final List<String> KEYS = List.of("type", "r", "alpha", "dropout", "targets", "rslora", "bias", "init");

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
            String key = part.substring(0, eq).trim().toLowerCase(Locale.ROOT);
            if (!KEYS.contains(key)) throw new IllegalArgumentException("unknown adapter spec key '" + key + "' (known: " + String.join(", ", KEYS) + ")");
            kv.put(key, part.substring(eq + 1).trim());
        }
        String type = kv.getOrDefault("type", "lora");
        AdapterMethods.factory(type);   // unknown types fail here, naming the known ones
        int r = parseInt(kv.getOrDefault("r", "8"), "r");
        double alpha = parseDouble(kv.getOrDefault("alpha", "8"), "alpha");
        List<String> targets = kv.containsKey("targets")
                ? new ArrayList<>(Arrays.asList(kv.get("targets").split("\\+")))
                : TargetMatcher.defaultTargets(arch);
        return new AdapterConfig(type, r, alpha, parseDouble(kv.getOrDefault("dropout", "0"), "dropout"), targets,
                Boolean.parseBoolean(kv.getOrDefault("rslora", "false")), kv.getOrDefault("bias", "none"),
                kv.getOrDefault("init", "kaiming"));
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
