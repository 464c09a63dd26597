package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;

/** A normalisation over the last dimension: LayerNorm (GPT-2) or RMSNorm (Llama). Shapes: [N, C] → [N, C]. */
public interface Norm {

    /** What forward saved: the output, the normalised input x̂ and 1/σ per row ([N, 1]). */
    record Cache(INDArray out, INDArray xhat, INDArray rstd) {
        public void release() { Tensors.release(out, xhat, rstd); }

        /** x̂ in bfloat16 ({@link SavedActivations}); the output and 1/σ stay as they are. */
        public Cache halfPrecision() { return new Cache(out, SavedActivations.store(xhat), rstd); }
    }

    Cache forward(INDArray x);

    /** Accumulates gain (and shift) gradients if trainable; returns dL/dx. */
    INDArray backward(Cache c, INDArray dy);

    List<Parameter> parameters();
}
