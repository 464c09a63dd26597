package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A dense weight in the checkpoint's own layout, never copied or transposed: the matmuls read it
 * transposed where the layout needs it.
 *
 * <p>Forward y = x·W (Conv1D, W [in, out]) or y = x·Wᵀ (nn.Linear, W [out, in]); backward dx = dy·Wᵀ or
 * dy·W; the weight gradient goes straight into the buffer in storage layout: Conv1D dW += xᵀ·dy,
 * nn.Linear dW += dyᵀ·x.
 */
public final class DenseWeight implements BaseWeight {
    private final Parameter weight;
    private final boolean transposed;
    private final int in;
    private final int out;

    public DenseWeight(Parameter weight, boolean transposed, String layer) {
        long[] s = weight.value().shape();
        if (s.length != 2) throw new ModelConfigException(layer + ".weight must be 2-D, got " + java.util.Arrays.toString(s));
        this.weight = weight;
        this.transposed = transposed;
        this.in = (int) (transposed ? s[1] : s[0]);
        this.out = (int) (transposed ? s[0] : s[1]);
    }

    @Override public int inFeatures() { return in; }
    @Override public int outFeatures() { return out; }
    @Override public boolean transposed() { return transposed; }
    @Override public boolean trainable() { return weight.trainable(); }
    @Override public Parameter parameter() { return weight; }
    @Override public INDArray dense() { return weight.value(); }
    @Override public INDArray mutableDense() { return weight.mutableValue(); }
    @Override public org.nd4j.linalg.api.buffer.DataType dataType() { return weight.value().dataType(); }
    @Override public long bytesHeld() { return weight.value().length() * weight.value().dataType().width(); }

    @Override
    public void addTo(INDArray target, double alpha) {
        if (alpha == 1.0) target.addi(weight.value());
        else {
            INDArray scaled = weight.value().mul(alpha);
            target.addi(scaled);
            Tensors.release(scaled);
        }
    }

    @Override
    public INDArray forward(INDArray x) { return Nd4j.gemm(x, weight.value(), false, transposed); }

    @Override
    public INDArray backwardInput(INDArray dy) { return Nd4j.gemm(dy, weight.value(), false, !transposed); }

    @Override
    public void accumulateGradient(INDArray x, INDArray dy) {
        // β = 1 accumulates into the buffer
        if (transposed) Nd4j.gemm(dy, x, weight.grad(), true, false, 1.0, 1.0);
        else Nd4j.gemm(x, dy, weight.grad(), true, false, 1.0, 1.0);
    }
}
