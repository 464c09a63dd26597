package io.sparklora.train;

/**
 * Settings of one training run.
 *
 * @param steps          optimizer steps
 * @param batchSize      sequences per micro-batch
 * @param gradAccumulation micro-batches per optimizer step (the loss of each is scaled by 1/this)
 * @param lr             peak learning rate; parameter groups may scale it (LoRA+ gives lora_B its own)
 * @param weightDecay    AdamW's decoupled weight decay
 * @param warmupSteps    linear warm-up steps
 * @param schedule       "cosine", "linear" or "constant" after warm-up
 * @param minLrRatio     the decay's floor as a fraction of lr
 * @param maxGradNorm    global gradient-norm clip (≤ 0 disables)
 * @param seed           seeds data order and dropout: the same seed gives the same run
 */
public record TrainingOptions(int steps, int batchSize, int gradAccumulation, double lr, double weightDecay,
                              int warmupSteps, String schedule, double minLrRatio, double maxGradNorm, long seed) implements java.io.Serializable {
    public TrainingOptions {
        if (steps <= 0) throw new IllegalArgumentException("steps must be positive, got " + steps);
        if (batchSize <= 0) throw new IllegalArgumentException("batch size must be positive, got " + batchSize);
        if (gradAccumulation <= 0) throw new IllegalArgumentException("gradient accumulation must be positive, got " + gradAccumulation);
        if (lr <= 0) throw new IllegalArgumentException("learning rate must be positive, got " + lr);
    }

    public static TrainingOptions defaults(int steps) {
        return new TrainingOptions(steps, 4, 1, 2e-4, 0.0, Math.min(100, steps / 10), "cosine", 0.0, 1.0, 42);
    }

    public TrainingOptions withSteps(int n) { return new TrainingOptions(n, batchSize, gradAccumulation, lr, weightDecay, warmupSteps, schedule, minLrRatio, maxGradNorm, seed); }
    public TrainingOptions withLr(double v) { return new TrainingOptions(steps, batchSize, gradAccumulation, v, weightDecay, warmupSteps, schedule, minLrRatio, maxGradNorm, seed); }
    public TrainingOptions withBatch(int b, int accum) { return new TrainingOptions(steps, b, accum, lr, weightDecay, warmupSteps, schedule, minLrRatio, maxGradNorm, seed); }
    public TrainingOptions withWarmup(int w, String sched) { return new TrainingOptions(steps, batchSize, gradAccumulation, lr, weightDecay, w, sched, minLrRatio, maxGradNorm, seed); }
    public TrainingOptions withSeed(long s) { return new TrainingOptions(steps, batchSize, gradAccumulation, lr, weightDecay, warmupSteps, schedule, minLrRatio, maxGradNorm, s); }
    public TrainingOptions withWeightDecay(double wd) { return new TrainingOptions(steps, batchSize, gradAccumulation, lr, wd, warmupSteps, schedule, minLrRatio, maxGradNorm, seed); }
    public TrainingOptions withMaxGradNorm(double c) { return new TrainingOptions(steps, batchSize, gradAccumulation, lr, weightDecay, warmupSteps, schedule, minLrRatio, c, seed); }
}
