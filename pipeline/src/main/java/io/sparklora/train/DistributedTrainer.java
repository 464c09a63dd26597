package io.sparklora.train;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.Parameter;
import io.sparklora.optim.AdamW;
import io.sparklora.privacy.DpNoise;
import io.sparklora.privacy.DpSpec;
import io.sparklora.privacy.RdpAccountant;
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
 * take K local steps and return target-weighted tensors (and moments), the driver averages them and, with
 * {@code train.outer}, takes DiLoCo's outer step towards the average ({@link OuterOptimizer}).
 */
public final class DistributedTrainer {
    private DistributedTrainer() {}

    /** Runs one round's work on the workers and returns the sum of their results. */
    @FunctionalInterface
    public interface RoundExecutor {
        RoundResult run(RoundState state);
    }

    /**
     * What a DP run spent: ε at δ (and the RDP order that gave it) after {@code noisySteps} noisy steps, and whether it
     * stopped early at its ε budget.
     */
    public record Privacy(String mode, double epsilon, double delta, double order, long noisySteps, double sampleRate,
                          double noiseMultiplier, double clipNorm, boolean stoppedAtBudget, double epsilonBudget) {
        public ObjectNode toJson(ObjectNode o) {
            o.put("mode", mode).put("epsilon", epsilon).put("delta", delta).put("best_order", order).put("noisy_steps", noisySteps)
                    .put("sample_rate", sampleRate).put("noise_multiplier", noiseMultiplier).put("clip_norm", clipNorm)
                    .put("stopped_at_budget", stoppedAtBudget);
            if (epsilonBudget > 0) o.put("epsilon_budget", epsilonBudget);
            return o;
        }
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
                         Map<String, Integer> baseLoadsByExecutor, Privacy privacy) {
        public ObjectNode toJson(ObjectNode o) {
            if (privacy != null) privacy.toJson(o.putObject("dp"));
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
    public static Result run(AttachedAdapter adapter, TrainSpec spec, Configuration conf, RoundExecutor executor, int clients,
                             MetricsLog metrics, String stageName, PrintStream console, RoundListener listener) throws IOException {
        DpSpec dp = spec.dp();
        RdpAccountant accountant = new RdpAccountant();
        boolean stoppedAtBudget = false;
        List<Parameter> params = adapter.trainableParameters();
        var o = spec.options();
        AdamW optimizer = Optimizers.forAdapter(adapter, o);
        LrSchedule schedule = LrSchedule.parse(o.schedule(), o.warmupSteps(), spec.totalSteps(), o.minLrRatio());
        TrainingStep step = new TrainingStep(adapter.model(), optimizer, adapter.hooks(), schedule, o.maxGradNorm());
        boolean gradientSync = spec.sync().equals("gradients");
        adapter.hooks().plan(spec.totalSteps());
        adapter.hooks().onDriver(gradientSync || dp.exampleLevel(), spec.localSteps());     // who takes the optimizer steps
        AdapterTensors moments = null;      // averaged moments (parameters sync with averaging)
        long momentsStep = 0;
        OuterOptimizer outer = new OuterOptimizer(spec.outer());   // parameters sync: the driver's step on the averaged change
        boolean stack = spec.aggregate().equals("stack");
        List<ExactAggregation.Pair> factorPairs = spec.aggregate().equals("svd") || stack
                ? ExactAggregation.pairs(params, spec.adapter().adapterMethod().productFactors(spec.adapter())) : List.of();
        List<AdapterTensors> folds = new java.util.ArrayList<>();   // aggregate: stack: every round's workers' factors so far
        long foldBytesSent = 0;                                      // aggregate: stack: fold bytes the earlier rounds sent

        int start = 0;
        Progress pr = new Progress();   // the rounds before a resume count in the run's figures
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
                adapter.hooks().loadCheckpointState(c.methodState());
                if (dp.on()) accountant = RdpAccountant.of(accountantHistory(c.state()));
                if (gradientSync) optimizer.importState(c.optimizer());
                else if (spec.averageOptimizerState()) {
                    moments = RoundWork.moments(c.optimizer());
                    momentsStep = Math.round(c.optimizer().get(AdamW.STEP_KEY).getDouble(0));
                }
                if (!gradientSync) outer.importState(c.optimizer());
                if (stack) folds = new java.util.ArrayList<>(StackedRounds.fromCheckpoint(c.optimizer()));
                start = c.roundsDone();
                pr.read(c.state().path("progress"));
                int resumed = start;
                metrics.removeIf(l -> l.path("stage").asText().equals(stageName) && l.path("round").asInt() > resumed);
                console.printf(Locale.ROOT, "%s: resuming after round %d from %s%n", stageName, start, TrainCheckpoint.dir(spec.outputUri()));
            }
        }
        if (start == 0) metrics.removeIf(l -> l.path("stage").asText().equals(stageName));

        long t0 = System.nanoTime();
        int ran = 0;
        for (int round = start; round < spec.rounds(); round++) {
            long tr = System.nanoTime();
            long globalStep = (long) round * spec.localSteps();
            adapter.hooks().beforeRound(round, globalStep); // the driver's per-round decisions (DyLoRA's rank) travel in the round state
            if (gradientSync) step.begin(globalStep);     // what a hook decides for this step travels in the round state
            if (dp.on() && dp.epsilonBudget() > 0) {
                RdpAccountant next = RdpAccountant.of(accountant.history());
                next.step(dp.sampleRate(), dp.noiseMultiplier(), 1);
                double wouldSpend = next.spent(dp.delta()).epsilon();
                if (wouldSpend > dp.epsilonBudget()) {
                    console.printf(Locale.ROOT, "%s: stopping before round %d: it would spend epsilon %.4f, over the budget %.4g (spent so far %.4f at delta %.3g)%n",
                            stageName, round + 1, wouldSpend, dp.epsilonBudget(), accountant.spent(dp.delta()).epsilon(), dp.delta());
                    stoppedAtBudget = true;
                    if (spec.outputUri() != null && round > start) {
                        Map<String, INDArray> opt = gradientSync ? optimizer.exportState() : parameterSyncState(moments, momentsStep, outer, folds);
                        TrainCheckpoint.write(conf, spec.outputUri(), adapter, opt, adapter.hooks().checkpointState(),
                                checkpointState(spec, round, accountant, pr), round, spec.base().uri());
                    }
                    break;
                }
            }
            AdapterTensors roundAdapter = AdapterTensors.ofValues(params);
            boolean[] sampledClients = dp.clientLevel() ? DpNoise.sampleClients(dp.noiseSeed(), round, clients, dp.sampleRate()) : null;
            RoundState st = new RoundState(round, roundAdapter, AdapterTensors.of(adapter.hooks().roundState()), moments, momentsStep, sampledClients,
                    folds);
            RoundResult res = executor.run(st);
            long reducedBytes = res.bytes();          // before the driver turns the sums into the next adapter in place
            double pseudoGradientNorm = Double.NaN;   // parameters sync: ‖θ_round − θ̄‖ over all tensors
            double[] aggregationGaps = null;          // aggregate: svd: {averaging gap, truncation gap}
            if (!res.inputErrors.isEmpty()) throw new IllegalArgumentException(String.join("; ", res.inputErrors));
            if (res.weight == 0 && !dp.on()) throw new IllegalStateException(stageName + ": no partition had any target tokens to train on");
            if (!res.nonFinite.isEmpty() || res.payload.firstNonFinite() != null) {
                // stop before anything changes: the adapter of the last round and its checkpoint stay as they were
                throw new NonFiniteRoundException(stageName + ": round " + (round + 1) + ": NaN or infinite values from "
                        + (res.nonFinite.isEmpty() ? "the reduced sum (" + res.payload.firstNonFinite() + ")" : String.join("; ", res.nonFinite))
                        + ". Nothing of this round was applied; " + (spec.checkpointEvery() > 0 && spec.outputUri() != null && round > 0
                        ? "the last checkpoint, in " + TrainCheckpoint.dir(spec.outputUri()) + ", is intact and a rerun resumes from it"
                        : "no checkpoint holds the rounds before it (train.checkpoint_every)")
                        + ". Lower train.lr or train.max_grad_norm, or look for corrupt input in that partition");
            }
            if (!st.methodState().isEmpty() && !res.methodStateDigests.isEmpty()
                    && !res.methodStateDigests.equals(new TreeSet<>(List.of(st.methodState().digest())))) {
                throw new IllegalStateException(stageName + ": round " + (round + 1) + ": the tasks applied method states " + res.methodStateDigests
                        + ", the driver broadcast " + st.methodState().digest() + " (every task must apply the driver's decision)");
            }

            if (dp.on()) {
                // the summed clipped contributions (zeros when nothing was sampled: noise alone) + N(0, σ²C²), on the driver only
                if (res.payload.isEmpty()) res.payload = AdapterTensors.ofValues(params).scale(0.0);
                DpNoise.addGaussian(res.payload.data(), dp.noiseStd(), dp.noiseSeed(), round);
            }
            if (dp.exampleLevel()) {
                // DP-SGD: the noisy sum over the expected batch q·N
                AdapterTensors meanGrad = res.payload.scale(1.0 / (dp.sampleRate() * res.shardExamples));
                optimizer.zeroGrad();
                for (Parameter p : params) {
                    INDArray g = meanGrad.get(p.name());
                    if (g != null) p.accumulate(g.castTo(p.value().dataType()));
                }
                step.apply(globalStep);
            } else if (dp.clientLevel()) {
                // DP-FedAvg: θ + the noisy sum of clipped client updates / (q·n), through the outer step when there is one
                AdapterTensors proposed = AdapterTensors.ofValues(params).addScaled(res.payload, 1.0 / (dp.sampleRate() * clients));
                pseudoGradientNorm = Math.sqrt(OuterOptimizer.pseudoGradient(roundAdapter, proposed).squaredNorm());
                outer.step(roundAdapter, proposed).copyInto(params);
            } else if (gradientSync) {
                AdapterTensors meanGrad = res.payload.scale(1.0 / res.weight);
                optimizer.zeroGrad();
                for (Parameter p : params) p.accumulate(meanGrad.get(p.name()).castTo(p.value().dataType()));
                step.apply(globalStep);
            } else {
                // the target-weighted average of the workers' adapters; plain averaging takes it as θ, DiLoCo steps towards it
                AdapterTensors averaged = res.payload.scale(1.0 / res.weight);
                if (spec.aggregate().equals("svd")) {
                    // the exact mean of the workers' B·A, cut back to rank r, replaces the factors' means
                    ExactAggregation.Result ag = ExactAggregation.svd(res.factors, factorPairs, spec.adapter().r(), averaged);
                    aggregationGaps = new double[]{ag.averagingGap(), ag.truncationGap()};
                } else if (stack) {
                    // the workers' own factors become this round's folds, merged exactly by every later round; the next
                    // round starts a fresh adapter (B = 0, a new A)
                    aggregationGaps = new double[]{ExactAggregation.averagingGap(res.factors, factorPairs), 0};
                    folds.addAll(StackedRounds.folds(res.factors, factorPairs));
                    StackedRounds.freshFactors(adapter, spec.options().seed(), round + 1, factorPairs).forEach(averaged::put);
                }
                pseudoGradientNorm = Math.sqrt(OuterOptimizer.pseudoGradient(roundAdapter, averaged).squaredNorm());
                outer.step(roundAdapter, averaged).copyInto(params);
                if (res.methodStats != null) adapter.hooks().loadReducedStatistics(res.methodStats.scale(1.0 / res.weight).toArrays());
                if (res.moments != null) {
                    moments = res.moments.scale(1.0 / res.weight);
                    momentsStep += spec.localSteps();
                }
            }
            double roundSeconds = (System.nanoTime() - tr) / 1e9;
            // what a task receives that no earlier round sent: under stack the earlier folds were sent once, when new
            pr.broadcastBytes = st.bytes() - foldBytesSent;
            foldBytesSent = StackedRounds.bytes(st.folds());
            pr.reducedBytes = reducedBytes;     // element-wise sums: the same size as one task's contribution
            pr.tokens += res.tokens;
            pr.seconds += roundSeconds;
            pr.lastLoss = res.targets > 0 ? res.lossSum / res.targets : pr.lastLoss;
            pr.executors.addAll(res.executors);
            pr.gpus.addAll(res.gpus);
            res.baseLoads.forEach((k, v) -> pr.baseLoads.merge(k, v, Math::max));
            int done = round + 1;
            io.sparklora.util.FaultPoints.reach("train.round", done);
            ran++;
            ObjectNode line = metrics.line(stageName).put("round", done).put("step", (long) done * spec.localSteps())
                    .put("loss", pr.lastLoss).put("tokens", res.tokens).put("tokens_per_second", res.tokens / roundSeconds)
                    .put("bytes_broadcast", pr.broadcastBytes).put("bytes_reduced", pr.reducedBytes)
                    .put("lr_factor", schedule.factor(globalStep)).put("seconds", roundSeconds);
            if (Double.isFinite(pseudoGradientNorm)) line.put("pseudo_gradient_norm", pseudoGradientNorm);
            if (aggregationGaps != null) line.put("averaging_gap", aggregationGaps[0]).put("truncation_gap", aggregationGaps[1]);
            if (stack) line.put("folds", folds.size());
            adapter.hooks().metrics().forEach(line::put);
            if (dp.on()) {
                accountant.step(dp.sampleRate(), dp.noiseMultiplier(), 1);
                RdpAccountant.Spent sp = accountant.spent(dp.delta());
                line.put("epsilon", sp.epsilon()).put("delta", dp.delta()).put("dp_sampled", res.sampled).put("max_clipped_norm", res.maxClippedNorm);
            }
            metrics.append(line);
            double eta = (System.nanoTime() - t0) / 1e9 / (done - start) * (spec.rounds() - done);
            console.printf(Locale.ROOT, "%s round %d/%d  loss %.4f  %,.0f tok/s  moved %s down, %s up per task  ETA %s%s%n",
                    stageName, done, spec.rounds(), pr.lastLoss, res.tokens / roundSeconds, human(pr.broadcastBytes), human(pr.reducedBytes), clock(eta),
                    dp.on() ? String.format(Locale.ROOT, "  epsilon %.3f", line.path("epsilon").asDouble()) : "");
            if (spec.checkpointEvery() > 0 && spec.outputUri() != null && (done % spec.checkpointEvery() == 0 || done == spec.rounds())) {
                Map<String, INDArray> opt = gradientSync ? optimizer.exportState() : parameterSyncState(moments, momentsStep, outer, folds);
                TrainCheckpoint.write(conf, spec.outputUri(), adapter, opt, adapter.hooks().checkpointState(), checkpointState(spec, done, accountant, pr), done,
                        spec.base().uri());
            }
            if (listener != null) listener.afterRound(done, res);
        }
        long trainable = adapter.trainableParameterCount(), total = adapter.report().all();
        if (stack) {
            // the sum of every fold as one exact LoRA adapter of the rank it needs, in place of the fresh one
            adapter = StackedRounds.exactAdapter(adapter, folds, spec.options().seed());
            console.printf(Locale.ROOT, "%s: %d folds stacked into one exact adapter of rank %d%n", stageName, folds.size(), adapter.config().r());
        }
        Privacy privacy = null;
        if (dp.on()) {
            RdpAccountant.Spent sp = accountant.spent(dp.delta());
            privacy = new Privacy(dp.mode(), sp.epsilon(), dp.delta(), sp.order(), accountant.steps(), dp.sampleRate(), dp.noiseMultiplier(),
                    dp.clipNorm(), stoppedAtBudget, dp.epsilonBudget());
            console.printf(Locale.ROOT, "%s: %s-level DP, epsilon %.4f at delta %.3g after %d noisy steps (q %.4g, sigma %.4g, C %.4g)%s%n",
                    stageName, dp.mode(), sp.epsilon(), dp.delta(), accountant.steps(), dp.sampleRate(), dp.noiseMultiplier(), dp.clipNorm(),
                    stoppedAtBudget ? ", stopped at the budget" : "");
        }
        return new Result(adapter, ran, start, trainable, total, 4 * trainable,
                adapter.model().baseBytesHeld(), pr.broadcastBytes, pr.reducedBytes, pr.seconds > 0 ? pr.tokens / pr.seconds : 0, pr.lastLoss,
                pr.executors, pr.gpus, pr.baseLoads, privacy);
    }

