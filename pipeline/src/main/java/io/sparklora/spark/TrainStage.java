package io.sparklora.spark;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.LrSchedule;
import io.sparklora.optim.ParamGroup;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.stream.IntStream;

/**
 * The {@code train} stage: parameter-averaged adapter training. The driver holds the adapter; each round
 * it broadcasts only the adapter tensors, every partition's task trains on its own shard, and a
 * {@code treeAggregate} brings back adapter-sized sums that the driver turns into the next adapter.
 * The frozen base model never moves: each executor JVM reads it once from storage ({@link BaseModelCache}).
 */
public final class TrainStage {
    private TrainStage() {}

    /** Called after each round on the driver (progress, tests that simulate a crash). */
    @FunctionalInterface
    public interface RoundListener {
        void afterRound(int roundsDone, RoundResult result);
    }

    /** What a run produced. */
    public record Result(AttachedAdapter adapter, int roundsRun, int resumedFrom, long trainableParams, long totalParams,
                         long adapterBytes, long modelBytes, long bytesBroadcastPerRound, long bytesReducedPerRound,
                         double tokensPerSecond, double finalLoss, TreeSet<String> executors, TreeSet<String> gpus,
                         Map<String, Integer> baseLoadsByExecutor) {
        public ObjectNode toJson(ObjectNode o) {
            return o.put("trainable_params", trainableParams).put("total_params", totalParams)
                    .put("adapter_bytes", adapterBytes).put("model_bytes", modelBytes)
                    .put("bytes_broadcast_per_round", bytesBroadcastPerRound).put("bytes_reduced_per_round", bytesReducedPerRound)
                    .put("tokens_per_second", tokensPerSecond).put("final_loss", finalLoss)
                    .put("rounds", roundsRun).put("resumed_from_round", resumedFrom).put("executors", executors.size());
        }
    }

    public static Result run(JavaSparkContext sc, TrainSpec spec, ShardSource shards, MetricsLog metrics, String stageName,
                             PrintStream console, RoundListener listener) throws IOException {
        Configuration conf = sc.hadoopConfiguration();
        SerializableConfiguration sconf = new SerializableConfiguration(conf);
        TransformerLM model = BaseModelCache.model(spec.base(), conf);
        AttachedAdapter adapter = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
        List<Parameter> params = adapter.trainableParameters();
        var o = spec.options();
        AdamW optimizer = new AdamW(ParamGroup.byTag(params, o.weightDecay()), o.lr());
        LrSchedule schedule = LrSchedule.parse(o.schedule(), o.warmupSteps(), spec.totalSteps(), o.minLrRatio());
        AdapterTensors moments = null;      // averaged moments (parameters sync with averaging)
        long momentsStep = 0;

        int start = 0;
        if (spec.checkpointEvery() > 0 && spec.outputUri() != null) {
            Optional<TrainCheckpoint.Loaded> ck = TrainCheckpoint.latest(conf, spec.outputUri());
            if (ck.isPresent()) {
                TrainCheckpoint.Loaded c = ck.get();
                String fp = fingerprint(spec);
                if (!fp.equals(c.state().path("settings_fingerprint").asText())) {
                    throw new IllegalStateException("train: the checkpoint in " + spec.outputUri() + " was made with other settings ("
                            + c.state().path("settings").asText() + "); delete " + TrainCheckpoint.dir(spec.outputUri()) + " or use another output");
                }
                loadPeftTensors(adapter, c.adapter());
                if (spec.sync().equals("gradients")) optimizer.importState(c.optimizer());
                else if (spec.averageOptimizerState()) {
                    moments = TrainRoundTask.moments(c.optimizer());
                    momentsStep = Math.round(c.optimizer().get(AdamW.STEP_KEY).getDouble(0));
                }
                start = c.roundsDone();
                int resumed = start;
                metrics.removeIf(l -> l.path("stage").asText().equals(stageName) && l.path("round").asInt() > resumed);
                console.printf(Locale.ROOT, "%s: resuming after round %d from %s%n", stageName, start, TrainCheckpoint.dir(spec.outputUri()));
            }
        }
        if (start == 0) metrics.removeIf(l -> l.path("stage").asText().equals(stageName));

        JavaRDD<Integer> partitions = sc.parallelize(IntStream.range(0, shards.partitions()).boxed().toList(), shards.partitions());
        RoundResultSum sum = new RoundResultSum();
        long broadcastBytes = 0, reducedBytes = 0, tokens = 0;
        double seconds = 0, lastLoss = Double.NaN;
        TreeSet<String> executors = new TreeSet<>(), gpus = new TreeSet<>();
        Map<String, Integer> baseLoads = new java.util.TreeMap<>();
        long t0 = System.nanoTime();
        for (int round = start; round < spec.rounds(); round++) {
            long tr = System.nanoTime();
            RoundState st = new RoundState(round, AdapterTensors.ofValues(params), moments, momentsStep);
            Broadcast<RoundState> b = sc.broadcast(st);
            RoundResult res = partitions.mapPartitionsWithIndex(new TrainRoundTask(spec, shards, sconf, b), false)
                    .treeAggregate(new RoundResult(), sum, sum, 2);
            b.destroy();
            if (res.weight == 0) throw new IllegalStateException(stageName + ": no partition had any target tokens to train on");

            if (spec.sync().equals("gradients")) {
                AdapterTensors meanGrad = res.payload.scale(1.0 / res.weight);
                optimizer.zeroGrad();
                for (Parameter p : params) p.accumulate(meanGrad.get(p.name()).castTo(p.value().dataType()));
                double norm = o.maxGradNorm() > 0 ? GradClipping.clip(params, o.maxGradNorm()) : GradClipping.globalNorm(params);
                if (Double.isFinite(norm)) optimizer.step(schedule.factor(round));
                optimizer.zeroGrad();
            } else {
                res.payload.scale(1.0 / res.weight).copyInto(params);
                if (res.moments != null) {
                    moments = res.moments.scale(1.0 / res.weight);
                    momentsStep += spec.localSteps();
                }
            }
            double roundSeconds = (System.nanoTime() - tr) / 1e9;
            broadcastBytes = st.bytes();
            reducedBytes = res.bytes();     // element-wise sums: the same size as one task's contribution
            tokens += res.tokens;
            seconds += roundSeconds;
            lastLoss = res.lossSum / res.targets;
            executors.addAll(res.executors);
            gpus.addAll(res.gpus);
            res.baseLoads.forEach((k, v) -> baseLoads.merge(k, v, Math::max));
            int done = round + 1;
            metrics.append(metrics.line(stageName).put("round", done).put("step", (long) done * spec.localSteps())
                    .put("loss", lastLoss).put("tokens", res.tokens).put("tokens_per_second", res.tokens / roundSeconds)
                    .put("bytes_broadcast", broadcastBytes).put("bytes_reduced", reducedBytes)
                    .put("lr_factor", schedule.factor((long) round * spec.localSteps())).put("seconds", roundSeconds));
            double eta = (System.nanoTime() - t0) / 1e9 / (done - start) * (spec.rounds() - done);
            console.printf(Locale.ROOT, "%s round %d/%d  loss %.4f  %,.0f tok/s  moved %s down, %s up per task  ETA %s%n",
                    stageName, done, spec.rounds(), lastLoss, res.tokens / roundSeconds, human(broadcastBytes), human(reducedBytes), clock(eta));
            if (spec.checkpointEvery() > 0 && spec.outputUri() != null && (done % spec.checkpointEvery() == 0 || done == spec.rounds())) {
                Map<String, INDArray> opt = spec.sync().equals("gradients") ? optimizer.exportState() : TrainRoundTask.optimizerState(moments, momentsStep);
                TrainCheckpoint.write(conf, spec.outputUri(), adapter, opt, checkpointState(spec, done), done, spec.base().uri());
            }
            if (listener != null) listener.afterRound(done, res);
        }
        if (spec.outputUri() != null) saveAdapter(conf, adapter, HadoopFiles.resolve(spec.outputUri(), "adapter"), spec.base().uri());
        long trainable = adapter.trainableParameterCount();
        return new Result(adapter, spec.rounds() - start, start, trainable, adapter.report().all(), 4 * trainable,
                4 * model.baseParameterCount(), broadcastBytes, reducedBytes, seconds > 0 ? tokens / seconds : 0, lastLoss, executors, gpus, baseLoads);
    }


