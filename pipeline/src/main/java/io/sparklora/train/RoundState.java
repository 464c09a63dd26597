package io.sparklora.train;

import java.io.Serializable;
import java.util.List;

/**
 * What the driver broadcasts at the start of a round: the adapter's trainable tensors, the method's
 * per-round state ({@link io.sparklora.adapters.TrainingHooks#roundState()}, usually empty), and with
 * {@code average_optimizer_state} the AdamW moments and step count. Nothing of the base model.
 * (A class, not a record: Spark's Kryo cannot build records.)
 */
public final class RoundState implements Serializable {
    private static final long serialVersionUID = 3L;
    private final int round;
    private final AdapterTensors adapter;
    private final AdapterTensors methodState;
    private final AdapterTensors moments;
    private final long optimizerStep;
    private final boolean[] clients;       // DP-FedAvg: the clients (partitions) the driver sampled this round; null: all
    private final AdapterTensors[] folds;  // train.aggregate: stack: every earlier round's folds (StackedRounds)

    public RoundState(int round, AdapterTensors adapter, AdapterTensors methodState, AdapterTensors moments, long optimizerStep) {
        this(round, adapter, methodState, moments, optimizerStep, null);
    }

    public RoundState(int round, AdapterTensors adapter, AdapterTensors methodState, AdapterTensors moments, long optimizerStep, boolean[] clients) {
        this(round, adapter, methodState, moments, optimizerStep, clients, List.of());
    }

    /** @param folds {@code train.aggregate: stack}: the folds of every earlier round, in order ({@link StackedRounds}) */
    public RoundState(int round, AdapterTensors adapter, AdapterTensors methodState, AdapterTensors moments, long optimizerStep, boolean[] clients,
                      List<AdapterTensors> folds) {
        this.round = round;
        this.adapter = adapter;
        this.methodState = methodState;
        this.moments = moments;
        this.optimizerStep = optimizerStep;
        this.clients = clients == null ? null : clients.clone();
        this.folds = folds.toArray(new AdapterTensors[0]);
    }

    /** Whether partition {@code p} takes part in this round (DP-FedAvg's client sampling; every partition otherwise). */
    public boolean takesPart(int p) { return clients == null || (p < clients.length && clients[p]); }

    public int round() { return round; }
    public AdapterTensors adapter() { return adapter; }
    /** The method's per-round state (empty for most methods). */
    public AdapterTensors methodState() { return methodState; }
    /** Averaged AdamW moments, or null when each round starts fresh. */
    public AdapterTensors moments() { return moments; }
    public long optimizerStep() { return optimizerStep; }
    /** {@code train.aggregate: stack}: the folds of every earlier round (empty otherwise). */
    public List<AdapterTensors> folds() { return List.of(folds); }

    /** This state with other folds (the Spark stages send the folds apart: {@code spark.train.FoldBroadcasts}). */
    public RoundState withFolds(List<AdapterTensors> newFolds) {
        return new RoundState(round, adapter, methodState, moments, optimizerStep, clients, newFolds);
    }

    /** Tensor bytes broadcast: adapter, method state, moments and folds. */
    public long bytes() {
        return adapter.bytes() + methodState.bytes() + (moments == null ? 0 : moments.bytes()) + StackedRounds.bytes(folds());
    }
}
