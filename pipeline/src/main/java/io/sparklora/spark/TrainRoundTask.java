package io.sparklora.spark;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.BatchOrder;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One task of one round, on the executor: takes the broadcast adapter, runs on its partition's shard,
 * and returns only adapter-sized tensors. The base comes from {@link BaseModelCache} (read once per JVM).
 *
 * <p>Data order and dropout are functions of (seed, partition, round), so a task needs no state from
 * earlier rounds and a resumed run sees exactly the batches the interrupted one would have.
 */
public final class TrainRoundTask implements Function2<Integer, Iterator<Integer>, Iterator<RoundResult>> {
    private static final long serialVersionUID = 1L;
    private final TrainSpec spec;
    private final ShardSource shards;
    private final SerializableConfiguration conf;
    private final Broadcast<RoundState> state;

    public TrainRoundTask(TrainSpec spec, ShardSource shards, SerializableConfiguration conf, Broadcast<RoundState> state) {
        this.spec = spec;
        this.shards = shards;
        this.conf = conf;
        this.state = state;
    }

    @Override
    public Iterator<RoundResult> call(Integer partition, Iterator<Integer> ignored) {
        RoundState st = state.value();
        RoundResult out = new RoundResult();
        out.executors.add(executorId());
        GpuBinding.bindCurrentTask().ifPresent(out.gpus::add);
        TokenBlocks data = sample(shards.load(partition, conf.get()), spec.sampleFraction(), spec.options().seed());
        if (data.size() == 0) return List.of(out).iterator();     // an empty shard contributes nothing (weight 0)

        TransformerLM model = BaseModelCache.model(spec.base(), conf.get());
        AttachedAdapter adapter = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
        List<Parameter> params = adapter.trainableParameters();
        st.adapter().copyInto(params);
        out.baseLoads.put(executorId(), BaseModelCache.loads());
        long seed = taskSeed(spec.options().seed(), partition, st.round());
        BatchOrder order = BatchOrder.at(data.size(), spec.options().seed() * 1_000_003L + partition, st.round() * spec.blocksPerRound());

        if (spec.sync().equals("gradients")) {
            gradients(model, params, data, order, seed, out);
        } else {
            localSteps(model, params, data, order, seed, st, out);
        }
        return List.of(out).iterator();
    }

    /** Σ over target tokens of ∂loss/∂θ (not the mean), so the driver's division by Σ targets is exact. */
    private void gradients(TransformerLM model, List<Parameter> params, TokenBlocks data, BatchOrder order, long seed, RoundResult out) {
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (int m = 0; m < spec.options().gradAccumulation(); m++) {
            TokenBatch batch = data.batch(order.next(spec.options().batchSize()));
            long targets = batch.targetCount();
            if (targets == 0) continue;
            CrossEntropyLoss.Result r = model.forwardBackward(batch, ForwardContext.training(rng), targets);
            out.lossSum += r.sumLoss();
            out.targets += r.count();
            out.tokens += batch.tokens();
        }
        out.payload = AdapterTensors.ofGradients(params);
        out.weight = out.targets;
        out.steps = 1;
    }

    /** K local AdamW steps, then θ and (optionally) the moments weighted by the target tokens seen. */
    private void localSteps(TransformerLM model, List<Parameter> params, TokenBlocks data, BatchOrder order, long seed,
                            RoundState st, RoundResult out) {
        TrainingOptions o = spec.options();
        AdamW opt = new AdamW(ParamGroup.byTag(params, o.weightDecay()), o.lr());
        if (st.moments() != null) opt.importState(optimizerState(st.moments(), st.optimizerStep()));
        Trainer trainer = new Trainer(model, opt, o.withSteps((int) spec.totalSteps()).withSeed(seed));
        trainer.resumeAt((long) st.round() * spec.localSteps());   // the lr schedule runs over global steps
        for (int k = 0; k < spec.localSteps(); k++) {
            Trainer.StepStats s = trainer.step(data, order);
            out.lossSum += s.loss() * s.targets();
            out.targets += s.targets();
            out.tokens += s.tokens();
            if (!Double.isFinite(s.gradNorm())) out.skippedSteps++;
        }
        out.steps = spec.localSteps();
        out.weight = out.targets;
        out.payload = AdapterTensors.ofValues(params).scale(out.weight);
        if (spec.averageOptimizerState()) out.moments = moments(opt.exportState()).scale(out.weight);
    }

    /** AdamW state ({@link AdamW#importState}) from averaged moments (may be null: none yet) and a step count. */
    static Map<String, INDArray> optimizerState(AdapterTensors moments, long step) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put(AdamW.STEP_KEY, Nd4j.scalar(org.nd4j.linalg.api.buffer.DataType.INT64, step));
        if (moments != null) m.putAll(moments.toArrays());
        return m;
    }

    /** The moments of an AdamW state (step counters left out: they are not averaged). */
    static AdapterTensors moments(Map<String, INDArray> optimizerState) {
        AdapterTensors t = new AdapterTensors();
        optimizerState.forEach((k, v) -> {
            if (k.endsWith(AdamW.EXP_AVG_SUFFIX) || k.endsWith(AdamW.EXP_AVG_SQ_SUFFIX)) t.put(k, v);
        });
        return t;
    }

    static long taskSeed(long seed, int partition, int round) {
        long h = seed * 0x9E3779B97F4A7C15L + partition * 0xBF58476D1CE4E5B9L + round * 0x94D049BB133111EBL;
        return h ^ (h >>> 31);
    }

    /** A deterministic subset of {@code fraction} of the blocks (all when fraction is 1). */
    static TokenBlocks sample(TokenBlocks data, double fraction, long seed) {
        if (fraction >= 1.0 || data.size() == 0) return data;
        int n = Math.max(1, (int) Math.ceil(fraction * data.size()));
        int[] pick = new BatchOrder(data.size(), seed ^ 0x5A17L).next(n);
        java.util.Arrays.sort(pick);
        TokenBlocks s = new TokenBlocks(data.seqLen());
        for (int i : pick) s.add(data.block(i), data.mask(i));
        return s;
    }

    static String executorId() {
        SparkEnv env = SparkEnv.get();
        String id = env == null ? "driver" : env.executorId();
        return id + "@" + ProcessHandle.current().pid();
    }
}
