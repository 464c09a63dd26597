package io.sparklora.privacy;

import java.io.Serializable;
import java.util.Locale;

/**
 * Differentially private training settings ({@code train.dp} in the pipeline YAML).
 *
 * <ul>
 *   <li>{@code example}: DP-SGD (Abadi et al., 2016) with {@code sync: gradients}. Each step every example of the
 *       data is included with probability q (Poisson sampling, on the executors); each included example's adapter
 *       gradient (of its mean token loss) is clipped to L2 norm C ({@link PerExampleClipping}); the driver adds
 *       N(0, σ²C²) to the summed clipped gradients and divides by the expected batch q·N.</li>
 *   <li>{@code client}: DP-FedAvg (McMahan et al., 2018), the setting of the DP-DyLoRA paper, with
 *       {@code sync: parameters}. Each partition is a client; each round the driver samples every client with
 *       probability q and broadcasts the choice; a chosen client's round update (its adapter after K local steps
 *       minus the round's adapter) is clipped to L2 norm C; the driver adds N(0, σ²C²) to their sum and adds the sum
 *       divided by the expected number of clients q·n to the adapter.</li>
 * </ul>
 * Noise comes only from the driver's generator, seeded by {@code noiseSeed} and the round, so a rerun is
 * reproducible and no executor ever adds noise. {@link RdpAccountant} accounts one sampled Gaussian mechanism
 * (q, σ) per noisy step; with {@code epsilonBudget} &gt; 0 training stops, with a checkpoint, before a round would
 * spend more.
 *
 * @param mode          off, example or client
 * @param clipNorm      C (+∞: no clipping, which gives no privacy)
 * @param noiseMultiplier σ
 * @param sampleRate    q
 * @param delta         δ at which ε is reported
 * @param epsilonBudget stop before ε would exceed it (0: no budget)
 * @param noiseSeed     seed of the driver's noise and client sampling
 */
public record DpSpec(String mode, double clipNorm, double noiseMultiplier, double sampleRate, double delta, double epsilonBudget,
                     long noiseSeed) implements Serializable {
    public static final DpSpec OFF = new DpSpec("off", Double.POSITIVE_INFINITY, 0, 1, 1e-5, 0, 0);

    public DpSpec {
        mode = mode.toLowerCase(Locale.ROOT);
        if (!mode.equals("off") && !mode.equals("example") && !mode.equals("client")) {
            throw new IllegalArgumentException("train.dp.mode must be off, example or client, got '" + mode + "'");
        }
        if (!(clipNorm > 0)) throw new IllegalArgumentException("train.dp.clip_norm must be positive, got " + clipNorm);
        if (!(noiseMultiplier >= 0) || Double.isInfinite(noiseMultiplier)) {
            throw new IllegalArgumentException("train.dp.noise_multiplier must be >= 0, got " + noiseMultiplier);
        }
        if (!(sampleRate > 0 && sampleRate <= 1)) throw new IllegalArgumentException("train.dp.sample_rate must be in (0, 1], got " + sampleRate);
        if (!(delta > 0 && delta < 1)) throw new IllegalArgumentException("train.dp.delta must be in (0, 1), got " + delta);
        if (noiseMultiplier > 0 && Double.isInfinite(clipNorm)) {
            throw new IllegalArgumentException("train.dp: noise of " + noiseMultiplier + " times an infinite clip_norm is infinite; set train.dp.clip_norm");
        }
        if (!(epsilonBudget >= 0)) throw new IllegalArgumentException("train.dp.epsilon_budget must be >= 0 (0: none), got " + epsilonBudget);
    }

    public boolean on() { return !mode.equals("off"); }

    /** The standard deviation of the driver's noise, σ·C (0 when σ is 0, whatever C). */
    public double noiseStd() { return noiseMultiplier == 0 ? 0 : noiseMultiplier * clipNorm; }
    public boolean exampleLevel() { return mode.equals("example"); }
    public boolean clientLevel() { return mode.equals("client"); }
}
