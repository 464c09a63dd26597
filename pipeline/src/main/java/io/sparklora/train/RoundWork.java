package io.sparklora.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.optim.AdamW;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One worker's share of a distributed training round, wherever it runs (a Spark task calls it on its
 * partition's shard): takes the round state, trains or computes gradients on its data, and returns only
 * adapter-sized tensors.
 *
 * <p>Data order and dropout are functions of (seed, partition, round), so a worker needs no state from
 * earlier rounds and a resumed run sees exactly the batches the interrupted one would have.
 */
public final class RoundWork {
    private RoundWork() {}

    /**
     * Runs the round on {@code data} with {@code adapter} (attached as {@code spec} says, on a model whose
     * shared base tensors it must not write) and returns the contribution to the round's sums.
     */
    public static RoundResult run(AttachedAdapter adapter, TokenBlocks data, RoundState st, TrainSpec spec, int partition) {
        RoundResult out = new RoundResult();
        out.shardExamples = data.size();
        if (data.size() == 0) return out;     // an empty shard contributes nothing (weight 0)
        if (spec.dp().clientLevel() && !st.takesPart(partition)) return out;    // DP-FedAvg: the driver did not sample this client
        List<Parameter> params = adapter.trainableParameters();
        loadRound(adapter, st, spec, out);
        long seed = taskSeed(spec.options().seed(), partition, st.round());
        BatchOrder order = order(data, st, spec, partition);
        if (spec.dp().exampleLevel()) dpSgd(adapter, params, data, seed, spec, out);
        else if (spec.sync().equals("gradients")) gradients(adapter, params, data, order, seed, spec, out);
        else localSteps(adapter, params, data, order, seed, st, spec, out, partition);
        if (spec.dp().clientLevel()) clipUpdate(params, st, spec, out);
        checkFinite(out, partition);
        return out;
    }

    /** The round's adapter values and method state into the task's adapter; the applied state's digest into {@code out}. */
    private static void loadRound(AttachedAdapter adapter, RoundState st, TrainSpec spec, RoundResult out) {
        StackedRounds.foldInto(adapter, st.folds());        // train.aggregate: stack: the rounds before, into private weights
        st.adapter().copyInto(adapter.trainableParameters());
        adapter.hooks().plan(spec.totalSteps());
        adapter.hooks().loadRoundState(st.methodState().toArrays());
        Map<String, INDArray> applied = adapter.hooks().roundState();
        if (!applied.isEmpty()) out.methodStateDigests.add(AdapterTensors.of(applied).digest());
    }

    /** The task's data order: a function of (seed, partition) resumed at the blocks the rounds before consumed. */
    private static BatchOrder order(TokenBlocks data, RoundState st, TrainSpec spec, int partition) {
        return BatchOrder.at(data.size(), spec.options().seed() * 1_000_003L + partition, st.round() * spec.blocksPerRound());
    }

    /** One adapter's part of a shared round on one partition: its adapter (attached, active), its shard, its round state and spec. */
    public record Member(String name, AttachedAdapter adapter, TokenBlocks data, RoundState state, TrainSpec spec) {}

    /**
     * {@link #run} for several adapters attached to one model, their batches shared: each optimizer step (sync
     * parameters) or gradient micro-batch (sync gradients) runs one forward and backward over the sequences of every
     * adapter ({@link MultiAdapterTrainer#stepTogether}, {@link io.sparklora.model.TransformerLM#forwardBackwardMixed}).
     * Each adapter's data order, dropout stream, optimizer and hooks are the ones {@link #run} would give it alone, so
     * each adapter's contribution equals its alone run's, to fp32 rounding. Every member must have the same sync mode and
     * no DP. A member whose batch cannot be drawn gets an input error; the others are unaffected.
     */
    public static Map<String, RoundResult> runTogether(List<Member> members, int partition) {
        Map<String, RoundResult> outs = new LinkedHashMap<>();
        List<Member> live = new java.util.ArrayList<>();
        for (Member m : members) {
            if (m.spec().dp().on()) throw new IllegalArgumentException("adapter '" + m.name() + "': DP training cannot share batches with other adapters");
            if (m.spec().aggregate().equals("stack")) {
                throw new IllegalArgumentException("adapter '" + m.name() + "': train.aggregate: stack merges into the base weights the adapters share");
            }
            RoundResult out = new RoundResult();
            out.shardExamples = m.data().size();
            outs.put(m.name(), out);
            if (m.data().size() == 0) continue;   // an empty shard contributes nothing (weight 0)
            loadRound(m.adapter(), m.state(), m.spec(), out);
            live.add(m);
        }
        if (live.isEmpty()) return outs;
        boolean gradientSync = live.get(0).spec().sync().equals("gradients");
        for (Member m : live) {
            if (m.spec().sync().equals("gradients") != gradientSync) {
                throw new IllegalArgumentException("adapters training together need one sync mode: '" + m.name() + "' has sync " + m.spec().sync());
            }
        }
        Map<String, String> failed = new LinkedHashMap<>();
        if (gradientSync) gradientsTogether(live, partition, outs, failed);
        else localStepsTogether(live, partition, outs, failed);
        for (Member m : live) {
            if (failed.containsKey(m.name())) {
                RoundResult bad = new RoundResult();
                bad.inputErrors.add(failed.get(m.name()) + " (partition " + partition + ")");
                outs.put(m.name(), bad);
            } else {
                checkFinite(outs.get(m.name()), partition);
            }
        }
        return outs;
    }

