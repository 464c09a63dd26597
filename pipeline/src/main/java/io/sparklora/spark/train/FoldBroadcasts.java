package io.sparklora.spark.train;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.RoundState;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code train.aggregate: stack}'s folds on their way to the tasks ({@link io.sparklora.train.StackedRounds}). Every
 * round's state holds all folds so far; sent as it is, round t would move t·P adapters' worth to every executor.
 * Instead each round's new folds go out once, as a broadcast of their own that lives until the stage ends, and the
 * round state travels without folds, with the handles of every fold broadcast so far ({@link Shipped}). An executor
 * keeps each broadcast value it has fetched, so per round it fetches only the new folds (FLoRA's P stacked adapters);
 * an executor that joins late fetches the earlier ones once. {@link Shipped#restore} puts the folds back, in order.
 */
final class FoldBroadcasts {
    private final JavaSparkContext sc;
    private final List<Broadcast<AdapterTensors[]>> sent = new ArrayList<>();
    private int shipped;        // folds the broadcasts hold
    private final String runId = java.util.UUID.randomUUID().toString();   // names this stage run's folds in FoldedWeights

    FoldBroadcasts(JavaSparkContext sc) { this.sc = sc; }

    /** A round state without its folds, and the broadcasts that hold them. */
    static final class Shipped implements Serializable {
        private static final long serialVersionUID = 1L;
        private final RoundState state;
        private final ArrayList<Broadcast<AdapterTensors[]>> folds;
        private final String runId;

        Shipped(RoundState state, List<Broadcast<AdapterTensors[]>> folds, String runId) {
            this.state = state;
            this.folds = new ArrayList<>(folds);
            this.runId = runId;
        }

        /** The stage run the folds belong to ({@link FoldedWeights}' key). */
        String runId() { return runId; }

        /** On the executor: the round state with every fold, in the order the driver made them. */
        RoundState restore() {
            if (folds.isEmpty()) return state;
            List<AdapterTensors> all = new ArrayList<>();
            for (Broadcast<AdapterTensors[]> b : folds) all.addAll(List.of(b.value()));
            return state.withFolds(all);
        }

        /** Tensor bytes of what rides in the state itself (the folds travel apart). */
        long bytes() { return state.bytes(); }
    }

    /**
     * The folds of {@code st} after the first {@code sent}, which went out before (every round carries all folds so far,
     * so a round that carries fewer means the driver lost track).
     */
    static AdapterTensors[] unsent(RoundState st, int sent) {
        List<AdapterTensors> all = st.folds();
        if (all.size() < sent) {
            throw new IllegalStateException("train.aggregate: stack: the round carries " + all.size() + " folds, " + sent + " were sent before");
        }
        return all.subList(sent, all.size()).toArray(new AdapterTensors[0]);
    }

    /** Broadcasts the folds of {@code st} not sent yet, and returns the state to ship. */
    Shipped ship(RoundState st) {
        AdapterTensors[] fresh = unsent(st, shipped);
        if (fresh.length > 0) {
            sent.add(sc.broadcast(fresh));
            shipped += fresh.length;
        }
        return new Shipped(st.folds().isEmpty() ? st : st.withFolds(List.of()), sent, runId);
    }

    /** Destroys every fold broadcast (when the stage ends). */
    void destroy() {
        sent.forEach(Broadcast::destroy);
        sent.clear();
        shipped = 0;
    }
}