    /**
     * A parameter-sync run's optimizer state for its checkpoint: the averaged moments (if any), their step, the outer
     * momentum, and {@code stack}'s folds.
     */
    private static Map<String, INDArray> parameterSyncState(AdapterTensors moments, long momentsStep, OuterOptimizer outer, List<AdapterTensors> folds) {
        Map<String, INDArray> m = RoundWork.optimizerState(moments, momentsStep);
        m.putAll(outer.exportState());
        m.putAll(StackedRounds.toCheckpoint(folds));
        return m;
    }

    /** The accountant's history a checkpoint holds ({q, σ, steps} triples). */
    private static java.util.List<double[]> accountantHistory(com.fasterxml.jackson.databind.JsonNode state) {
        java.util.List<double[]> h = new java.util.ArrayList<>();
        for (var e : state.path("dp_accountant")) h.add(new double[]{e.get(0).asDouble(), e.get(1).asDouble(), e.get(2).asDouble()});
        return h;
    }

    private static ObjectNode checkpointState(TrainSpec spec, int done, RdpAccountant accountant, Progress progress) {
        ObjectNode s = checkpointState(spec, done);
        progress.toJson(s.putObject("progress"));
        if (spec.dp().on()) {
            var arr = s.putArray("dp_accountant");
            for (double[] h : accountant.history()) arr.addArray().add(h[0]).add(h[1]).add(h[2]);
        }
        return s;
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
        // an NF4 base is another function than its fp32 checkpoint: a checkpoint of one must not resume over the other
        return "base=" + s.base().contentHash() + (s.base().quantization().nf4() ? "/" + s.base().quantization().label() : "") + " adapter=" + s.adapter() + " share=" + new TreeMap<>(s.shareGroups())
                + " rounds=" + s.rounds() + " K=" + s.localSteps() + " sync=" + s.sync() + " avg_opt=" + s.averageOptimizerState()
                + " options=" + s.options() + " sample=" + s.sampleFraction() + (s.dp().on() ? " dp=" + s.dp() : "")
                + (s.outer().on() ? " outer=" + s.outer() : "") + (s.aggregate().equals("mean") ? "" : " aggregate=" + s.aggregate());
    }

