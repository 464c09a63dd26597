package io.sparklora.spark.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.FailFast;
import io.sparklora.spark.PartitionOrderSum;
import io.sparklora.spark.ShardSource;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.TrainSpec;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.io.IOException;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.IntStream;

/**
 * Several adapters trained in one Spark job over one base: every round is one job whose tasks train all the adapters
 * still running, in shared batches ({@link MultiTrainRoundTask}). Each adapter keeps its own whole training loop
 * ({@link DistributedTrainer}: schedule, driver-side step or averaging, method hooks, checkpoints under its own
 * output, resume, metrics), run in a driver thread of its own whose round executor hands its round state to a
 * {@link Rounds} rendezvous: when every live adapter has handed in its state, one job runs them all, and each loop
 * gets back its own sum. Only adapter-sized tensors move, per adapter, as in {@link TrainStage}.
 *
 * <p>An adapter whose loop fails (its data refused, a non-finite round) leaves the rendezvous with its error; the
 * others go on. Adapters may have different methods, ranks, data, learning rates and round counts; they must share
 * the base, the sync mode and the block length, and none may use DP (per-example clipping needs batches of its own).
 */
public final class MultiTrainStage {
    private MultiTrainStage() {}

    /**
     * One adapter to train: its name (distinct; also the stage name its metrics and console lines carry), spec, shards,
     * metrics log, and where the trained adapter is written (PEFT layout); null: {@code spec.outputUri()/adapter}, or
     * nowhere without an output.
     */
    public record Job(String name, TrainSpec spec, ShardSource shards, MetricsLog metrics, String adapterUri) {
        public Job(String name, TrainSpec spec, ShardSource shards, MetricsLog metrics) { this(name, spec, shards, metrics, null); }

        String adapterTarget() {
            if (adapterUri != null) return adapterUri;
            return spec.outputUri() == null ? null : io.sparklora.storage.HadoopFiles.resolve(spec.outputUri(), "adapter");
        }
    }

    /** How one adapter's training ended: its loop's result and trained adapter, or the reason it failed. */
    public record Outcome(String name, DistributedTrainer.Result result, String error) {
        public boolean succeeded() { return error == null; }
    }

