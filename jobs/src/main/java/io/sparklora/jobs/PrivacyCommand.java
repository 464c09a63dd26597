package io.sparklora.jobs;

import io.sparklora.privacy.RdpAccountant;

import java.util.Locale;

/**
 * {@code spark-lora privacy}: plans a differentially private run before it starts. Given the sampling rate, the noise
 * multiplier, the number of noisy steps (DP-SGD steps, or DP-FedAvg rounds) and δ, it prints ε and the RDP order that
 * gave it ({@link RdpAccountant}); given {@code --epsilon} instead of {@code --noise-multiplier}, the smallest noise
 * multiplier that stays within it.
 */
final class PrivacyCommand {
    static final Args.Spec SPEC = new Args.Spec("privacy",
            "Prints the (epsilon, delta) a DP run spends (RDP accountant of the sampled Gaussian mechanism, as Opacus's), or the noise a target epsilon needs.",
            Args.Option.required("sample-rate", "Q", "probability that an example (DP-SGD) or a client (DP-FedAvg) takes part in a step"),
            Args.Option.value("noise-multiplier", "SIGMA", null, "noise standard deviation over the clipping norm (give this or --epsilon)"),
            Args.Option.value("epsilon", "EPS", null, "target epsilon: print the noise multiplier that reaches it"),
            Args.Option.required("steps", "N", "noisy steps: DP-SGD steps, or DP-FedAvg rounds"),
            Args.Option.value("delta", "DELTA", "1e-5", "delta (keep it below 1/records)"));

    private PrivacyCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        double q = a.getDouble("sample-rate"), delta = a.getDouble("delta");
        long steps = a.getInt("steps");
        if (!(q > 0 && q <= 1)) throw new Args.UsageException("privacy: --sample-rate must be in (0, 1], got " + q);
        if (steps <= 0) throw new Args.UsageException("privacy: --steps must be positive, got " + steps);
        if (!(delta > 0 && delta < 1)) throw new Args.UsageException("privacy: --delta must be in (0, 1), got " + delta);
        if (a.has("noise-multiplier") == a.has("epsilon")) {
            throw new Args.UsageException("privacy: give exactly one of --noise-multiplier (prints epsilon) and --epsilon (prints the noise multiplier)");
        }
        if (a.has("noise-multiplier")) {
            double sigma = a.getDouble("noise-multiplier");
            if (!(sigma >= 0)) throw new Args.UsageException("privacy: --noise-multiplier must be >= 0, got " + sigma);
            RdpAccountant.Spent s = RdpAccountant.epsilon(q, sigma, steps, delta);
            System.out.printf(Locale.ROOT, "epsilon %.4f at delta %.3g (best RDP order %s) after %d steps at sample rate %.6g, noise multiplier %.4g%n",
                    s.epsilon(), delta, order(s.order()), steps, q, sigma);
        } else {
            double eps = a.getDouble("epsilon");
            if (!(eps > 0)) throw new Args.UsageException("privacy: --epsilon must be positive, got " + eps);
            double sigma = RdpAccountant.noiseFor(eps, q, steps, delta);
            RdpAccountant.Spent s = RdpAccountant.epsilon(q, sigma, steps, delta);
            System.out.printf(Locale.ROOT, "noise multiplier %.4f reaches epsilon %.4f (target %.4g) at delta %.3g (best RDP order %s) after %d steps at sample rate %.6g%n",
                    sigma, s.epsilon(), eps, delta, order(s.order()), steps, q);
        }
        return 0;
    }

    private static String order(double o) {
        return o == Math.rint(o) ? Long.toString((long) o) : String.format(Locale.ROOT, "%.1f", o);
    }
}
