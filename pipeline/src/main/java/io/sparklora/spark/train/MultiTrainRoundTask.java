package io.sparklora.spark.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.FailFast;
import io.sparklora.spark.TaskEngine;
import io.sparklora.train.MultiAdapterTrainer;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.RoundWork;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One task of one shared round ({@link MultiTrainStage}): on its partition, every adapter of this round attaches to
 * one model over the JVM's cached base, each with its own shard, and {@link RoundWork#runTogether} trains them in
 * shared batches. An adapter whose shard is refused (unreadable, token ids outside the vocabulary, a bad config)
 * returns that as its input error; the others train.
 */
public final class MultiTrainRoundTask implements Function2<Integer, Iterator<Integer>, Iterator<MultiRoundResult>> {
    private static final long serialVersionUID = 1L;
    private final Broadcast<LinkedHashMap<String, TrainTaskContext>> contexts;
    private final RoundStateRef<LinkedHashMap<String, RoundState>> states;

    /** @param contexts each adapter's unchanging part, broadcast once per stage; @param states this round's, by adapter, inline or broadcast */
    MultiTrainRoundTask(Broadcast<LinkedHashMap<String, TrainTaskContext>> contexts, RoundStateRef<LinkedHashMap<String, RoundState>> states) {
        this.contexts = contexts;
        this.states = states;
    }

    @Override
    public Iterator<MultiRoundResult> call(Integer partition, Iterator<Integer> ignored) {
        String gpu = TaskEngine.bind().orElse(null);
        MultiRoundResult out = new MultiRoundResult();
        TransformerLM model = null;
        List<RoundWork.Member> members = new ArrayList<>();
        for (Map.Entry<String, RoundState> e : states.value().entrySet()) {
            String name = e.getKey();
            TrainTaskContext ctx = contexts.value().get(name);
            TrainSpec spec = ctx.spec();
            try {
                Configuration conf = ctx.conf().get();
                TokenBlocks data = partition < ctx.shards().partitions()
                        ? RoundWork.sample(ctx.shards().load(partition, conf), spec.sampleFraction(), spec.options().seed())
                        : new TokenBlocks(2);
                if (model == null) model = BaseModelCache.model(spec.base(), conf);
                MultiAdapterTrainer.checkTokens(data, model.config().vocabSize());
                AttachedAdapter adapter = AttachedAdapter.attach(model, name, spec.adapter(), spec.options().seed(), spec.shareGroups());
                members.add(new RoundWork.Member(name, adapter, data, e.getValue(), spec));
            } catch (RuntimeException ex) {
                // refused input fails the same way on every attempt: that adapter reports it, the others go on
                if (!FailFast.isInputError(ex)) throw ex;
                RoundResult bad = new RoundResult();
                bad.inputErrors.add("adapter '" + name + "': " + ex.getMessage() + " (partition " + partition + ")");
                out.byAdapter.put(name, bad);
            }
        }
        // attaching made each adapter active on the fresh model, so the mixed batch trains all of them
        if (!members.isEmpty()) out.byAdapter.putAll(RoundWork.runTogether(members, partition));
        String executor = TrainRoundTask.executorId();
        for (RoundResult r : out.byAdapter.values()) {
            r.executors.add(executor);
            if (gpu != null) r.gpus.add(gpu);
            r.baseLoads.put(executor, BaseModelCache.loads());
        }
        return List.of(out).iterator();
    }
}