    /** {@link #gradients} for several adapters, each micro-batch one mixed batch: Σ over each adapter's target tokens of ∂loss/∂θ. */
    private static void gradientsTogether(List<Member> live, int partition, Map<String, RoundResult> outs, Map<String, String> failed) {
        Map<String, org.nd4j.linalg.api.rng.Random> streams = new LinkedHashMap<>();
        Map<String, BatchOrder> orders = new LinkedHashMap<>();
        for (Member m : live) {
            streams.put(m.name(), io.sparklora.model.Seeds.rng(taskSeed(m.spec().options().seed(), partition, m.state().round())));
            orders.put(m.name(), order(m.data(), m.state(), m.spec(), partition));
        }
        int micro = live.stream().mapToInt(m -> m.spec().options().gradAccumulation()).max().orElse(0);
        io.sparklora.model.TransformerLM model = live.get(0).adapter().model();
        for (int mi = 0; mi < micro; mi++) {
            MixedBatch mixed = new MixedBatch();
            Map<String, Double> scale = new java.util.HashMap<>();
            Map<String, org.nd4j.linalg.api.rng.Random> used = new LinkedHashMap<>();
            for (Member m : live) {
                if (mi >= m.spec().options().gradAccumulation() || failed.containsKey(m.name())) continue;
                int[] idx;
                long targets;
                try {
                    idx = orders.get(m.name()).next(m.spec().options().batchSize());
                    targets = m.data().targetCount(idx);
                } catch (RuntimeException e) {
                    failed.put(m.name(), "adapter '" + m.name() + "': " + e.getMessage());
                    continue;
                }
                if (targets == 0) continue;        // as alone: a micro-batch with no targets is skipped
                mixed.add(m.name(), m.data(), idx);
                scale.put(m.name(), (double) targets);   // gradients of the summed (not mean) token loss
                used.put(m.name(), streams.get(m.name()));
            }
            if (mixed.isEmpty()) continue;
            TokenBatch batch = mixed.batch();
            Map<String, CrossEntropyLoss.Result> losses = model.forwardBackwardMixed(batch, mixed.context(used), scale);
            for (Member m : live) {
                CrossEntropyLoss.Result r = losses.get(m.name());
                if (r == null) continue;
                RoundResult out = outs.get(m.name());
                out.lossSum += r.sumLoss();
                out.targets += r.count();
                out.tokens += (long) m.spec().options().batchSize() * batch.seq();
            }
        }
        for (Member m : live) {
            if (!failed.containsKey(m.name())) packGradients(m.adapter().trainableParameters(), outs.get(m.name()));
        }
    }

    /** {@link #localSteps} for several adapters, each optimizer step one shared step ({@link MultiAdapterTrainer#stepTogether}). */
    private static void localStepsTogether(List<Member> live, int partition, Map<String, RoundResult> outs, Map<String, String> failed) {
        Map<String, MultiAdapterTrainer.Member> steppers = new LinkedHashMap<>();
        for (Member m : live) {
            Trainer trainer = localTrainer(m.adapter(), m.state(), m.spec(), taskSeed(m.spec().options().seed(), partition, m.state().round()));
            steppers.put(m.name(), new MultiAdapterTrainer.Member(m.name(), trainer, m.data(), order(m.data(), m.state(), m.spec(), partition)));
        }
        int k = live.stream().mapToInt(m -> m.spec().localSteps()).max().orElse(0);
        for (int step = 0; step < k; step++) {
            final int s = step;
            List<MultiAdapterTrainer.Member> now = live.stream().filter(m -> s < m.spec().localSteps() && !failed.containsKey(m.name()))
                    .map(m -> steppers.get(m.name())).toList();
            MultiAdapterTrainer.stepTogether(live.get(0).adapter().model(), now, failed).forEach((name, st) -> addStep(outs.get(name), st));
        }
        for (Member m : live) {
            if (failed.containsKey(m.name())) continue;
            RoundResult out = outs.get(m.name());
            out.steps = m.spec().localSteps();
            packLocal(m.adapter(), m.adapter().trainableParameters(), steppers.get(m.name()).trainer(), m.spec(), out, partition);
        }
    }

