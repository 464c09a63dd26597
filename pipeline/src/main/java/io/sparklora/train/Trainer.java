package io.sparklora.train;

import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.LrSchedule;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The one-process training loop: micro-batches with gradient accumulation, global-norm clipping,
 * a warm-up + decay schedule and AdamW over whatever parameters train (an adapter's, or all of them).
 *
 * <p>{@link #step} is the unit the distributed trainer reuses: a Spark task runs K of them on its shard
 * and hands back only the trainable tensors.
 */
public final class Trainer {
    private final TransformerLM model;
    private final AdamW optimizer;
    private final TrainingOptions options;
    private final LrSchedule schedule;
    private final Random dropoutRng;
    private long stepsTaken;      // counts skipped (non-finite) steps too, so a run always ends

    /** One optimizer step's figures. */
    public record StepStats(long step, double loss, double gradNorm, double lrFactor, long tokens, long targets) {}

    public Trainer(TransformerLM model, AdamW optimizer, TrainingOptions options) {
        this.model = model;
        this.optimizer = optimizer;
        this.options = options;
        this.schedule = LrSchedule.parse(options.schedule(), options.warmupSteps(), options.steps(), options.minLrRatio());
        this.dropoutRng = Nd4j.getRandomFactory().getNewRandomInstance(options.seed() ^ 0x5DEECE66DL);
    }

    public AdamW optimizer() { return optimizer; }

    /** Steps run so far, including any skipped for a non-finite gradient. */
    public long stepsTaken() { return stepsTaken; }

    /** Resumes the schedule after a restart from a checkpoint taken at {@code steps}. */
    public void resumeAt(long steps) { this.stepsTaken = steps; }

    /** Runs one optimizer step over {@code gradAccumulation} micro-batches drawn from {@code order}. */
    public StepStats step(TokenBlocks data, BatchOrder order) {
        long stepIndex = stepsTaken++;
        int micro = options.gradAccumulation();
        double lossSum = 0;
        long targets = 0, tokens = 0;
        for (int m = 0; m < micro; m++) {
            var batch = data.batch(order.next(options.batchSize()));
            CrossEntropyLoss.Result r = model.forwardBackward(batch, ForwardContext.training(dropoutRng), 1.0 / micro);
            lossSum += r.meanLoss();
            targets += r.count();
            tokens += batch.tokens();
        }
        List<Parameter> trainable = optimizer.trainableParameters();
        double norm = options.maxGradNorm() > 0 ? GradClipping.clip(trainable, options.maxGradNorm()) : GradClipping.globalNorm(trainable);
        double factor = schedule.factor(stepIndex);
        if (Double.isFinite(norm)) optimizer.step(factor);   // a non-finite gradient skips the update (norm says so)
        optimizer.zeroGrad();
        return new StepStats(stepIndex + 1, lossSum / micro, norm, factor, tokens, targets);
    }

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