    /** Writes the adapter in PEFT layout to any file system, atomically. */
    public static void saveAdapter(Configuration conf, AttachedAdapter adapter, String uri, String baseModel) throws IOException {
        HadoopFiles.writeDirectoryFromLocal(conf, uri, local -> PeftAdapterFormat.save(adapter, local, baseModel));
    }

    /** Loads tensors in PEFT naming (as saved) into an attached adapter's layers and trainable biases. */
    public static void loadPeftTensors(AttachedAdapter adapter, Map<String, INDArray> peft) {
        String prefix = "base_model.model.";
        for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
            String p = prefix + e.getKey() + ".";
            Map<String, INDArray> mine = new LinkedHashMap<>();
            for (var t : peft.entrySet()) if (t.getKey().startsWith(p)) mine.put(t.getKey().substring(p.length()), t.getValue());
            e.getValue().loadStateDict(mine, "checkpoint");
        }
        for (Parameter b : adapter.trainableBiases()) {
            INDArray v = peft.get(prefix + b.name());
            if (v != null) b.set(v.castTo(b.value().dataType()));
        }
    }

    private static ObjectNode checkpointState(TrainSpec spec, int done) {
        ObjectNode s = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode();
        s.put("rounds_done", done).put("global_step", (long) done * spec.localSteps())
                .put("settings_fingerprint", fingerprint(spec)).put("settings", settings(spec));
        s.putObject("data_position").put("blocks_consumed_per_partition", done * spec.blocksPerRound())
                .put("order", "per-partition permutation seeded by (seed, partition), one per epoch");
        s.putObject("rng").put("seed", spec.options().seed()).put("scheme", "dropout seeded by (seed, partition, round)");
        return s;
    }

    private static String settings(TrainSpec s) {
        return "base=" + s.base().contentHash() + " adapter=" + s.adapter() + " share=" + new java.util.TreeMap<>(s.shareGroups())
                + " rounds=" + s.rounds() + " K=" + s.localSteps() + " sync=" + s.sync() + " avg_opt=" + s.averageOptimizerState()
                + " options=" + s.options() + " sample=" + s.sampleFraction();
    }

    static String fingerprint(TrainSpec s) {
        var md = BaseModelRef.sha256();
        return java.util.HexFormat.of().formatHex(md.digest(settings(s).getBytes(java.nio.charset.StandardCharsets.UTF_8))).substring(0, 16);
    }

    static String human(long bytes) {
        if (bytes < 1024) return bytes + " B";
        if (bytes < 1 << 20) return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
        return String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    static String clock(double s) {
        long t = Math.round(s);
        return String.format(Locale.ROOT, "%d:%02d", t / 60, t % 60);
    }
}