    /** Flags this partition when its loss, a skipped step or its contribution was not finite (the driver then stops the run). */
    static void checkFinite(RoundResult out, int partition) {
        if (!Double.isFinite(out.lossSum)) out.nonFinite.add("partition " + partition + ": loss " + out.lossSum);
        else if (out.skippedSteps > 0) out.nonFinite.add("partition " + partition + ": " + out.skippedSteps + " local step(s) with a non-finite gradient");
        String bad = out.payload.firstNonFinite();
        if (bad == null && out.moments != null) bad = out.moments.firstNonFinite();
        if (bad == null && out.methodStats != null) bad = out.methodStats.firstNonFinite();
        for (PartitionFactors f : out.factors) if (bad == null) bad = f.factors().firstNonFinite();
        if (bad != null) out.nonFinite.add("partition " + partition + ": " + bad + " is not finite");
    }

    /**
     * DP-SGD on this task's shard: a Poisson sample (each example with probability q, drawn from the task's seed), each
     * sampled example's adapter gradient of its mean token loss clipped to C, summed. No noise: the driver adds it.
     */
    private static void dpSgd(AttachedAdapter adapter, List<Parameter> params, TokenBlocks data, long seed, TrainSpec spec, RoundResult out) {
        io.sparklora.privacy.DpSpec dp = spec.dp();
        java.util.SplittableRandom pick = new java.util.SplittableRandom(seed ^ 0x504F4953534F4EL);
        List<Integer> chosen = new java.util.ArrayList<>();
        for (int i = 0; i < data.size(); i++) if (pick.nextDouble() < dp.sampleRate()) chosen.add(i);
        var rng = io.sparklora.model.Seeds.rng(seed);
        AdapterTensors sum = new AdapterTensors();
        int chunk = Math.max(1, spec.options().batchSize());
        for (int start = 0; start < chosen.size(); start += chunk) {
            int n = Math.min(chunk, chosen.size() - start);
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) idx[i] = chosen.get(start + i);
            TokenBatch batch = data.batch(idx);
            io.sparklora.model.PerExampleGradients g = new io.sparklora.model.PerExampleGradients(n, batch.seq());
            for (Parameter p : params) p.zeroGrad();
            CrossEntropyLoss.Result r = adapter.model().forwardBackwardPerExample(batch, ForwardContext.training(rng), g);
            double[] w = new double[n];
            long[] perRow = batch.targets().gte(0).castTo(DataType.INT).sum(1).toLongVector();
            for (int i = 0; i < n; i++) w[i] = perRow[i] > 0 ? 1.0 / perRow[i] : 0.0;     // each example's mean token loss
            double[] norms = io.sparklora.privacy.PerExampleClipping.clipAndSum(g, w, dp.clipNorm());
            for (double v : norms) out.maxClippedNorm = Math.max(out.maxClippedNorm, Math.min(v, dp.clipNorm()));
            sum.addScaled(AdapterTensors.ofGradients(params), 1.0);
            out.lossSum += r.sumLoss();
            out.targets += r.count();
            out.tokens += batch.tokens();
        }
        for (Parameter p : params) p.zeroGrad();
        out.payload = sum;
        out.sampled = chosen.size();
        out.weight = chosen.size();
        out.steps = 1;
    }

    /** DP-FedAvg: this client's round update θ_local − θ_round, clipped to C, replaces the weighted θ the payload held. */
    private static void clipUpdate(List<Parameter> params, RoundState st, TrainSpec spec, RoundResult out) {
        AdapterTensors delta = AdapterTensors.ofValues(params).addScaled(st.adapter(), -1.0);
        double norm = Math.sqrt(delta.squaredNorm());
        double c = spec.dp().clipNorm();
        if (norm > c) delta.scale(c / norm);
        out.maxClippedNorm = Math.min(norm, c);
        out.payload = delta;
        out.weight = 1;
        out.sampled = 1;
    }

    /** Σ over target tokens of ∂loss/∂θ (not the mean), so the driver's division by Σ targets is exact. */
    private static void gradients(AttachedAdapter adapter, List<Parameter> params, TokenBlocks data, BatchOrder order, long seed,
                                  TrainSpec spec, RoundResult out) {
        var rng = io.sparklora.model.Seeds.rng(seed);
        for (int m = 0; m < spec.options().gradAccumulation(); m++) {
            TokenBatch batch = data.batch(order.next(spec.options().batchSize()));
            long targets = batch.targetCount();
            if (targets == 0) continue;
            CrossEntropyLoss.Result r = adapter.model().forwardBackward(batch, ForwardContext.training(rng), targets);
            out.lossSum += r.sumLoss();
            out.targets += r.count();
            out.tokens += batch.tokens();
        }
        packGradients(params, out);
    }

    /** After a task's gradient micro-batches: the summed gradients, weighted by (that is, summed over) the targets seen. */
    private static void packGradients(List<Parameter> params, RoundResult out) {
        out.payload = AdapterTensors.ofGradients(params);
        out.weight = out.targets;
        out.steps = 1;
    }

    /** K local steps of the one training step, then θ and (optionally) the moments weighted by the target tokens seen. */
    private static void localSteps(AttachedAdapter adapter, List<Parameter> params, TokenBlocks data, BatchOrder order, long seed,
                                   RoundState st, TrainSpec spec, RoundResult out, int partition) {
        Trainer trainer = localTrainer(adapter, st, spec, seed);
        for (int k = 0; k < spec.localSteps(); k++) addStep(out, trainer.step(data, order));
        out.steps = spec.localSteps();
        packLocal(adapter, params, trainer, spec, out, partition);
    }

    /** The task's trainer for K local steps: AdamW with the round's averaged moments, if any, and the schedule at the round's global step. */
    private static Trainer localTrainer(AttachedAdapter adapter, RoundState st, TrainSpec spec, long seed) {
        Trainer trainer = Trainer.forAdapter(adapter, spec.options().withSteps((int) spec.totalSteps()).withSeed(seed));
        if (st.moments() != null) trainer.optimizer().importState(optimizerState(st.moments(), st.optimizerStep()));
        trainer.resumeAt((long) st.round() * spec.localSteps());   // the lr schedule runs over global steps
        return trainer;
    }

    /** One local step's figures into the task's sums. */
    private static void addStep(RoundResult out, Trainer.StepStats s) {
        out.lossSum += s.loss() * s.targets();
        out.targets += s.targets();
        out.tokens += s.tokens();
        if (!Double.isFinite(s.gradNorm())) out.skippedSteps++;
    }

    /** After a task's local steps: θ and (optionally) the moments and method statistics, weighted by the target tokens seen. */
    private static void packLocal(AttachedAdapter adapter, List<Parameter> params, Trainer trainer, TrainSpec spec, RoundResult out, int partition) {
        out.weight = out.targets;
        if (spec.aggregate().equals("svd") || spec.aggregate().equals("stack")) {
            // the factor pairs go up as they are, one entry per task, for the driver's exact sum; the rest as weighted sums
            String[] seg = adapter.config().adapterMethod().productFactors(adapter.config());
            java.util.Set<String> factorNames = new java.util.HashSet<>();
            for (ExactAggregation.Pair p : ExactAggregation.pairs(params, seg)) { factorNames.add(p.b()); factorNames.add(p.a()); }
            List<Parameter> factors = params.stream().filter(p -> factorNames.contains(p.name())).toList();
            List<Parameter> rest = params.stream().filter(p -> !factorNames.contains(p.name())).toList();
            out.factors.add(new PartitionFactors(partition, out.weight, AdapterTensors.ofValues(factors)));
            out.payload = AdapterTensors.ofValues(rest).scale(out.weight);
        } else {
            out.payload = AdapterTensors.ofValues(params).scale(out.weight);
        }
        if (spec.averageOptimizerState()) out.moments = moments(trainer.optimizer().exportState()).scale(out.weight);
        Map<String, INDArray> stats = spec.dp().on() ? Map.of() : adapter.hooks().roundStatistics();   // under DP nothing unprivatised goes up
        if (!stats.isEmpty()) out.methodStats = AdapterTensors.of(stats).scale(out.weight);
    }

    /** AdamW state ({@link AdamW#importState}) from averaged moments (may be null: none yet) and a step count. */
    public static Map<String, INDArray> optimizerState(AdapterTensors moments, long step) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put(AdamW.STEP_KEY, Nd4j.scalar(DataType.INT64, step));
        if (moments != null) m.putAll(moments.toArrays());
        return m;
    }

    /** The moments of an AdamW state (step counters left out: they are not averaged). */
    public static AdapterTensors moments(Map<String, INDArray> optimizerState) {
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
    public static TokenBlocks sample(TokenBlocks data, double fraction, long seed) {
        if (fraction >= 1.0 || data.size() == 0) return data;
        int n = Math.max(1, (int) Math.ceil(fraction * data.size()));
        int[] pick = new BatchOrder(data.size(), seed ^ 0x5A17L).next(n);
        java.util.Arrays.sort(pick);
        TokenBlocks s = new TokenBlocks(data.seqLen());
        for (int i : pick) s.add(data.block(i), data.mask(i));
        return s;
    }
}
