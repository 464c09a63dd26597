package io.sparklora.train;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.Parameter;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.LrSchedule;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The driver's loop of distributed adapter training: it owns the schedule, the optimizer step on averaged
 * gradients (through the one {@link TrainingStep}), parameter averaging, the method's per-round state,
 * checkpoints, resume and metrics. How a round's work is spread over workers is the caller's
 * ({@link RoundExecutor}: the Spark stage broadcasts the round state and tree-aggregates what the tasks
 * return); the loop sees only the round state going out and the summed {@link RoundResult} coming back.
 *
 * <p>{@code sync: gradients}: workers return Σ per-token gradients, the driver divides by Σ targets and
 * steps, which equals one-process training on the union of the batches. {@code sync: parameters}: workers
 * take K local steps and return target-weighted tensors (and moments), the driver averages them.
 */
public final class DistributedTrainer {
    private DistributedTrainer() {}

    /** Runs one round's work on the workers and returns the sum of their results. */
    @FunctionalInterface
    public interface RoundExecutor {
        RoundResult run(RoundState state);
    }

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

    /**
     * Trains {@code adapter} (attached on the driver's model) for {@code spec.rounds()} rounds, resuming from the
     * newest checkpoint under {@code spec.outputUri()} when there is one.
     */
    public static Result run(AttachedAdapter adapter, TrainSpec spec, Configuration conf, RoundExecutor executor, MetricsLog metrics,
                             String stageName, PrintStream console, RoundListener listener) throws IOException {
        List<Parameter> params = adapter.trainableParameters();
        var o = spec.options();
        AdamW optimizer = Optimizers.forAdapter(adapter, o);
        LrSchedule schedule = LrSchedule.parse(o.schedule(), o.warmupSteps(), spec.totalSteps(), o.minLrRatio());
        TrainingStep step = new TrainingStep(adapter.model(), optimizer, adapter.hooks(), schedule, o.maxGradNorm());
        boolean gradientSync = spec.sync().equals("gradients");
        AdapterTensors moments = null;      // averaged moments (parameters sync with averaging)
        long momentsStep = 0;

        int start = 0;
        if (spec.checkpointEvery() > 0 && spec.outputUri() != null) {
            Optional<TrainCheckpoint.Loaded> ck = TrainCheckpoint.latest(conf, spec.outputUri());
            if (ck.isPresent()) {
                TrainCheckpoint.Loaded c = ck.get();
                String fp = fingerprint(spec);
                if (!fp.equals(c.state().path("settings_fingerprint").asText())) {
                    throw new IllegalStateException(stageName + ": the checkpoint in " + spec.outputUri() + " was made with other settings ("
                            + c.state().path("settings").asText() + "); delete " + TrainCheckpoint.dir(spec.outputUri()) + " or use another output");
                }
                io.sparklora.adapters.PeftAdapterFormat.loadTensors(adapter, c.adapter(), "checkpoint " + TrainCheckpoint.dir(spec.outputUri()), false);
                adapter.hooks().loadRoundState(c.methodState());
                if (gradientSync) optimizer.importState(c.optimizer());
                else if (spec.averageOptimizerState()) {
                    moments = RoundWork.moments(c.optimizer());
                    momentsStep = Math.round(c.optimizer().get(AdamW.STEP_KEY).getDouble(0));
                }
                start = c.roundsDone();
                int resumed = start;
                metrics.removeIf(l -> l.path("stage").asText().equals(stageName) && l.path("round").asInt() > resumed);
                console.printf(Locale.ROOT, "%s: resuming after round %d from %s%n", stageName, start, TrainCheckpoint.dir(spec.outputUri()));
            }
        }
        if (start == 0) metrics.removeIf(l -> l.path("stage").asText().equals(stageName));

        long broadcastBytes = 0, reducedBytes = 0, tokens = 0;
        double seconds = 0, lastLoss = Double.NaN;
        TreeSet<String> executors = new TreeSet<>(), gpus = new TreeSet<>();
        Map<String, Integer> baseLoads = new TreeMap<>();
        long t0 = System.nanoTime();
        for (int round = start; round < spec.rounds(); round++) {
            long tr = System.nanoTime();
            long globalStep = (long) round * spec.localSteps();
            adapter.hooks().beforeRound(round, globalStep); // the driver's per-round decisions (DyLoRA's rank) travel in the round state
            if (gradientSync) step.begin(globalStep);     // what a hook decides for this step travels in the round state
            RoundState st = new RoundState(round, AdapterTensors.ofValues(params), AdapterTensors.of(adapter.hooks().roundState()),
                    moments, momentsStep);
            RoundResult res = executor.run(st);
            if (res.weight == 0) throw new IllegalStateException(stageName + ": no partition had any target tokens to train on");

            if (gradientSync) {
                AdapterTensors meanGrad = res.payload.scale(1.0 / res.weight);
                optimizer.zeroGrad();
                for (Parameter p : params) p.accumulate(meanGrad.get(p.name()).castTo(p.value().dataType()));
                step.apply(globalStep);
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
                    .put("lr_factor", schedule.factor(globalStep)).put("seconds", roundSeconds));
            double eta = (System.nanoTime() - t0) / 1e9 / (done - start) * (spec.rounds() - done);
            console.printf(Locale.ROOT, "%s round %d/%d  loss %.4f  %,.0f tok/s  moved %s down, %s up per task  ETA %s%n",
                    stageName, done, spec.rounds(), lastLoss, res.tokens / roundSeconds, human(broadcastBytes), human(reducedBytes), clock(eta));
            if (spec.checkpointEvery() > 0 && spec.outputUri() != null && (done % spec.checkpointEvery() == 0 || done == spec.rounds())) {
                Map<String, INDArray> opt = gradientSync ? optimizer.exportState() : RoundWork.optimizerState(moments, momentsStep);
                TrainCheckpoint.write(conf, spec.outputUri(), adapter, opt, adapter.hooks().roundState(), checkpointState(spec, done), done,
                        spec.base().uri());
            }
            if (listener != null) listener.afterRound(done, res);
        }
        long trainable = adapter.trainableParameterCount();
        return new Result(adapter, spec.rounds() - start, start, trainable, adapter.report().all(), 4 * trainable,
                4 * adapter.model().baseParameterCount(), broadcastBytes, reducedBytes, seconds > 0 ? tokens / seconds : 0, lastLoss,
                executors, gpus, baseLoads);
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
        return "base=" + s.base().contentHash() + " adapter=" + s.adapter() + " share=" + new TreeMap<>(s.shareGroups())
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
