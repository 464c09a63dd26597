package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Gradient clipping by the global L2 norm over all trainable gradients, like
 * {@code torch.nn.utils.clip_grad_norm_} but scaling to exactly {@code maxNorm}.
 */
public final class GradClipping {
    private GradClipping() {}

    /**
     * The L2 norm of all trainable gradients taken together: one ND4J reduction per parameter, with the
     * squares summed in double so many float32 tensors do not lose precision. Frozen parameters count as 0.
     */
    public static double globalNorm(Iterable<Parameter> params) {
        double sumOfSquares = 0;
        for (Parameter p : params) {
            if (!p.trainable()) continue;
            double n = p.grad().norm2Number().doubleValue();
            sumOfSquares += n * n;
        }
        return Math.sqrt(sumOfSquares);
    }

    /**
     * Scales all trainable gradients in place by {@code maxNorm / norm} when their global norm exceeds
     * {@code maxNorm}. A non-finite norm leaves the gradients untouched: the caller sees it in the return
     * value and should skip the step (scaling would spread NaN into every gradient).
     *
     * @return the global norm before clipping
     */
    public static double clip(Iterable<Parameter> params, double maxNorm) {
        if (!(maxNorm > 0)) throw new IllegalArgumentException("max grad norm must be > 0, got " + maxNorm);
        double norm = globalNorm(params);
        if (Double.isFinite(norm) && norm > maxNorm) {
            double scale = maxNorm / norm;
            for (Parameter p : params) {
                if (p.trainable()) p.grad().muli(scale);
            }
        }
        return norm;
    }

    /** {@link #clip} over an optimizer's parameters. */
    public static double clip(AdamW optimizer, double maxNorm) {
        return clip(optimizer.trainableParameters(), maxNorm);
    }
}
