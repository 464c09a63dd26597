package io.sparklora.model;

import io.sparklora.adapters.Adapter;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Per-example gradients of the trainable adapter tensors, for differentially private training (each example's
 * gradient is clipped before the sum). The base runs forward and backward once for the whole batch: only the
 * adapters' parameter gradients are formed per example. A layer's adapter gradients are linear in the output
 * gradient dy given the saved activations (true of every method here), and the rows of example i are
 * [i·rows, (i+1)·rows) of every layer, so example i's gradient is the adapter's backward with dy zero outside those
 * rows: {@link Linear#backward} calls {@link #collect} for each adapter, which runs that backward once per example
 * (adapter-sized work; the base is not touched again).
 *
 * <p>Shapes: for a parameter of s scalars, {@link #of} is [examples, s]. Tensors shared by several layers (LoRA-drop)
 * add up across them, as their batch gradient does.
 */
public final class PerExampleGradients {
    private final int examples;
    private final int rowsPerExample;
    private final Map<Parameter, INDArray> grads = new LinkedHashMap<>();

    public PerExampleGradients(int examples, int rowsPerExample) {
        this.examples = examples;
        this.rowsPerExample = rowsPerExample;
    }

    public int examples() { return examples; }

    /** Every parameter seen, with its per-example gradients [examples, size]. */
    public Map<Parameter, INDArray> all() { return grads; }

    /** One parameter's per-example gradients [examples, size], or null if no layer produced any. */
    public INDArray of(Parameter p) { return grads.get(p); }

    /** Example i's gradient of every trainable tensor of {@code adapter}, added to the store; the tensors' own gradient buffers are left as they were. */
    void collect(Adapter adapter, Adapter.Activation act, INDArray dy) {
        if (dy.rows() != (long) examples * rowsPerExample) {
            throw new IllegalStateException("per-example gradients: " + dy.rows() + " rows, expected " + examples + " examples of " + rowsPerExample);
        }
        java.util.List<Parameter> ps = adapter.parameters().stream().filter(Parameter::trainable).toList();
        if (ps.isEmpty()) return;
        Map<Parameter, INDArray> saved = new LinkedHashMap<>();
        for (Parameter p : ps) saved.put(p, p.grad().dup());
        INDArray masked = Nd4j.zeros(dy.dataType(), dy.shape());
        for (int i = 0; i < examples; i++) {
            var rows = NDArrayIndex.interval((long) i * rowsPerExample, (long) (i + 1) * rowsPerExample);
            masked.get(rows, NDArrayIndex.all()).assign(dy.get(rows, NDArrayIndex.all()));
            for (Parameter p : ps) p.grad().assign(0);
            INDArray dx = adapter.backward(act, masked);
            Tensors.release(dx);
            for (Parameter p : ps) {
                INDArray store = grads.computeIfAbsent(p, k -> Nd4j.zeros(p.value().dataType(), examples, p.size()));
                store.getRow(i).addi(p.grad().reshape(p.size()));
            }
            masked.get(rows, NDArrayIndex.all()).assign(0);
        }
        for (Parameter p : ps) p.grad().assign(saved.get(p));
        Tensors.release(masked);
    }
}