    public static Map<String, Outcome> run(JavaSparkContext sc, List<Job> jobs, PrintStream console) throws IOException {
        if (jobs.isEmpty()) throw new IllegalArgumentException("no adapters to train");
        Job first = jobs.get(0);
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Job j : jobs) {
            io.sparklora.train.MultiAdapterTrainer.Job.checkName(j.name());
            if (!names.add(j.name())) throw new IllegalArgumentException("two adapters are named '" + j.name() + "'");
            if (!j.spec().base().cacheKey().equals(first.spec().base().cacheKey())) {
                throw new IllegalArgumentException("adapter '" + j.name() + "' trains over " + j.spec().base().uri() + ", '" + first.name()
                        + "' over " + first.spec().base().uri() + ": adapters training together share one base");
            }
            if (!j.spec().sync().equals(first.spec().sync())) {
                throw new IllegalArgumentException("adapter '" + j.name() + "' has sync " + j.spec().sync() + ", '" + first.name() + "' "
                        + first.spec().sync() + ": adapters training together share one sync mode");
            }
            if (j.spec().dp().on()) throw new IllegalArgumentException("adapter '" + j.name() + "': DP training cannot share batches with other adapters");
            if (j.spec().aggregate().equals("stack")) {
                throw new IllegalArgumentException("adapter '" + j.name() + "': train.aggregate: stack merges its rounds into the base weights, which"
                        + " adapters training together share; train it alone (TrainStage)");
            }
        }
        Configuration conf = sc.hadoopConfiguration();
        SerializableConfiguration sconf = new SerializableConfiguration(conf);
        int parts = jobs.stream().mapToInt(j -> j.shards().partitions()).max().orElse(1);
        JavaRDD<Integer> partitions = sc.parallelize(IntStream.range(0, parts).boxed().toList(), parts);
        FailFast.install(sc.sc());
        LinkedHashMap<String, TrainTaskContext> contexts = new LinkedHashMap<>();
        for (Job j : jobs) contexts.put(j.name(), new TrainTaskContext(j.spec(), j.shards(), sconf));
        Broadcast<LinkedHashMap<String, TrainTaskContext>> context = sc.broadcast(contexts);
        long inlineMax = TrainStage.inlineMaxBytes();
        Rounds rounds = new Rounds(jobs.stream().map(Job::name).toList(), states -> {
            // as in TrainStage: small states ride inside the task, large ones are broadcast for the round
            RoundStateRef<LinkedHashMap<String, RoundState>> ref = RoundStateRef.of(sc, states,
                    states.values().stream().mapToLong(RoundState::bytes).sum(), inlineMax);
            try {
                return PartitionOrderSum.sum(partitions.mapPartitionsWithIndex(new MultiTrainRoundTask(context, ref), false),
                        new MultiRoundResult.Sum()).byAdapter;
            } catch (Exception e) {
                throw FailFast.translate(sc.sc(), e);
            } finally {
                ref.release();
            }
        });
        ExecutorService pool = Executors.newFixedThreadPool(jobs.size(), r -> {
            Thread t = new Thread(r, "spark-lora-adapter-loop");
            t.setDaemon(true);
            return t;
        });
        Map<String, Future<DistributedTrainer.Result>> loops = new LinkedHashMap<>();
        try {
            for (Job j : jobs) {
                loops.put(j.name(), pool.submit(() -> {
                    try {
                        TransformerLM model = BaseModelCache.model(j.spec().base(), conf);
                        AttachedAdapter adapter = AttachedAdapter.attach(model, j.name(), j.spec().adapter(), j.spec().options().seed(), j.spec().shareGroups());
                        DistributedTrainer.Result r = DistributedTrainer.run(adapter, j.spec(), conf, st -> rounds.submit(j.name(), st),
                                j.shards().partitions(), j.metrics(), j.name(), console, null);
                        if (j.adapterTarget() != null) TrainStage.saveAdapter(conf, r.adapter(), j.adapterTarget(), j.spec().base().uri());
                        return r;
                    } finally {
                        rounds.leave(j.name());
                    }
                }));
            }
            Map<String, Outcome> out = new LinkedHashMap<>();
            for (Map.Entry<String, Future<DistributedTrainer.Result>> e : loops.entrySet()) {
                try {
                    out.put(e.getKey(), new Outcome(e.getKey(), e.getValue().get(), null));
                } catch (java.util.concurrent.ExecutionException ex) {
                    Throwable c = ex.getCause();
                    String msg = c.getMessage() == null ? c.toString() : c.getMessage();
                    out.put(e.getKey(), new Outcome(e.getKey(), null, msg.startsWith("adapter '") ? msg : "adapter '" + e.getKey() + "': " + msg));
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while adapters trained", ex);
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            context.destroy();
        }
    }

    /** Runs one shared round: each adapter's round state in, each adapter's summed result out. */
    interface RoundJob {
        Map<String, RoundResult> run(LinkedHashMap<String, RoundState> states);
    }

    /**
     * The rendezvous of the adapters' loops: each hands in its round state and waits; the last live adapter to hand
     * one in runs the round's job for all of them (in the order the adapters were given, so runs are reproducible) and
     * wakes the others with their results. An adapter whose loop ends or fails leaves; if the others were waiting only
     * for it, the round runs then. A job that fails fails the round for every adapter in it.
     */
    static final class Rounds {
        private final List<String> order;
        private final LinkedHashSet<String> live;
        private final RoundJob job;
        private final Map<String, RoundState> pending = new LinkedHashMap<>();
        private final Map<String, RoundResult> results = new LinkedHashMap<>();
        private final Map<String, RuntimeException> failures = new LinkedHashMap<>();

        Rounds(List<String> order, RoundJob job) {
            this.order = List.copyOf(order);
            this.live = new LinkedHashSet<>(order);
            this.job = job;
        }

        synchronized RoundResult submit(String name, RoundState state) {
            pending.put(name, state);
            if (pending.keySet().containsAll(live)) runRound();
            while (!results.containsKey(name) && !failures.containsKey(name)) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while waiting for the round", e);
                }
            }
            RuntimeException f = failures.remove(name);
            if (f != null) throw f;
            return results.remove(name);
        }

        synchronized void leave(String name) {
            live.remove(name);
            if (!pending.isEmpty() && pending.keySet().containsAll(live)) runRound();
        }

        private void runRound() {
            LinkedHashMap<String, RoundState> states = new LinkedHashMap<>();
            for (String n : order) if (pending.containsKey(n)) states.put(n, pending.get(n));
            pending.clear();
            try {
                Map<String, RoundResult> r = job.run(states);
                for (String n : states.keySet()) {
                    RoundResult one = r.get(n);
                    results.put(n, one != null ? one : new RoundResult());
                }
            } catch (RuntimeException e) {
                for (String n : states.keySet()) failures.put(n, e);
            }
            notifyAll();
        }
    }
}
