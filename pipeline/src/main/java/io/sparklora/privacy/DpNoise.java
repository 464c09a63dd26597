package io.sparklora.privacy;

import java.util.Map;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;

/**
 * The driver's randomness in DP training: Gaussian noise on the summed clipped contributions, and DP-FedAvg's client
 * sampling. Every stream is a function of (noise seed, round, purpose), so a rerun or a resumed run draws the same,
 * and nothing here ever runs on an executor.
 */
public final class DpNoise {
    private static final long NOISE = 0x4E4F495345L, CLIENTS = 0x434C49454E54L;

    private DpNoise() {}

    private static RandomGenerator stream(long seed, long purpose, int round) {
        long h = seed * 0x9E3779B97F4A7C15L ^ purpose * 0xBF58476D1CE4E5B9L ^ (round + 1L) * 0x94D049BB133111EBL;
        return new SplittableRandom(h ^ (h >>> 31));
    }

    /** Adds N(0, std²) to every value of every tensor, from round {@code round}'s noise stream; returns the values drawn. */
    public static long addGaussian(Map<String, float[]> tensors, double std, long seed, int round) {
        if (!(std >= 0) || Double.isInfinite(std)) throw new IllegalArgumentException("noise standard deviation must be finite and >= 0, got " + std);
        if (std == 0) return 0;
        RandomGenerator g = stream(seed, NOISE, round);
        long n = 0;
        for (float[] v : tensors.values()) {
            for (int i = 0; i < v.length; i++) v[i] += (float) (std * g.nextGaussian());
            n += v.length;
        }
        return n;
    }

    /** DP-FedAvg's clients of round {@code round}: each of {@code n} with probability q. */
    public static boolean[] sampleClients(long seed, int round, int n, double q) {
        RandomGenerator g = stream(seed, CLIENTS, round);
        boolean[] take = new boolean[n];
        for (int i = 0; i < n; i++) take[i] = g.nextDouble() < q;
        return take;
    }
}