    static String fingerprint(TrainSpec s) {
        var md = BaseModelRef.sha256();
        return java.util.HexFormat.of().formatHex(md.digest(settings(s).getBytes(java.nio.charset.StandardCharsets.UTF_8))).substring(0, 16);
    }

    /**
     * The run's figures so far, which a checkpoint carries ({@code state.json}'s {@code progress}) so that a resumed run
     * reports the whole run's: a run resumed from its final round's checkpoint runs no round and still reports the
     * final loss, the bytes per round and the executors that trained it.
     */
    static final class Progress {
        long broadcastBytes, reducedBytes, tokens;
        double seconds, lastLoss = Double.NaN;
        final TreeSet<String> executors = new TreeSet<>(), gpus = new TreeSet<>();
        final Map<String, Integer> baseLoads = new TreeMap<>();

        void toJson(ObjectNode o) {
            o.put("bytes_broadcast_per_round", broadcastBytes).put("bytes_reduced_per_round", reducedBytes)
                    .put("tokens", tokens).put("seconds", seconds);
            if (Double.isFinite(lastLoss)) o.put("last_loss", lastLoss);
            executors.forEach(o.putArray("executors")::add);
            gpus.forEach(o.putArray("gpus")::add);
            ObjectNode loads = o.putObject("base_loads");
            baseLoads.forEach(loads::put);
        }

        /** Takes the figures a checkpoint carries; one of an older version carries none, and the figures start again. */
        void read(com.fasterxml.jackson.databind.JsonNode o) {
            if (o.isMissingNode()) return;
            broadcastBytes = o.path("bytes_broadcast_per_round").asLong();
            reducedBytes = o.path("bytes_reduced_per_round").asLong();
            tokens = o.path("tokens").asLong();
            seconds = o.path("seconds").asDouble();
            if (o.has("last_loss")) lastLoss = o.path("last_loss").asDouble();
            o.path("executors").forEach(e -> executors.add(e.asText()));
            o.path("gpus").forEach(e -> gpus.add(e.asText()));
            o.path("base_loads").fields().forEachRemaining(e -> baseLoads.put(e.getKey(), e.getValue().asInt()));
        }
    }

    /** A round whose loss or contributions were NaN or infinite: the run stops, naming the round and the partitions. */
    public static final class NonFiniteRoundException extends IllegalStateException {
        public NonFiniteRoundException(String message) { super(message); }
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
