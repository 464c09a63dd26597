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

    /**
     * The report {@code inspect} prints, from the configs alone: trainable = the method's count over the
     * targeted layers plus the biases the bias mode trains; all = the base plus the adapter's own tensors.
     */
    public static ParameterReport report(ModelConfig config, AdapterConfig adapter) {
        AdapterMethod method = adapter.adapterMethod();
        method.validate(adapter);
        Map<String, int[]> shapes = linearShapes(config);
        Map<String, int[]> targeted = new LinkedHashMap<>();
        for (String m : TargetMatcher.select(shapes.keySet(), adapter.targetModules())) targeted.put(m, shapes.get(m));
        long trainable = method.trainableCount(targeted, adapter);
        long frozen = method.frozenCount(targeted, adapter);
        Map<String, long[]> all = TransformerLM.expectedShapes(config);
        long biases = 0;
        for (String n : AttachedAdapter.trainedBaseTensors(config, adapter)) biases += all.get(n)[0];
        long tokenRows = (long) adapter.trainableTokenIndices().length * config.hiddenSize();
        return new ParameterReport(trainable + biases + tokenRows, TransformerLM.parameterCount(config) + trainable + frozen + tokenRows);
    }

    /** Rejects a rank above a layer's smaller dimension, naming the layer (methods whose r is bounded so). */
    public static void requireRankFits(String module, int in, int out, int r) {
        if (r > Math.min(in, out)) {
            throw new IllegalArgumentException(module + ": rank r=" + r + " exceeds the layer's dimensions (" + in + " in, " + out + " out)");
        }
    }
}
