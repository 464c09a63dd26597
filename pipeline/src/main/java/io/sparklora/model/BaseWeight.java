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

    /**
     * The weight as a dense array in storage layout, read-only by contract (exports, GLoRA's W0 ⊙ A). A dense weight
     * returns its own array; a quantised one dequantises a fresh full-precision copy each call, so callers that only
     * need W added into something should use {@link #addTo}, which never makes one.
     */
    INDArray dense();

    /** target += alpha·W, target in storage layout (a quantised weight dequantises tile by tile into it). */
    void addTo(INDArray target, double alpha);

    /** The type forward computes in and adapters should take (FLOAT for a quantised base). */
    org.nd4j.linalg.api.buffer.DataType dataType();

    /** Bytes this weight holds in memory (for a quantised weight: codes and scales, not a dequantised copy). */
    long bytesHeld();

    /** Whether the weight is held quantised (and not yet turned dense by a merge). */
    default boolean quantized() { return false; }

    /**
     * The tensor under its checkpoint name. A quantised weight has one only once a merge turned it dense; before
     * that, this is an error, and callers use {@link #dense()}, {@link #addTo} or the products.
     */
    Parameter parameter();
}
