package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scatter.ScatterUpdate;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.factory.ops.NDBase;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Token cross-entropy with an ignore mask, fused with its backward so the [N, V] probabilities are
 * materialised once: loss = Σ_i m_i·(logsumexp(z_i) − z_i[t_i]) / Σ m_i, dz = m·(softmax(z) − onehot(t)) / Σ m.
 *
 * <p>Shapes: logits [N, V], targets [N] (−100 = ignored).
 */
public final class CrossEntropyLoss {
    private static final NDBase OPS = new NDBase();

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
        long n = logits.size(0);
        long vocab = logits.size(1);
        DataType dt = logits.dataType();
        INDArray flatTargets = targets.reshape(n).castTo(DataType.INT);
        INDArray counted = flatTargets.gte(0);
        INDArray mask = counted.castTo(dt).reshape(n, 1);                                    // [N,1]
        // ignored positions point at class 0; the mask removes them
        INDArray safeTargets = flatTargets.mul(counted.castTo(DataType.INT));
        INDArray linear = Nd4j.arange(n).castTo(DataType.LONG).muli(vocab).addi(safeTargets.castTo(DataType.LONG));   // i·V + t_i
        INDArray flat = logits.reshape('c', n * vocab, 1);
        INDArray max = logits.max(true, 1);                                                   // [N,1]
        INDArray targetLogit = OPS.gather(flat, linear, 0).subi(max);                         // z_t − max, [N,1]
        logits.subiColumnVector(max);
        Transforms.exp(logits, false);
        INDArray sumExp = logits.sum(true, 1);                                                // [N,1]
        INDArray perToken = Transforms.log(sumExp, true).subi(targetLogit).muli(mask);       // [N,1]
        double sum = perToken.sumNumber().doubleValue();
        long count = mask.sumNumber().longValue();
        INDArray grad = null;
        if (withGradient) {
            logits.diviColumnVector(sumExp);                                                  // softmax
            Nd4j.scatterUpdate(ScatterUpdate.UpdateOp.SUBTRACT, flat, linear.castTo(DataType.INT), mask, 1);
            double denominator = gradDenominator < 0 ? count : gradDenominator;
            grad = logits.muliColumnVector(mask.muli(denominator == 0 ? 0.0 : 1.0 / denominator));
        }
        Tensors.release(flatTargets, counted, safeTargets, linear, max, targetLogit, sumExp, perToken);
        return new Result(sum, count, grad);
    }
}
