package io.sparklora.train;

import io.sparklora.adapters.TrainingHooks;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.LrSchedule;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The one-process training loop: micro-batches with gradient accumulation, then the {@link TrainingStep}
 * (the method's hooks, global-norm clipping, a warm-up + decay schedule and AdamW over whatever parameters
 * train: an adapter's, or all of them).
 *
 * <p>{@link #step} is the unit the distributed trainer reuses: a Spark task runs K of them on its shard
 * and hands back only the trainable tensors.
 */
public final class Trainer {
    private final TrainingStep trainingStep;
    private final TrainingOptions options;
    private final Random dropoutRng;
    private long stepsTaken;      // counts skipped (non-finite) steps too, so a run always ends

    /** One optimizer step's figures. */
    public record StepStats(long step, double loss, double gradNorm, double lrFactor, long tokens, long targets) {}

    /** A trainer with no method hooks (full fine-tuning, pretraining). */
    public Trainer(TransformerLM model, AdamW optimizer, TrainingOptions options) {
        this(model, optimizer, TrainingHooks.NONE, options);
    }

    /** A trainer that calls an adapter's hooks ({@link io.sparklora.adapters.AttachedAdapter#hooks()}). */
    public Trainer(TransformerLM model, AdamW optimizer, TrainingHooks hooks, TrainingOptions options) {
        this.options = options;
        LrSchedule schedule = LrSchedule.parse(options.schedule(), options.warmupSteps(), options.steps(), options.minLrRatio());
        this.trainingStep = new TrainingStep(model, optimizer, hooks, schedule, options.maxGradNorm());
        hooks.plan(options.steps());
        this.dropoutRng = io.sparklora.model.Seeds.rng(options.seed() ^ 0x5DEECE66DL);
    }

    /** An adapter's trainer: AdamW over its method's groups, its hooks. */
    public static Trainer forAdapter(io.sparklora.adapters.AttachedAdapter adapter, TrainingOptions options) {
        return new Trainer(adapter.model(), Optimizers.forAdapter(adapter, options), adapter.hooks(), options);
    }

    public AdamW optimizer() { return trainingStep.optimizer(); }

    /** Steps run so far, including any skipped for a non-finite gradient. */
    public long stepsTaken() { return stepsTaken; }

    /** Resumes the schedule after a restart from a checkpoint taken at {@code steps}. */
    public void resumeAt(long steps) { this.stepsTaken = steps; }

    /** Runs one optimizer step over {@code gradAccumulation} micro-batches drawn from {@code order}. */
    public StepStats step(TokenBlocks data, BatchOrder order) {
        long stepIndex = begin();
        int micro = options.gradAccumulation();
        double lossSum = 0;
        long targets = 0, tokens = 0;
        for (int m = 0; m < micro; m++) {
            var batch = data.batch(order.next(options.batchSize()));
            CrossEntropyLoss.Result r = trainingStep.microBatch(batch, ForwardContext.training(dropoutRng), 1.0 / micro);
            lossSum += r.meanLoss();
            targets += r.count();
            tokens += batch.tokens();
        }
        return finish(stepIndex, lossSum, tokens, targets);
    }

    /**
     * Starts the next optimizer step for a caller that runs its micro-batches itself (a mixed-adapter batch, where one
     * forward and backward serves several trainers): calls the hooks' beforeStep and returns the step's index. The
     * caller then runs {@link TrainingOptions#gradAccumulation()} micro-batches of {@link TrainingOptions#batchSize()}
     * sequences, each with gradients scaled by 1/gradAccumulation and dropout from {@link #dropoutStream()}, and calls
     * {@link #finish}.
     */
    public long begin() {
        long stepIndex = stepsTaken++;
        trainingStep.begin(stepIndex);
        return stepIndex;
    }

    /** Completes step {@code stepIndex}: {@code lossSum} is the sum of its micro-batches' mean losses. */
    public StepStats finish(long stepIndex, double lossSum, long tokens, long targets) {
        TrainingStep.Applied a = trainingStep.apply(stepIndex);
        return new StepStats(stepIndex + 1, lossSum / options.gradAccumulation() + a.regularizer(), a.gradNorm(), a.lrFactor(), tokens, targets);
    }

    /** The stream this trainer's dropout masks are drawn from (seeded from the options' seed). */
    public Random dropoutStream() { return dropoutRng; }

    public TrainingOptions options() { return options; }

    /** Runs all steps, reporting each to {@code onStep} (progress lines, metrics files). */
    public List<StepStats> train(TokenBlocks data, Consumer<StepStats> onStep) {
        BatchOrder order = new BatchOrder(data.size(), options.seed());
        List<StepStats> stats = new ArrayList<>();
        while (stepsTaken < options.steps()) {
            StepStats s = step(data, order);
            stats.add(s);
            onStep.accept(s);
        }
        return stats;
    }
}
