package io.sparklora.spark.train;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.ShardSource;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.HadoopFiles;
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
import java.util.stream.IntStream;

/**
 * The {@code train} stage: parameter-averaged adapter training on Spark. The loop itself (schedule, the
 * optimizer step, averaging, checkpoints, metrics) is {@link DistributedTrainer}'s; this stage only
 * distributes a round: it sends the round state (adapter-sized) to the tasks, runs {@link TrainRoundTask} on every
 * partition, and brings back adapter-sized sums, added in partition order ({@code PartitionOrderSum}). The frozen base model never
 * moves: each executor JVM reads it once from storage ({@link BaseModelCache}).
 *
 * <p>A round state of at most {@link #inlineMaxBytes()} tensor bytes travels inside the task closure: Spark ships the
 * serialized task binary to the executors once per stage anyway, so a small state costs no broadcast to write,
 * fetch and destroy. A larger one is broadcast (fetched once per executor, not once per task) and destroyed after
 * its round.
 *
 * <p>By default the rounds do not each start a Spark job: where the cluster allows it, one barrier stage of one
 * long-lived task per partition runs them all, over connections to the driver ({@link RoundSession}), and gives the
 * same adapter bit for bit. Rounds run as jobs when it cannot ({@link RoundSession#whyNot}), when it is turned off
 * ({@link #SESSION_PROPERTY}, {@link #SESSION_CONF}), and from the round a session loses on.
 */
public final class TrainStage {
    private TrainStage() {}

    /**
     * The default of {@link #inlineMaxBytes()}: 256 KiB, a quarter of the task size above which Spark warns
     * ({@code TaskSetManager.TASK_SIZE_TO_WARN_KIB}, 1000 KiB).
     */
    public static final long DEFAULT_INLINE_MAX_BYTES = 256L * 1024;

    /** The system property that overrides {@link #DEFAULT_INLINE_MAX_BYTES} on the driver (0: always broadcast). */
    public static final String INLINE_MAX_BYTES_PROPERTY = "sparklora.round.inline_max_bytes";

    /**
     * The system property that turns round sessions ({@link RoundSession}) on or off on the driver: {@code auto} (the
     * default: a session when the cluster allows one) or {@code off} (one Spark job per round). The Spark setting
     * {@link #SESSION_CONF} says the same ({@code spark-submit --conf spark.sparklora.round.session=off}); the system
     * property wins when both are set.
     */
    public static final String SESSION_PROPERTY = "sparklora.round.session";

    /** The Spark setting for {@link #SESSION_PROPERTY}. */
    public static final String SESSION_CONF = "spark." + SESSION_PROPERTY;

    /** The system property with the seconds a round session waits for its tasks to connect before rounds run as jobs (default 60). */
    public static final String SESSION_WAIT_PROPERTY = "sparklora.round.session.wait_s";

    /** How the stage's rounds reach the executors. */
    public enum Rounds {
        /** A round session when the cluster allows one ({@link RoundSession#whyNot}), one Spark job per round otherwise. */
        SESSION,
        /** One Spark job per round. */
        JOBS;

        /** What {@link #SESSION_PROPERTY}, or else {@link #SESSION_CONF} in {@code conf}, says (default {@link #SESSION}). */
        public static Rounds of(org.apache.spark.SparkConf conf) {
            String p = System.getProperty(SESSION_PROPERTY);
            String name = p != null ? SESSION_PROPERTY : SESSION_CONF;
            String v = (p != null ? p : conf.get(SESSION_CONF, "auto")).strip().toLowerCase(java.util.Locale.ROOT);
            return switch (v) {
                case "auto", "on", "true", "" -> SESSION;
                case "off", "false" -> JOBS;
                default -> throw new IllegalArgumentException(name + " must be auto or off, got '" + v + "'");
            };
        }
    }

