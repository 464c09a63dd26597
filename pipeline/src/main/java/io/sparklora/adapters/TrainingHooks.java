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
 * <p>{@link #roundState()} is state beyond the adapter tensors that must travel with every Spark round and
 * into checkpoints (AdaLoRA's masks, DyLoRA's rank of the round): the driver broadcasts it with the adapter
 * tensors, tasks {@link #loadRoundState load} it, and resume restores it.
 */
public interface TrainingHooks {
    TrainingHooks NONE = new TrainingHooks() {};

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

    /** State beyond the adapter tensors that each round and each checkpoint carries (empty for most methods). */
    default Map<String, INDArray> roundState() { return Map.of(); }

    /** Restores what {@link #roundState()} returned (on an executor, or on resume). */
    default void loadRoundState(Map<String, INDArray> state) {}
}
