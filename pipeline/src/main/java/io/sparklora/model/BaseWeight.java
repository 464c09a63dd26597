package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The frozen (or fully trained) weight of a {@link Linear} layer, behind the two products the layer needs.
 * Dense fp32/fp64 ({@link DenseWeight}) is one implementation; a quantised base (QLoRA's NF4) is another,
 * and neither the layer nor any adapter needs to know which it runs on.
 *
 * <p>Shapes: x [N, in], y [N, out]. The storage layout is the checkpoint's: [in, out] for GPT-2's Conv1D
 * ({@code transposed() == false}), [out, in] for nn.Linear ({@code transposed() == true}).
 */
public interface BaseWeight {
    int inFeatures();

    int outFeatures();

    /** True when stored [out, in] (nn.Linear), false for [in, out] (Conv1D). */
    boolean transposed();

    /** y = x·Wᵀ in the logical [out, in] sense: [N, in] → a new [N, out] array. */
    INDArray forward(INDArray x);

    /** dx = dy·W: [N, out] → a new [N, in] array. */
    INDArray backwardInput(INDArray dy);

    /** Whether the weight itself trains (full fine-tuning); adapters leave it frozen. */
    boolean trainable();

    /** Adds dL/dW for {@code y = x·Wᵀ} into the gradient buffer (only called when {@link #trainable()}). */
    void accumulateGradient(INDArray x, INDArray dy);

    /**
     * The weight as a dense array in storage layout that the caller may write into (merging an adapter):
     * a private copy if the array was shared. A quantised weight dequantises here and stays dense after.
     */
    INDArray mutableDense();

    /** The weight as a dense array in storage layout, read-only by contract (norms, exports). */
    INDArray dense();

    /** The tensor under its checkpoint name. */
    Parameter parameter();
}
