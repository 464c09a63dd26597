package io.sparklora.spark;

import java.io.Serializable;

/**
 * What the driver broadcasts at the start of a round: the adapter tensors, and with
 * {@code average_optimizer_state} the AdamW moments and step count. Nothing of the base model.
 * (A class, not a record: Spark's Kryo cannot build records.)
 */
public final class RoundState implements Serializable {
    private static final long serialVersionUID = 1L;
    private final int round;
    private final AdapterTensors adapter;
    private final AdapterTensors moments;
    private final long optimizerStep;

    public RoundState(int round, AdapterTensors adapter, AdapterTensors moments, long optimizerStep) {
        this.round = round;
        this.adapter = adapter;
        this.moments = moments;
        this.optimizerStep = optimizerStep;
    }

    public int round() { return round; }
    public AdapterTensors adapter() { return adapter; }
    /** Averaged AdamW moments, or null when each round starts fresh. */
    public AdapterTensors moments() { return moments; }
    public long optimizerStep() { return optimizerStep; }

    public long bytes() { return adapter.bytes() + (moments == null ? 0 : moments.bytes()); }
}
