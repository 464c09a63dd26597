package io.sparklora.spark.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.StackedRounds;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code train.aggregate: stack} on an executor: the targeted weights with every fold merged so far, kept per JVM and per
 * stage run, so that a task merges only the folds no task in this JVM has merged yet and reads the rest from here, with
 * no copy: the first task of a round merges the previous round's P folds into a copy of the cached weights and puts
 * that copy here; every other task of the round reads it. Without it every task would copy the targeted weights and
 * merge every fold since the first round. Entries are read-only (copy-on-write, {@link AttachedAdapter#adoptFolded});
 * the cache holds the two most recent runs.
 */
final class FoldedWeights {
    private record Entry(int folds, Map<String, INDArray> weights) {}

    private static final LinkedHashMap<String, Entry> CACHE = new LinkedHashMap<>();
    private static final int RUNS = 2;

    private FoldedWeights() {}

    /** Brings {@code adapter}'s model (fresh, nothing folded) to every fold of {@code folds}, reusing this JVM's merge of run {@code runId}. */
    static void prepare(AttachedAdapter adapter, String runId, List<AdapterTensors> folds) {
        if (folds.isEmpty()) return;
        Entry e;
        synchronized (CACHE) {
            e = CACHE.get(runId);
        }
        if (e != null && e.folds() <= folds.size()) adapter.adoptFolded(e.weights(), e.folds());
        int before = adapter.folded();
        StackedRounds.foldInto(adapter, folds);
        if (adapter.folded() == before) return;
        Map<String, INDArray> merged = adapter.foldedWeights();
        synchronized (CACHE) {
            Entry cur = CACHE.get(runId);
            if (cur == null || cur.folds() < adapter.folded()) {
                CACHE.remove(runId);
                CACHE.put(runId, new Entry(adapter.folded(), merged));
                for (Iterator<String> it = CACHE.keySet().iterator(); CACHE.size() > RUNS; ) {
                    it.next();
                    it.remove();
                }
            }
        }
    }

    /** How many folds this JVM's entry for {@code runId} holds (0: none); for tests. */
    static int cached(String runId) {
        synchronized (CACHE) {
            Entry e = CACHE.get(runId);
            return e == null ? 0 : e.folds();
        }
    }
}
