package io.sparklora.spark.glora;

import io.sparklora.adapters.glora.GloraStructure;

import java.io.Serializable;
import java.util.Map;

/**
 * What one {@link CandidateTask} reports for its candidate: the losses and where it ran. A plain class (not a
 * record) because task results go through Spark's serializer, Kryo, which fills fields reflectively.
 */
public final class CandidateResult implements Serializable {
    private static final long serialVersionUID = 1L;

    /** {@link Candidate#generation()}. */
    public int generation;
    /** {@link Candidate#id()}. */
    public int id;
    /** {@link Candidate#parent()}. */
    public int parent;
    /** {@link Candidate#layerStructures()}. */
    public String layerStructures;
    /** Loss of the last training step (the mean over that step's target tokens). */
    public double trainLoss;
    /** Mean token loss over the validation blocks after training. */
    public double validationLoss;
    /** Target tokens the validation loss is the mean over. */
    public long validationTokens;
    /** Blocks trained on and evaluated on. */
    public int trainBlocks, validationBlocks;
    /** Where the validation blocks came from: {@link CandidateTask#VALIDATION_SPLIT} or {@link CandidateTask#HELD_OUT}. */
    public String validationSource;
    /** The executor that ran the task ({@code id@pid}; {@code driver@pid} in local mode). */
    public String executor;
    /** Wall time of the task (reported, never compared). */
    public double seconds;

    public CandidateResult() {}

    public Map<String, GloraStructure> structures() { return GloraStructure.parseLayers(layerStructures); }

    /** The loss the search ranks by: a non-finite loss (a diverged candidate) ranks last. */
    public double rankLoss() { return Double.isFinite(validationLoss) ? validationLoss : Double.POSITIVE_INFINITY; }
}
