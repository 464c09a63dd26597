package io.sparklora.spark.glora;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.glora.GloraMethod;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;
import io.sparklora.spark.ShardSource;
import io.sparklora.spark.train.TrainRoundTask;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.Evaluator;
import io.sparklora.train.RoundWork;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.function.Function2;

import java.util.Iterator;
import java.util.List;

/**
 * Evaluates one candidate of the GLoRA structure search on the executor (partition i = candidate i): a model over
 * the JVM's cached base ({@link BaseModelCache}), GLoRA attached with the candidate's per-layer structures and the
 * run's seed, {@code options.steps()} steps of the one-process {@link Trainer} on the sampled training blocks, then
 * the mean token loss over the validation blocks ({@link Evaluator}). Every candidate sees the same data, the same
 * initial tensors (GLoRA allocates every tensor whatever the support, so one seed gives the same values) and the
 * same batch order, so their losses differ only by structure.
 */
public final class CandidateTask implements Function2<Integer, Iterator<Integer>, Iterator<CandidateResult>> {
    private static final long serialVersionUID = 1L;
    /** The validation blocks are the dataset's validation split. */
    public static final String VALIDATION_SPLIT = "validation_split";
    /** The validation split is empty: every k-th sampled training block (k = min(5, blocks)) is held out instead. */
    public static final String HELD_OUT = "held_out_training_blocks";

    private final List<Candidate> candidates;
    private final BaseModelRef base;
    private final AdapterConfig adapter;
    private final TrainingOptions options;
    private final ShardSource train;
    private final ShardSource validation;       // may be null
    private final double sampleFraction;
    private final double validationSampleFraction;
    private final long sampleSeed;
    private final int evalBatchSize;
    private final SerializableConfiguration conf;

    public CandidateTask(List<Candidate> candidates, BaseModelRef base, AdapterConfig adapter, TrainingOptions options, ShardSource train,
                         ShardSource validation, double sampleFraction, double validationSampleFraction, long sampleSeed, int evalBatchSize,
                         SerializableConfiguration conf) {
        this.candidates = List.copyOf(candidates);
        this.base = base;
        this.adapter = adapter;
        this.options = options;
        this.train = train;
        this.validation = validation;
        this.sampleFraction = sampleFraction;
        this.validationSampleFraction = validationSampleFraction;
        this.sampleSeed = sampleSeed;
        this.evalBatchSize = evalBatchSize;
        this.conf = conf;
    }

    @Override
    public Iterator<CandidateResult> call(Integer partition, Iterator<Integer> ignored) {
        long t0 = System.nanoTime();
        TaskEngine.bind();
        Candidate c = candidates.get(partition);
        Data data = data(train, validation, sampleFraction, validationSampleFraction, sampleSeed, conf.get());
        TransformerLM model = BaseModelCache.model(base, conf.get());
        AttachedAdapter a = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, GloraMethod.withStructures(adapter, c.structures()), options.seed());
        List<Trainer.StepStats> steps = Trainer.forAdapter(a, options).train(data.train(), s -> {});
        Evaluator.Result val = Evaluator.evaluate(model, data.validation(), evalBatchSize);
        CandidateResult r = new CandidateResult();
        r.generation = c.generation();
        r.id = c.id();
        r.parent = c.parent();
        r.layerStructures = c.layerStructures();
        r.trainLoss = steps.get(steps.size() - 1).loss();
        r.validationLoss = val.loss();
        r.validationTokens = val.tokens();
        r.trainBlocks = data.train().size();
        r.validationBlocks = data.validation().size();
        r.validationSource = data.source();
        r.executor = TrainRoundTask.executorId();
        r.seconds = (System.nanoTime() - t0) / 1e9;
        return List.of(r).iterator();
    }

    /** The blocks a candidate trains and is evaluated on, and where the validation blocks came from. */
    public record Data(TokenBlocks train, TokenBlocks validation, String source) {}

    /**
     * The search's data, the same for every candidate: {@code sampleFraction} of every training shard
     * ({@link RoundWork#sample} with {@code seed}, shards in partition order), and {@code validationFraction} of every
     * validation shard likewise. When there are no validation blocks (no validation source, or an empty split),
     * every k-th sampled training block (k = min(5, blocks)) is held out as the validation set instead.
     */
    public static Data data(ShardSource train, ShardSource validation, double sampleFraction, double validationFraction, long seed,
                            Configuration conf) {
        TokenBlocks t = concat(train, sampleFraction, seed, conf);
        if (t == null || t.size() == 0) throw new IllegalArgumentException("glora_search: the training shards have no blocks");
        TokenBlocks v = validation == null ? null : concat(validation, validationFraction, seed, conf);
        if (v != null && v.size() > 0) return new Data(t, v, VALIDATION_SPLIT);
        if (t.size() < 2) {
            throw new IllegalArgumentException("glora_search: there are no validation blocks, and the training sample has " + t.size()
                    + " block(s), too few to hold some out; raise glora_search.sample_fraction or data.validation_fraction");
        }
        TokenBlocks[] split = t.splitEvery(Math.min(5, t.size()));
        return new Data(split[0], split[1], HELD_OUT);
    }

    /** The sampled blocks of every shard in partition order; null when there is no shard. */
    private static TokenBlocks concat(ShardSource shards, double fraction, long seed, Configuration conf) {
        TokenBlocks all = null;
        for (int p = 0; p < shards.partitions(); p++) {
            TokenBlocks s = RoundWork.sample(shards.load(p, conf), fraction, seed);
            if (all == null) all = new TokenBlocks(s.seqLen());
            for (int i = 0; i < s.size(); i++) all.add(s.block(i), s.mask(i));
        }
        return all;     // null: no shards at all
    }
}