    static long sessionWaitMillis() {
        String v = System.getProperty(SESSION_WAIT_PROPERTY, "60").strip();
        try {
            double s = Double.parseDouble(v);
            if (s > 0 && Double.isFinite(s)) return Math.round(s * 1000);
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(SESSION_WAIT_PROPERTY + " must be a positive number of seconds, got '" + v + "'");
    }

    /** The largest round state ({@link RoundState#bytes()}) sent inside the task rather than as a broadcast. */
    public static long inlineMaxBytes() {
        String v = System.getProperty(INLINE_MAX_BYTES_PROPERTY);
        if (v == null || v.isBlank()) return DEFAULT_INLINE_MAX_BYTES;
        try {
            long n = Long.parseLong(v.strip());
            if (n >= 0) return n;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(INLINE_MAX_BYTES_PROPERTY + " must be a non-negative number of bytes, got '" + v + "'");
    }

    public static DistributedTrainer.Result run(JavaSparkContext sc, TrainSpec spec, ShardSource shards, MetricsLog metrics, String stageName,
                                                PrintStream console, DistributedTrainer.RoundListener listener) throws IOException {
        return run(sc, spec, shards, metrics, stageName, console, listener, inlineMaxBytes());
    }

    /** As above, with round states of at most {@code inlineMaxBytes} tensor bytes sent inside the task (0: always broadcast). */
    public static DistributedTrainer.Result run(JavaSparkContext sc, TrainSpec spec, ShardSource shards, MetricsLog metrics, String stageName,
                                                PrintStream console, DistributedTrainer.RoundListener listener, long inlineMaxBytes) throws IOException {
        return run(sc, spec, shards, metrics, stageName, console, listener, inlineMaxBytes, Rounds.of(sc.getConf()));
    }

    /**
     * As above, with the rounds sent as {@code rounds} says: over a round session when it can ({@link Rounds#SESSION}),
     * or one Spark job per round.
     */
    public static DistributedTrainer.Result run(JavaSparkContext sc, TrainSpec spec, ShardSource shards, MetricsLog metrics, String stageName,
                                                PrintStream console, DistributedTrainer.RoundListener listener, long inlineMaxBytes,
                                                Rounds rounds) throws IOException {
        Configuration conf = sc.hadoopConfiguration();
        SerializableConfiguration sconf = new SerializableConfiguration(conf);
        TransformerLM model = BaseModelCache.model(spec.base(), conf);
        AttachedAdapter adapter = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
        JavaRDD<Integer> partitions = sc.parallelize(IntStream.range(0, shards.partitions()).boxed().toList(), shards.partitions());
        RoundResultSum sum = new RoundResultSum();
        io.sparklora.spark.FailFast.install(sc.sc());
        Broadcast<TrainTaskContext> context = sc.broadcast(new TrainTaskContext(spec, shards, sconf));
        FoldBroadcasts folds = new FoldBroadcasts(sc);     // train.aggregate: stack: each round's new folds, broadcast once
        RoundSession session = new RoundSession(sc, context, partitions, rounds == Rounds.SESSION, inlineMaxBytes,
                rounds == Rounds.SESSION ? sessionWaitMillis() : 0, console, stageName);
        DistributedTrainer.RoundExecutor executor = state -> {
            RoundResult viaSession = session.run(state);
            if (viaSession != null) return viaSession;
            FoldBroadcasts.Shipped shipped = folds.ship(state);
            RoundStateRef<FoldBroadcasts.Shipped> ref = RoundStateRef.of(sc, shipped, shipped.bytes(), inlineMaxBytes);
            try {
                return io.sparklora.spark.PartitionOrderSum.sum(
                        partitions.mapPartitionsWithIndex(new TrainRoundTask(context, ref), false), sum);
            } catch (Exception e) {
                throw io.sparklora.spark.FailFast.translate(sc.sc(), e);     // bad input: its own message, not retried
            } finally {
                ref.release();
            }
        };
        DistributedTrainer.Result r;
        try {
            r = DistributedTrainer.run(adapter, spec, conf, executor, shards.partitions(), metrics, stageName, console, listener);
        } finally {
            session.close();
            context.destroy();
            folds.destroy();
        }
        if (spec.outputUri() != null) saveAdapter(conf, r.adapter(), HadoopFiles.resolve(spec.outputUri(), "adapter"), spec.base().uri());
        return r;
    }

    /** Writes the adapter in PEFT layout to any file system, atomically. */
    public static void saveAdapter(Configuration conf, AttachedAdapter adapter, String uri, String baseModel) throws IOException {
        HadoopFiles.writeDirectoryFromLocal(conf, uri, local -> PeftAdapterFormat.save(adapter, local, baseModel));
    }
}
