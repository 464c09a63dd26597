package io.sparklora.gradcheck;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.function.DoubleSupplier;

/**
 * Compares an analytic gradient with central finite differences, (L(p+ε) − L(p−ε)) / 2ε, on a sample of
 * entries of one tensor. Run it in float64: in float32 the differences drown in rounding.
 *
 * <p>Error per entry: |a − n| / max(|a| + |n|, 1e-3), so near-zero gradients (where the differences are
 * mostly rounding) are judged absolutely.
 */
public final class GradientChecker {

    public record Result(String name, int checked, double maxRelativeError, long worstIndex, double analytic, double numeric) {
        @Override public String toString() {
            return String.format("%s: %d entries, max relative error %.3e (at %d: analytic %.6e, numeric %.6e)",
                    name, checked, maxRelativeError, worstIndex, analytic, numeric);
        }
    }

    private GradientChecker() {}

    /**
     * @param tensor   the tensor being perturbed in place (restored afterwards)
     * @param analytic its analytic gradient, same shape
     * @param loss     recomputes the scalar loss from the current tensor values
     * @param samples  how many entries to check (all if the tensor is smaller)
     */
    public static Result check(String name, INDArray tensor, INDArray analytic, DoubleSupplier loss, int samples,
                               double eps, long seed) {
        if (!tensor.isView() && tensor.ordering() != 'c') throw new IllegalArgumentException(name + ": expected a 'c' ordered tensor");
        INDArray flat = tensor.reshape(tensor.length());
        INDArray flatGrad = analytic.reshape(analytic.length());
        long n = tensor.length();
        java.util.Random rnd = new java.util.Random(seed);
        int count = (int) Math.min(samples, n);
        double worst = 0;
        long worstIdx = -1;
        double worstA = 0, worstN = 0;
        for (int s = 0; s < count; s++) {
            long i = count == n ? s : (long) (rnd.nextDouble() * n);
            double orig = flat.getDouble(i);
            flat.putScalar(i, orig + eps);
            double plus = loss.getAsDouble();
            flat.putScalar(i, orig - eps);
            double minus = loss.getAsDouble();
            flat.putScalar(i, orig);
            double num = (plus - minus) / (2 * eps);
            double an = flatGrad.getDouble(i);
            double rel = Math.abs(an - num) / Math.max(Math.abs(an) + Math.abs(num), 1e-3);
            if (rel > worst || worstIdx < 0) {
                worst = rel;
                worstIdx = i;
                worstA = an;
                worstN = num;
            }
        }
        return new Result(name, count, worst, worstIdx, worstA, worstN);
    }
}
