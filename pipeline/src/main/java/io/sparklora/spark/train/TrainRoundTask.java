package io.sparklora.spark.train;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.RoundWork;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;

import java.util.Iterator;
import java.util.List;

/**
 * One task of one round, on the executor: the closure holds the stage's {@link TrainTaskContext} as a broadcast
 * handle and the round's {@link RoundState}, inline when it is small or as a broadcast handle
 * ({@link RoundStateRef}, chosen by {@link TrainStage}), its stacking folds apart ({@link FoldBroadcasts}); it loads its partition's shard, builds a model over the JVM's cached
 * base ({@link BaseModelCache}, read once per JVM), attaches the adapter, and hands the work to
 * {@link RoundWork}. Only adapter-sized tensors come back.
 */
public final class TrainRoundTask implements Function2<Integer, Iterator<Integer>, Iterator<RoundResult>> {
    private static final long serialVersionUID = 3L;
    private final Broadcast<TrainTaskContext> context;
    private final RoundStateRef<FoldBroadcasts.Shipped> state;

    /** @param context the stage's unchanging part, broadcast once per stage; @param state this round's, inline or broadcast */
    TrainRoundTask(Broadcast<TrainTaskContext> context, RoundStateRef<FoldBroadcasts.Shipped> state) {
        this.context = context;
        this.state = state;
    }

    @Override
    public Iterator<RoundResult> call(Integer partition, Iterator<Integer> ignored) {
        FoldBroadcasts.Shipped shipped = state.value();
        TrainTaskContext ctx = context.value();
        String gpu = TaskEngine.bind().orElse(null);
        RoundResult out = work(ctx, partition, () -> ctx.shards().load(partition, ctx.conf().get()), shipped.restore(), shipped.runId());
        if (gpu != null) out.gpus.add(gpu);
        return List.of(out).iterator();
    }

    /**
     * One partition's work in one round, on the executor, wherever the round state came from (a task of its own, or a
     * round session's long-lived task, {@link RoundSessionTask}): samples the shard, builds a model over the JVM's
     * cached base, attaches the adapter, merges {@code train.aggregate: stack}'s folds and runs {@link RoundWork}.
     * Refused input comes back in the result ({@code inputErrors}) rather than thrown, so Spark does not retry it.
     *
     * @param shard the partition's shard (a task of a session loads it once)
     * @param runId names the stage run's merged folds in this JVM ({@link FoldedWeights})
     */
    static RoundResult work(TrainTaskContext ctx, int partition, java.util.function.Supplier<TokenBlocks> shard, RoundState st, String runId) {
        TrainSpec spec = ctx.spec();
        SerializableConfiguration conf = ctx.conf();
        RoundResult out;
        try {
            TokenBlocks data = RoundWork.sample(shard.get(), spec.sampleFraction(), spec.options().seed());
            if (data.size() == 0) {
                out = new RoundResult();
            } else {
                TransformerLM model = BaseModelCache.model(spec.base(), conf.get());
                AttachedAdapter adapter = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
                FoldedWeights.prepare(adapter, runId, st.folds());     // stack: the earlier rounds, merged once per JVM
                out = RoundWork.run(adapter, data, st, spec, partition);
                out.baseLoads.put(executorId(), BaseModelCache.loads());
            }
        } catch (RuntimeException e) {
            // refused input fails the same way on every attempt: report it to the driver instead of having Spark retry it
            if (!io.sparklora.spark.FailFast.isInputError(e)) throw e;
            out = new RoundResult();
            out.inputErrors.add(e.getMessage() + " (partition " + partition + ")");
        }
        out.executors.add(executorId());
        return out;
    }

    /** The executor this code runs on, {@code id@pid} ({@code driver@pid} in local mode). */
    public static String executorId() {
        SparkEnv env = SparkEnv.get();
        String id = env == null ? "driver" : env.executorId();
        return id + "@" + ProcessHandle.current().pid();
    }
}
