package io.sparklora.train;

import io.sparklora.adapters.TrainingHooks;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.LrSchedule;

import java.util.List;

/**
 * The one training step, shared by every path that trains: {@link Trainer} (one process), the Spark task's
 * local steps (which run a {@link Trainer}), and the Spark driver's step on averaged gradients. A method's
 * hooks are called here and nowhere else:
 * <pre>
 *   begin(step):   hooks.beforeStep
 *   microBatch:    forward + backward, gradients accumulate (each micro-batch's loss scaled by the caller)
 *   apply(step):   hooks.regularize → hooks.afterBackward → clip → AdamW (skipped on a non-finite norm)
 *                  → hooks.afterStep → zero the gradients
 * </pre>
 * The driver's path calls {@link #begin} before broadcasting (so what a hook decides travels in the round
 * state), lets the executors run the micro-batches, puts the mean gradient into the buffers and calls
 * {@link #apply}.
 */
public final class TrainingStep {
    private final TransformerLM model;
    private final AdamW optimizer;
    private final TrainingHooks hooks;
    private final LrSchedule schedule;
    private final double maxGradNorm;

    /** What {@link #apply} did. */
    public record Applied(double gradNorm, double lrFactor, double regularizer) {}

    public TrainingStep(TransformerLM model, AdamW optimizer, TrainingHooks hooks, LrSchedule schedule, double maxGradNorm) {
        this.model = model;
        this.optimizer = optimizer;
        this.hooks = hooks;
        this.schedule = schedule;
        this.maxGradNorm = maxGradNorm;
    }

    public AdamW optimizer() { return optimizer; }
    public TrainingHooks hooks() { return hooks; }
    public LrSchedule schedule() { return schedule; }

    /** Before the micro-batches of global step {@code step} (0-based). */
    public void begin(long step) { hooks.beforeStep(step); }

    /** One micro-batch: forward and backward, gradients accumulate scaled by {@code gradScale}. */
    public CrossEntropyLoss.Result microBatch(TokenBatch batch, ForwardContext ctx, double gradScale) {
        return model.forwardBackward(batch, ctx, gradScale);
    }

    /** The gradients of step {@code step} are complete: finishes the step as the class comment says. */
    public Applied apply(long step) {
        List<Parameter> trainable = optimizer.trainableParameters();
        double reg = hooks.regularize(1.0);
        hooks.afterBackward(step);
        double norm = maxGradNorm > 0 ? GradClipping.clip(trainable, maxGradNorm) : GradClipping.globalNorm(trainable);
        double factor = schedule.factor(step);
        if (Double.isFinite(norm)) {      // a non-finite gradient skips the update (the norm says so)
            optimizer.step(factor);
            hooks.afterStep(step);
        }
        optimizer.zeroGrad();
        return new Applied(norm, factor, reg);
    }
}
