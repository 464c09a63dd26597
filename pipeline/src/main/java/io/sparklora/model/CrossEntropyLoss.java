package io.sparklora.model;

import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Token cross-entropy with an ignore mask, fused with its backward so the [N, V] probabilities are
 * materialised once: loss = Σ_i m_i·(logsumexp(z_i) − z_i[t_i]) / Σ m_i, dz = m·(softmax(z) − onehot(t)) / Σ m.
 *
 * <p>Shapes: logits [N, V], targets [N] (−100 = ignored).
 */
public final class CrossEntropyLoss {

    /** Sum of the per-token losses, the number of counted tokens, and dL/dlogits of the mean loss (or null). */
    public record Result(double sumLoss, long count, INDArray dLogits) {
        public double meanLoss() { return count == 0 ? 0.0 : sumLoss / count; }
    }

    private CrossEntropyLoss() {}

    /** Leaves {@code logits} untouched (works on a copy). */
    public static Result compute(INDArray logits, INDArray targets, boolean withGradient) {
        return computeInPlace(logits.dup(), targets, withGradient);
    }

    /**
     * Overwrites {@code logits}: with a gradient requested, they become dL/dlogits (returned in the result),
     * otherwise scratch. Target logits are read by index and the one-hot is subtracted by a scatter, so no
     * [N, V] one-hot is ever built.
     */
    public static Result computeInPlace(INDArray logits, INDArray targets, boolean withGradient) {
        return computeInPlace(logits, targets, withGradient, -1);
    }

    /**
     * As {@link #computeInPlace(INDArray, INDArray, boolean)}, with the gradient divided by
     * {@code gradDenominator} instead of this call's own target count (for a loss computed in row chunks,
     * whose mean is over all of them); a negative value means "this call's count".
     */
    public static Result computeInPlace(INDArray logits, INDArray targets, boolean withGradient, double gradDenominator) {
        Kernels.LossSum r = Kernels.active().crossEntropyInPlace(logits, targets, withGradient, gradDenominator);
        return new Result(r.sum(), r.count(), withGradient ? logits : null);
    }
}
