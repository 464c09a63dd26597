package io.sparklora.privacy;

import io.sparklora.model.Parameter;
import io.sparklora.model.PerExampleGradients;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;

/**
 * DP-SGD's clipping: each example's gradient, over all trainable adapter tensors together, scaled to L2 norm at most C,
 * then summed (Abadi et al., 2016). No noise here: the driver adds it once to the sum over all tasks.
 */
public final class PerExampleClipping {
    private PerExampleClipping() {}

    /**
     * Writes Σ_i w_i·min(1, C/‖w_i·g_i‖)·g_i into each parameter's gradient buffer (replacing what it held) and returns
     * the per-example norms ‖w_i·g_i‖ before clipping. {@code weights} turn each example's summed token loss into its
     * mean (1/targets_i); C = +∞ sums without clipping.
     */
    public static double[] clipAndSum(PerExampleGradients g, double[] weights, double clipNorm) {
        int n = g.examples();
        if (weights.length != n) throw new IllegalArgumentException(weights.length + " weights for " + n + " examples");
        double[] sq = new double[n];
        for (INDArray per : g.all().values()) {
            double[] rows = per.mul(per).sum(1).toDoubleVector();
            for (int i = 0; i < n; i++) sq[i] += rows[i];
        }
        double[] norms = new double[n];
        double[] factor = new double[n];
        for (int i = 0; i < n; i++) {
            norms[i] = weights[i] * Math.sqrt(sq[i]);
            factor[i] = weights[i] * (norms[i] > clipNorm ? clipNorm / norms[i] : 1.0);
        }
        for (Map.Entry<Parameter, INDArray> e : g.all().entrySet()) {
            Parameter p = e.getKey();
            INDArray f = Nd4j.createFromArray(factor).castTo(e.getValue().dataType()).reshape(1, n);
            INDArray sum = f.mmul(e.getValue()).reshape(p.value().shape());
            p.grad().assign(sum);
        }
        return norms;
    }
}
