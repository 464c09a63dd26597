package io.sparklora.train;

import io.sparklora.adapters.AttachedAdapter;

import java.util.List;

/**
 * The distributed trainer's rounds run in this process, one partition after another: the arithmetic of the Spark
 * stage (round state in, summed results out, the driver's step and, under DP, its noise) without Spark, for
 * benchmarks and one-process DP runs. The worker adapter sits on its own model over the same frozen base arrays as
 * the driver's and is overwritten from the round state at the start of every partition, as an executor's would be.
 */
public final class InProcessRounds implements DistributedTrainer.RoundExecutor {
    private final AttachedAdapter worker;
    private final List<TokenBlocks> shards;
    private final TrainSpec spec;

    public InProcessRounds(AttachedAdapter worker, List<TokenBlocks> shards, TrainSpec spec) {
        this.worker = worker;
        this.shards = List.copyOf(shards);
        this.spec = spec;
    }

    public int partitions() { return shards.size(); }

    @Override
    public RoundResult run(RoundState state) {
        RoundResult sum = new RoundResult();
        for (int p = 0; p < shards.size(); p++) sum.add(RoundWork.run(worker, shards.get(p), state, spec, p));
        sum.executors.add("in-process");
        return sum;
    }
}
