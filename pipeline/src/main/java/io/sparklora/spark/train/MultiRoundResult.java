package io.sparklora.spark.train;

import io.sparklora.train.RoundResult;
import org.apache.spark.api.java.function.Function2;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/** What one task of a shared round returns: each adapter's contribution, by adapter name. */
public final class MultiRoundResult implements Serializable {
    private static final long serialVersionUID = 1L;
    public final LinkedHashMap<String, RoundResult> byAdapter = new LinkedHashMap<>();

    /** {@code this += other}, adapter by adapter (an adapter missing on one side contributes nothing there). */
    public MultiRoundResult add(MultiRoundResult other) {
        for (Map.Entry<String, RoundResult> e : other.byAdapter.entrySet()) {
            RoundResult mine = byAdapter.get(e.getKey());
            byAdapter.put(e.getKey(), mine == null ? e.getValue() : mine.add(e.getValue()));
        }
        return this;
    }

    /** The sum of two tasks' results, in partition order ({@code PartitionOrderSum}). */
    public static final class Sum implements Function2<MultiRoundResult, MultiRoundResult, MultiRoundResult> {
        private static final long serialVersionUID = 1L;

        @Override
        public MultiRoundResult call(MultiRoundResult acc, MultiRoundResult next) {
            return acc.add(next);
        }
    }
}
