package io.sparklora.adapters;

import io.sparklora.model.Architecture;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Counts base and adapter parameters from a config alone, so {@code spark-lora inspect} needs only
 * {@code config.json} and no weights.
 */
public final class ParameterCounter {
    private ParameterCounter() {}

    /** Adaptable linear layers, module name → {in, out}, in model order. */
    public static Map<String, int[]> linearShapes(ModelConfig config) {
        Map<String, int[]> m = new LinkedHashMap<>();
        boolean conv1d = config.architecture() == Architecture.GPT2;   // [in, out] storage
        for (Map.Entry<String, long[]> e : TransformerLM.expectedShapes(config).entrySet()) {
            String n = e.getKey();
            long[] s = e.getValue();
            if (!n.endsWith(".weight") || s.length != 2 || n.contains("wte") || n.contains("wpe") || n.contains("embed_tokens")) continue;
            String module = n.substring(0, n.length() - ".weight".length());
            boolean transposed = !conv1d || module.equals("lm_head");
            m.put(module, transposed ? new int[]{(int) s[1], (int) s[0]} : new int[]{(int) s[0], (int) s[1]});
        }
        return m;
    }

    public static ParameterReport report(ModelConfig config, AdapterConfig adapter) {
        Map<String, int[]> shapes = linearShapes(config);
        List<String> modules = TargetMatcher.select(shapes.keySet(), adapter.targetModules());
        AdapterMethods.Counter counter = AdapterMethods.counter(adapter.method());
        long adapterParams = 0;
        for (String m : modules) {
            int[] s = shapes.get(m);
            if (adapter.r() > Math.min(s[0], s[1])) {
                throw new IllegalArgumentException(m + ": rank r=" + adapter.r() + " exceeds the layer's dimensions (" + s[0] + " in, " + s[1] + " out)");
            }
            adapterParams += counter.trainable(s[0], s[1], adapter);
        }
        long biases = 0;
        Map<String, long[]> all = TransformerLM.expectedShapes(config);
        if (adapter.bias().equals("all")) {
            for (Map.Entry<String, long[]> e : all.entrySet()) if (e.getKey().endsWith(".bias") && isLinearBias(e.getKey(), shapes)) biases += e.getValue()[0];
            // LayerNorm shifts are biases too (PEFT counts every parameter named *bias)
            for (Map.Entry<String, long[]> e : all.entrySet()) if (e.getKey().endsWith(".bias") && !isLinearBias(e.getKey(), shapes)) biases += e.getValue()[0];
        } else if (adapter.bias().equals("lora_only")) {
            for (String m : modules) {
                long[] s = all.get(m + ".bias");
                if (s != null) biases += s[0];
            }
        }
        return new ParameterReport(adapterParams + biases, TransformerLM.parameterCount(config) + adapterParams);
    }

    private static boolean isLinearBias(String name, Map<String, int[]> shapes) {
        return shapes.containsKey(name.substring(0, name.length() - ".bias".length()));
    }
}
