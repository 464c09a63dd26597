package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Saved activations held in bfloat16 between forward and backward ({@link TransformerLM#setHalfActivations}).
 *
 * <p>Forward computes in fp32 as always; once a block's forward is done, the tensors that only its backward reads
 * (each norm's x̂, the attention's q, k, v heads, the MLP's pre-activations) are cast to bfloat16, which halves
 * them, and backward casts each back to fp32 just before it reads it. bfloat16 keeps fp32's exponent range, so
 * nothing overflows, and 8 bits of mantissa: each stored value is off by at most 2⁻⁸ of itself (ND4J's cast
 * truncates). What stays fp32: 1/σ per row, anything an adapter or a trained weight reads (a layer's input for dW or
 * for an adapter's gradients), and everything outside training. The casts are ND4J ops, so the CUDA backend runs
 * them too. Only fp32 models are stored in half; fp64 (gradient checks) is kept as is.
 */
public final class SavedActivations {
    /** The storage type of saved activations in half mode. */
    public static final DataType HALF = DataType.BFLOAT16;

    private SavedActivations() {}

    /** {@code a} as a fresh bfloat16 copy, {@code a} freed; null, views and non-fp32 arrays are returned as they are. */
    public static INDArray store(INDArray a) {
        if (a == null || a.dataType() != DataType.FLOAT || a.isView()) return a;
        INDArray h = a.castTo(HALF);
        Tensors.release(a);
        return h;
    }

    /** {@code a} as fp32 for backward: a fresh copy if it was stored in half (the caller frees it), else {@code a}. */
    public static INDArray load(INDArray a) {
        return a != null && a.dataType() == HALF ? a.castTo(DataType.FLOAT) : a;
    }

    /** Frees {@code loaded} if {@link #load} made it from {@code saved}. */
    public static void releaseLoaded(INDArray loaded, INDArray saved) {
        if (loaded != saved) Tensors.release(loaded);
    }
}
