package io.sparklora.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lorafa.LoraFaAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The activation bytes one adapted layer keeps for backward, LoRA against LoRA-FA: one {@link Linear}
 * in → out with a frozen random weight, one adapter attached, one training-mode forward; then what is kept is
 * added up: the layer's {@link Linear.Cache#x()} (non-null only when some adapter reads the layer input,
 * {@link Linear#needsInput()}) and what each {@link Adapter.Activation} keeps beyond it
 * ({@link Adapter.Activation#bytesKept()}, which by contract never counts the layer's own x).
 */
final class ActivationBytes {
    private ActivationBytes() {}

    /** The figures for one adapter on one layer. */
    record Kept(String method, double dropout, long layerInputBytes, long activationBytesKept, long distinctBytes,
                long naiveSumBytes, List<String> arrays) {
        ObjectNode toJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("method", method).put("dropout", dropout).put("layer_input_bytes", layerInputBytes)
                    .put("activation_bytes_kept", activationBytesKept).put("distinct_bytes_kept", distinctBytes)
                    .put("sum_without_dedup_bytes", naiveSumBytes);
            var a = o.putArray("arrays");
            arrays.forEach(a::add);
            return o;
        }
    }

    static Kept measure(String method, int d, int r, int batch, int seq, double dropout, long seed) {
        Random rng = io.sparklora.model.Seeds.rng(seed);
        INDArray w = Nd4j.randn(rng, new long[]{d, d}).castTo(DataType.FLOAT).muli(0.02);
        // GPT-2's Conv1D layout [in, out]; frozen
        Linear layer = new Linear("layer", new Parameter("layer.weight", w, false, "weight"), null, false);
        AdapterConfig cfg = AdapterConfig.of(method, r, 2.0 * r, List.of("layer")).withDropout(dropout);
        Adapter adapter = switch (method) {
            case "lora" -> new LoraAdapter("default", layer, cfg, rng);
            case "lora_fa" -> new LoraFaAdapter("default", layer, cfg, rng);
            default -> throw new IllegalArgumentException("activation measurement is defined for lora and lora_fa, not " + method);
        };
        layer.attach(adapter);
        int n = batch * seq;
        INDArray x = Nd4j.randn(rng, new long[]{n, d}).castTo(DataType.FLOAT);
        Linear.Cache cache = layer.forward(x, ForwardContext.training(rng));
        try {
            List<String> names = new ArrayList<>();
            long layerX = 0;
            if (cache.x() != null) {
                layerX = bytes(cache.x());
                names.add("layer x " + shape(cache.x()));
            }
            long kept = 0;
            for (Adapter.Activation act : cache.adapterActivations()) kept += act.bytesKept();
            names.add(String.format(Locale.ROOT, "adapter's own arrays %,d B", kept));
            return new Kept(method, dropout, layerX, kept, layerX + kept, layerX + kept, names);
        } finally {
            cache.release();
            Tensors.release(x);
        }
    }

    static long bytes(INDArray a) { return a == null ? 0 : a.length() * a.dataType().width(); }

    private static String shape(INDArray a) {
        long[] s = a.shape();
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < s.length; i++) b.append(i == 0 ? "" : ", ").append(s[i]);
        return b.append("] ").append(a.dataType().name().toLowerCase(Locale.ROOT)).append(", ").append(bytes(a)).append(" B").toString();
    }
}
