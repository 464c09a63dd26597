package io.sparklora.spark.train;

import io.sparklora.train.RoundResult;

import org.apache.spark.api.java.function.Function2;

/** Adds two task results (the reduction of {@link io.sparklora.spark.PartitionOrderSum}). */
public final class RoundResultSum implements Function2<RoundResult, RoundResult, RoundResult> {
    private static final long serialVersionUID = 1L;

    @Override
    public RoundResult call(RoundResult acc, RoundResult next) {
        return acc.add(next);
    }
}
