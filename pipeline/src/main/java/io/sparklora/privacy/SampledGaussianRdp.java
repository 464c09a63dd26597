package io.sparklora.privacy;

/**
 * Rényi differential privacy of the sampled Gaussian mechanism (Mironov, Talwar and Zhang, 2019, "Rényi Differential
 * Privacy of the Sampled Gaussian Mechanism"): each record (an example, or a client) is included with probability q,
 * the sum of the included contributions, each clipped to L2 norm C, gets Gaussian noise of standard deviation σ·C.
 * Its RDP at order α is log(A_α)/(α − 1), where A_α is the α-th moment of the likelihood ratio of the mixture
 * (1 − q)·N(0, σ²) + q·N(1, σ²) against N(0, σ²); A_α is evaluated by the paper's series: a finite binomial sum for
 * integer α (section 3.3), the two-sided series with complementary error functions for fractional α (section 3.4).
 * This is the analysis Opacus's RDP accountant and TensorFlow Privacy implement.
 *
 * <p>Everything is in log space; all methods are pure functions.
 */
public final class SampledGaussianRdp {
    private SampledGaussianRdp() {}

    /** RDP of one application at order {@code alpha} &gt; 1, for sampling rate {@code q} and noise multiplier {@code sigma}. */
    public static double rdp(double q, double sigma, double alpha) {
        if (!(q >= 0 && q <= 1)) throw new IllegalArgumentException("sample rate q must be in [0, 1], got " + q);
        if (!(sigma >= 0)) throw new IllegalArgumentException("noise multiplier must be >= 0, got " + sigma);
        if (!(alpha > 1)) throw new IllegalArgumentException("RDP order must be > 1, got " + alpha);
        if (q == 0) return 0;
        if (sigma == 0) return Double.POSITIVE_INFINITY;
        if (q == 1) return alpha / (2 * sigma * sigma);
        if (Double.isInfinite(alpha)) return Double.POSITIVE_INFINITY;
        double logA = alpha == Math.rint(alpha) && alpha < Integer.MAX_VALUE ? logAInteger(q, sigma, (int) alpha) : logAFractional(q, sigma, alpha);
        return logA / (alpha - 1);
    }

    /** log A_α for integer α: Σ_{i=0}^{α} C(α, i)·q^i·(1 − q)^(α−i)·exp((i² − i)/(2σ²)). */
    static double logAInteger(double q, double sigma, int alpha) {
        double logA = Double.NEGATIVE_INFINITY;
        double logQ = Math.log(q), log1mQ = Math.log1p(-q);
        for (int i = 0; i <= alpha; i++) {
            double term = logBinomial(alpha, i) + i * logQ + (alpha - i) * log1mQ + (i * (double) i - i) / (2 * sigma * sigma);
            logA = logAdd(logA, term);
        }
        return logA;
    }

    /**
     * log A_α for fractional α: A_α = A₀ + A₁ with z₀ = σ²·log(1/q − 1) + ½ and
     * A₀ = Σ_i C(α, i)·q^i·(1−q)^(α−i)·exp((i² − i)/(2σ²))·½·erfc((i − z₀)/(√2σ)),
     * A₁ = Σ_i C(α, i)·q^(α−i)·(1−q)^i·exp(((α−i)² − (α−i))/(2σ²))·½·erfc((z₀ − (α − i))/(√2σ)),
     * summed until both terms fall below e^−30 (the generalised binomial C(α, i) changes sign past α).
     */
    static double logAFractional(double q, double sigma, double alpha) {
        double logA0 = Double.NEGATIVE_INFINITY, logA1 = Double.NEGATIVE_INFINITY;
        double z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
        double logQ = Math.log(q), log1mQ = Math.log1p(-q);
        double logCoef = 0;       // log |C(α, i)|
        boolean positive = true;  // sign of C(α, i)
        for (int i = 0; ; i++) {
            if (i > 0) {
                double f = (alpha - (i - 1)) / i;     // C(α, i) = C(α, i−1)·(α − i + 1)/i
                if (f == 0) break;
                if (f < 0) positive = !positive;
                logCoef += Math.log(Math.abs(f));
            }
            double j = alpha - i;
            double logT0 = logCoef + i * logQ + j * log1mQ;
            double logT1 = logCoef + j * logQ + i * log1mQ;
            double logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.sqrt(2) * sigma));
            double logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.sqrt(2) * sigma));
            double logS0 = logT0 + (i * (double) i - i) / (2 * sigma * sigma) + logE0;
            double logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
            if (positive) {
                logA0 = logAdd(logA0, logS0);
                logA1 = logAdd(logA1, logS1);
            } else {
                logA0 = logSub(logA0, logS0);
                logA1 = logSub(logA1, logS1);
            }
            if (Math.max(logS0, logS1) < -30 || i > 100_000) break;
        }
        return logAdd(logA0, logA1);
    }

    static double logBinomial(int n, int k) {
        return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
    }

    private static double logFactorial(int n) {
        double s = 0;
        for (int i = 2; i <= n; i++) s += Math.log(i);
        return s;
    }

    /** log(e^a + e^b). */
    static double logAdd(double a, double b) {
        double hi = Math.max(a, b), lo = Math.min(a, b);
        if (hi == Double.NEGATIVE_INFINITY) return hi;
        return hi + Math.log1p(Math.exp(lo - hi));
    }

    /** log(e^a − e^b) for a ≥ b. */
    static double logSub(double a, double b) {
        if (b == Double.NEGATIVE_INFINITY) return a;
        if (a < b) throw new ArithmeticException("log of a negative number: " + a + " < " + b);
        if (a == b) return Double.NEGATIVE_INFINITY;
        return a + Math.log(-Math.expm1(b - a));
    }

    /** log erfc(x), accurate where erfc underflows (large x): a continued fraction above 3, the series of erf below. */
    static double logErfc(double x) {
        if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
        if (x < 3) return Math.log1p(-erf(x));
        // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
        double k = x;
        for (int n = 80; n >= 1; n--) k = x + (n / 2.0) / k;
        return -x * x - 0.5 * Math.log(Math.PI) - Math.log(k);
    }

    /** erf(x) for |x| &lt; 3 by its Taylor series. */
    private static double erf(double x) {
        double sum = 0, term = x;
        for (int n = 0; n < 200; n++) {
            double add = term / (2 * n + 1);
            sum += add;
            if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }
}
