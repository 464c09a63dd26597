package io.sparklora.privacy;

import java.util.ArrayList;
import java.util.List;

/**
 * The privacy accountant of a DP training run: the sampled Gaussian mechanisms applied so far (sampling rate q, noise
 * multiplier σ, how many times), their RDP added up at every order, and ε at a given δ.
 *
 * <p>RDP to (ε, δ): ε = min over orders α of RDP(α) − (log δ + log α)/(α − 1) + log((α − 1)/α), the conversion of
 * Balle et al. (2020, "Hypothesis testing interpretations and Rényi differential privacy", Theorem 21) that Opacus's
 * {@code get_privacy_spent} uses; it is never worse than the classic RDP(α) − log δ/(α − 1) of Mironov (2017).
 * The orders are Opacus's defaults: 1.1, 1.2, …, 10.9 and 12, 13, …, 63. ε is +∞ where every order's RDP is.
 */
public final class RdpAccountant {
    /** Opacus's default RDP orders. */
    public static final double[] ORDERS = orders();

    private final List<double[]> history = new ArrayList<>();     // {q, sigma, steps}

    private static double[] orders() {
        double[] o = new double[99 + 52];
        for (int x = 1; x < 100; x++) o[x - 1] = 1 + x / 10.0;
        for (int a = 12; a < 64; a++) o[99 + a - 12] = a;
        return o;
    }

    /** ε at δ, and the order that gave it. */
    public record Spent(double epsilon, double order) {}

    /** Records {@code steps} more applications of the mechanism with rate {@code q} and noise multiplier {@code sigma}. */
    public void step(double q, double sigma, long steps) {
        if (steps < 0) throw new IllegalArgumentException("steps must be >= 0, got " + steps);
        if (steps == 0) return;
        double[] last = history.isEmpty() ? null : history.get(history.size() - 1);
        if (last != null && last[0] == q && last[1] == sigma) last[2] += steps;
        else history.add(new double[]{q, sigma, steps});
    }

    /** The recorded (q, σ, steps) triples, for checkpoints. */
    public List<double[]> history() {
        List<double[]> l = new ArrayList<>();
        for (double[] h : history) l.add(h.clone());
        return l;
    }

    /** An accountant with the given history (a resumed run). */
    public static RdpAccountant of(List<double[]> history) {
        RdpAccountant a = new RdpAccountant();
        for (double[] h : history) a.step(h[0], h[1], (long) h[2]);
        return a;
    }

    /** Total mechanism applications recorded. */
    public long steps() { return history.stream().mapToLong(h -> (long) h[2]).sum(); }

    /** ε spent so far at {@code delta}. */
    public Spent spent(double delta) {
        double[] rdp = new double[ORDERS.length];
        for (double[] h : history) {
            for (int i = 0; i < ORDERS.length; i++) rdp[i] += SampledGaussianRdp.rdp(h[0], h[1], ORDERS[i]) * h[2];
        }
        return epsilon(rdp, delta);
    }

    /** ε of {@code steps} applications at (q, σ), without an accountant. */
    public static Spent epsilon(double q, double sigma, long steps, double delta) {
        RdpAccountant a = new RdpAccountant();
        a.step(q, sigma, steps);
        return a.spent(delta);
    }

    static Spent epsilon(double[] rdp, double delta) {
        if (!(delta > 0 && delta < 1)) throw new IllegalArgumentException("delta must be in (0, 1), got " + delta);
        double best = Double.POSITIVE_INFINITY, order = Double.NaN;
        for (int i = 0; i < ORDERS.length; i++) {
            double a = ORDERS[i];
            double eps = rdp[i] - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
            if (eps < best) {
                best = eps;
                order = a;
            }
        }
        return new Spent(Math.max(0, best), order);
    }

    /**
     * The smallest noise multiplier (to relative precision 1e-6) for which {@code steps} applications at rate q spend at
     * most {@code epsilon} at {@code delta}.
     */
    public static double noiseFor(double epsilon, double q, long steps, double delta) {
        if (!(epsilon > 0)) throw new IllegalArgumentException("target epsilon must be positive, got " + epsilon);
        double lo = 0, hi = 1;
        while (epsilon(q, hi, steps, delta).epsilon() > epsilon) {
            hi *= 2;
            if (hi > 1e6) throw new IllegalArgumentException("no noise multiplier up to 1e6 reaches epsilon " + epsilon);
        }
        while ((hi - lo) > 1e-6 * hi) {
            double mid = (lo + hi) / 2;
            if (epsilon(q, mid, steps, delta).epsilon() > epsilon) lo = mid;
            else hi = mid;
        }
        return hi;
    }
}
