package io.sparklora.optim;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Learning-rate factor per optimizer step: linear warmup, then cosine, linear or constant decay down to
 * {@code minRatio} of the peak. Multiply each group's peak lr by {@link #factor(long)} (which is what
 * {@link AdamW#step(double)} does with its argument).
 *
 * <p>{@code step} is the 0-based index of the optimizer step about to be taken. Warmup is
 * {@code (step+1)/warmupSteps}, so the first step already moves the weights (unlike a warmup that starts
 * at 0) and step {@code warmupSteps-1} runs at the peak. Decay then goes from the peak at step
 * {@code warmupSteps} to {@code minRatio} at step {@code totalSteps}, and stays there afterwards.
 */
public final class LrSchedule {

    public enum Decay {
        COSINE, LINEAR, CONSTANT;

        /** Parses "cosine", "linear" or "constant" (case-insensitive). */
        public static Decay parse(String name) {
            String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
            for (Decay d : values()) {
                if (d.name().toLowerCase(Locale.ROOT).equals(n)) return d;
            }
            throw new IllegalArgumentException("unknown lr schedule '" + name + "'; valid names: " + validNames());
        }

        public static String validNames() {
            return Arrays.stream(values()).map(d -> d.name().toLowerCase(Locale.ROOT)).collect(Collectors.joining(", "));
        }
    }

    private final Decay decay;
    private final long warmupSteps;
    private final long totalSteps;
    private final double minRatio;

    /**
     * @param warmupSteps steps of linear warmup (0 for none)
     * @param totalSteps  total optimizer steps of the run, warmup included
     * @param minRatio    final factor of the decay, in [0, 1]; ignored by {@link Decay#CONSTANT}
     */
    public LrSchedule(Decay decay, long warmupSteps, long totalSteps, double minRatio) {
        if (warmupSteps < 0) throw new IllegalArgumentException("warmup steps must be >= 0, got " + warmupSteps);
        if (totalSteps < 1) throw new IllegalArgumentException("total steps must be >= 1, got " + totalSteps);
        if (warmupSteps > totalSteps) {
            throw new IllegalArgumentException("warmup steps (" + warmupSteps + ") exceed total steps (" + totalSteps + ")");
        }
        if (!(minRatio >= 0 && minRatio <= 1)) throw new IllegalArgumentException("min lr ratio must be in [0, 1], got " + minRatio);
        this.decay = decay;
        this.warmupSteps = warmupSteps;
        this.totalSteps = totalSteps;
        this.minRatio = minRatio;
    }

    /** Builds a schedule from its name ("cosine", "linear" or "constant"). */
    public static LrSchedule parse(String name, long warmupSteps, long totalSteps, double minRatio) {
        return new LrSchedule(Decay.parse(name), warmupSteps, totalSteps, minRatio);
    }

    public Decay decay() { return decay; }
    public long warmupSteps() { return warmupSteps; }
    public long totalSteps() { return totalSteps; }
    public double minRatio() { return minRatio; }

    /** The lr factor for the 0-based optimizer step {@code step}. */
    public double factor(long step) {
        if (step < 0) throw new IllegalArgumentException("step must be >= 0, got " + step);
        if (step < warmupSteps) return (double) (step + 1) / warmupSteps;
        if (decay == Decay.CONSTANT) return 1.0;
        long decaySteps = totalSteps - warmupSteps;
        double progress = decaySteps == 0 ? 1.0 : Math.min(1.0, (double) (step - warmupSteps) / decaySteps);
        double shape = decay == Decay.COSINE
                ? 0.5 * (1 + Math.cos(Math.PI * progress))
                : 1 - progress;
        return minRatio + (1 - minRatio) * shape;
    }

    @Override public String toString() {
        return decay.name().toLowerCase(Locale.ROOT) + "(warmup=" + warmupSteps + ", total=" + totalSteps
                + ", minRatio=" + minRatio + ")";
    }
}
