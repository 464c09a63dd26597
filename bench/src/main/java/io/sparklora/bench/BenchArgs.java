package io.sparklora.bench;

import java.util.LinkedHashMap;
import java.util.Map;

/** The benchmarks' {@code --name value} options, by name without the dashes; a trailing name without a value is ignored. */
final class BenchArgs {
    private BenchArgs() {}

    static Map<String, String> parse(String[] args) {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) a.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        return a;
    }
}
