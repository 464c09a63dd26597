package io.sparklora.adapters;

import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

/**
 * Wraps an adapter and measures its output: LoRA-drop's importance of a layer is the mean squared norm
 * of what its adapter adds, ‖ΔW·x‖² = ‖B·A·x‖² (times the scale), over the tokens of a sample.
 * Forward passes are unchanged; the probe only accumulates Σ‖delta_row‖² and the row count.
 */
public final class ImportanceProbe implements Adapter {
    private final Adapter inner;
    private double sumSquares;
    private long rows;

    public ImportanceProbe(Adapter inner) { this.inner = inner; }

    public Adapter inner() { return inner; }
    public double sumSquares() { return sumSquares; }
    public long rows() { return rows; }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        Activation a = inner.forward(x, baseOut, ctx);
        double n = a.delta().norm2Number().doubleValue();
        sumSquares += n * n;
        rows += a.delta().rows();
        return a;
    }

    @Override public String adapterName() { return inner.adapterName(); }
    @Override public String method() { return inner.method(); }
    @Override public List<Parameter> parameters() { return inner.parameters(); }
    @Override public INDArray backward(Activation activation, INDArray dy) { return inner.backward(activation, dy); }
    @Override public INDArray deltaWeight() { return inner.deltaWeight(); }
    @Override public boolean needsLayerInput() { return inner.needsLayerInput(); }
    @Override public void merge(io.sparklora.model.Linear layer) { inner.merge(layer); }
    @Override public void unmerge(io.sparklora.model.Linear layer) { inner.unmerge(layer); }
    @Override public Map<String, INDArray> stateDict() { return inner.stateDict(); }
    @Override public void loadStateDict(Map<String, INDArray> tensors, String where) { inner.loadStateDict(tensors, where); }
}
