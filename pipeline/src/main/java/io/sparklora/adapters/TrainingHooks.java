package io.sparklora.adapters;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * Where a method steps into the training step ({@code train/TrainingStep}, the one step every path runs:
 * one-process training, the Spark task's local steps and the driver's step on averaged gradients).
 *
 * <p>On Spark, the driver calls {@link #beforeRound} before it broadcasts each round. The order within one
 * optimizer step: {@link #beforeStep} → forward/backward of the micro-batches →
 * {@link #regularize} → {@link #afterBackward} → clipping → optimizer → {@link #afterStep}.
 *
 * <p>{@link #roundState()} is state beyond the adapter tensors that must travel with every Spark round (AdaLoRA's
 * masks, DyLoRA's rank of the round): the driver broadcasts it with the adapter tensors and tasks
 * {@link #loadRoundState load} it; {@link #checkpointState()} is what a checkpoint keeps (the round state, or more:
 * AdaLoRA's smoothed importance), restored on resume. Tasks under parameter sync may send statistics back
 * ({@link #roundStatistics()}), which the driver averages like the parameters.
 */
public interface TrainingHooks {
    TrainingHooks NONE = new TrainingHooks() {};

    /**
     * Before any step: the run will take {@code totalSteps} optimizer steps in all (methods with a schedule over the
     * run, such as AdaLoRA's rank budget, plan it here). Called by every path: one process, the Spark driver, each task.
     */
    default void plan(long totalSteps) {}

    /**
     * On the Spark driver, once before the first round: this instance is the driver's, and {@code driverSteps} says
     * whether the driver takes the optimizer steps (sync: gradients, on the reduced gradients) or the tasks do
     * (parameter sync: {@code stepsPerRound} local steps each, averaged). Not called in one-process training or on tasks.
     */
    default void onDriver(boolean driverSteps, int stepsPerRound) {}

    /**
     * On the Spark driver, before round {@code round} (0-based; its first global step is {@code firstStep}) is broadcast:
     * decisions the driver makes once per round for every task (DyLoRA's rank; Delta-LoRA's snapshot under parameter
     * sync, where the driver takes no optimizer step), which then travel in {@link #roundState()}. Not called in
     * one-process training.
     */
    default void beforeRound(int round, long firstStep) {}

    /** Before the micro-batches of step {@code step} (0-based global step). */
    default void beforeStep(long step) {}

    /**
     * Adds a regulariser's gradient (times {@code gradScale}) into the trainable tensors' gradient buffers
     * and returns its value, to be added to the reported loss. Called once per optimizer step.
     */
    default double regularize(double gradScale) { return 0; }

    /** After the gradients of step {@code step} are complete, before clipping. */
    default void afterBackward(long step) {}

    /** After the optimizer updated the tensors. */
    default void afterStep(long step) {}

    /** State beyond the adapter tensors that each round carries to the tasks (empty for most methods). */
    default Map<String, INDArray> roundState() { return Map.of(); }

    /** Restores what {@link #roundState()} returned, on a task. */
    default void loadRoundState(Map<String, INDArray> state) {}

    /** What a checkpoint holds beyond the adapter tensors and the optimizer: the round state unless the method keeps more. */
    default Map<String, INDArray> checkpointState() { return roundState(); }

    /** Restores what {@link #checkpointState()} returned, on the driver when a run resumes. */
    default void loadCheckpointState(Map<String, INDArray> state) { loadRoundState(state); }

    /**
     * On a task after its local steps (parameter sync): statistics the driver should average over the tasks, weighted
     * as the parameters are (AdaLoRA's smoothed importance). Adapter-sized at most; empty for most methods.
     */
    default Map<String, INDArray> roundStatistics() { return Map.of(); }

    /** On the driver: the tasks' {@link #roundStatistics()}, averaged (called only when some task returned any). */
    default void loadReducedStatistics(Map<String, INDArray> mean) {}

    /** Figures of the method's state to log with each round or step (AdaLoRA's rank budget); empty for most methods. */
    default Map<String, Double> metrics() { return Map.of(); }
}
