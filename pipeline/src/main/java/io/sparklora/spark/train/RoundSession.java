package io.sparklora.spark.train;

import io.sparklora.spark.PartitionOrderSum;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.rdd.RDD;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The train stage's rounds without a Spark job per round: one barrier stage of one long-lived task per partition
 * ({@link RoundSessionTask}) for the whole training, each task connected to the driver by a TCP connection over which
 * the driver sends every round's state and the task returns the round's result. This is how XGBoost's Spark
 * integration runs its tracker: a barrier stage (all tasks scheduled together, or none) and a channel of its own.
 *
 * <p>Why: a round that is a Spark job costs about 50 ms of scheduling whatever the model (task binary, launch,
 * results, the driver's job bookkeeping; docs/BENCHMARKS.md, "Distributed rounds"), a quarter or more of a round at
 * the demo's size. Over the session a round costs the frames' serialisation and one round trip.
 *
 * <p>What does not change: each task does exactly a round task's work ({@link TrainRoundTask#work}) on the same
 * round state, and the driver adds the results in partition order as {@link PartitionOrderSum} does, so a session
 * gives the adapter a job per round gives, bit for bit. The driver's loop ({@link io.sparklora.train.DistributedTrainer})
 * does not know which one ran.
 *
 * <p>When it is used ({@link #whyNot}): the mode is on ({@link TrainStage#SESSION_PROPERTY}); dynamic allocation
 * is off (barrier stages refuse it); the cluster has a task slot for every partition at once; and the round state
 * is no larger than the inline limit ({@link TrainStage#inlineMaxBytes()}): the session sends a copy per task, as the
 * inline path does, where a larger state goes out as a broadcast that reaches each executor once. Otherwise, or
 * when the tasks do not all connect within {@link TrainStage#SESSION_WAIT_PROPERTY} seconds, rounds run as jobs.
 *
 * <p>A lost session (a task's round threw, an executor died, a connection broke) is closed and its stage cancelled;
 * the round it was running, and every later one, runs as a Spark job of its own, with Spark's retries. Since a
 * round's result is a function of the round state alone (data order and dropout are seeded by seed, partition and
 * round), the rerun gives what the session would have.
 *
 * <p>The connections carry adapter-sized tensors in the clear, like Spark's own RPC without
 * {@code spark.network.crypto.enabled}. A connection is served only after it presents the session's 16-byte random
 * token, which travels in the task closure, and payloads are read through an allow-list ({@link SessionWire#FILTER}).
 * Turn sessions off ({@code -Dsparklora.round.session=off}) where that is not acceptable.
 */
final class RoundSession implements AutoCloseable {
    private final JavaSparkContext sc;
    private final Broadcast<TrainTaskContext> context;
    private final JavaRDD<Integer> partitions;
    private final boolean enabled;
    private final long inlineMaxBytes;
    private final long waitMillis;
    private final PrintStream console;
    private final String stageName;

    private boolean tried;          // the first round decided whether a session runs
    private Conn[] conns;           // by partition; null when no session runs (never opened, or lost)
    private ServerSocket server;
    private JavaFutureAction<List<Integer>> job;
    private int foldsSent;

    private record Conn(Socket socket, DataInputStream in, DataOutputStream out) {
        void close() { closeQuietly(socket); }
    }

    private static void closeQuietly(java.io.Closeable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (IOException ignored) {
            // closing: a peer already gone changes nothing
        }
    }

    /** The session is gone: the message says why, and the caller runs the round as a job. */
    static final class Lost extends Exception {
        Lost(String message) { super(message); }
    }

    RoundSession(JavaSparkContext sc, Broadcast<TrainTaskContext> context, JavaRDD<Integer> partitions, boolean enabled,
                 long inlineMaxBytes, long waitMillis, PrintStream console, String stageName) {
        this.sc = sc;
        this.context = context;
        this.partitions = partitions;
        this.enabled = enabled;
        this.inlineMaxBytes = inlineMaxBytes;
        this.waitMillis = waitMillis;
        this.console = console;
        this.stageName = stageName;
    }

    /**
     * Runs the round over the session and returns the tasks' results summed in partition order; null when no session
     * runs (the first call opens one if it can), and the caller then runs the round as a job.
     */
    RoundResult run(RoundState state) {
        if (!tried) {
            tried = true;
            int n = partitions.getNumPartitions();
            String why = enabled ? refusal(sc, state.bytes(), inlineMaxBytes) : "off (" + TrainStage.SESSION_PROPERTY + " or " + TrainStage.SESSION_CONF + ")";
            if (why == null) {
                awaitSlots(sc, n, waitMillis);
                why = slotShortage(sc, n);
            }
            if (why == null) why = open();
            if (why != null) {
                console.printf(Locale.ROOT, "%s: one Spark job per round: no round session, %s%n", stageName, why);
                return null;
            }
            console.printf(Locale.ROOT, "%s: rounds run over a round session: one barrier stage of %d tasks for the whole training%n",
                    stageName, conns.length);
        }
        if (conns == null) return null;
        try {
            return exchange(state);
        } catch (Lost e) {
            console.printf(Locale.ROOT, "%s: round session lost at round %d (%s); this round and the rest run as one Spark job each%n",
                    stageName, state.round() + 1, e.getMessage());
            shutDown(true);
            return null;
        }
    }

    /** Why no session can run here, or null when one can. */
    static String whyNot(JavaSparkContext sc, int partitions, long stateBytes, long inlineMaxBytes) {
        String why = refusal(sc, stateBytes, inlineMaxBytes);
        return why != null ? why : slotShortage(sc, partitions);
    }

    /** Why the cluster's task slots cannot hold the session's tasks now, or null when they can. */
    private static String slotShortage(JavaSparkContext sc, int partitions) {
        int slots = slots(sc);
        return partitions > slots ? partitions + " partitions need as many task slots at once and the cluster has " + slots + " now" : null;
    }

    /** What the settings and the state's size rule out, whatever the cluster offers; null when nothing does. */
    private static String refusal(JavaSparkContext sc, long stateBytes, long inlineMaxBytes) {
        if (sc.getConf().getBoolean("spark.dynamicAllocation.enabled", false)) return "spark.dynamicAllocation.enabled is true (barrier stages need fixed executors)";
        if (stateBytes > inlineMaxBytes) {
            return "the round state (" + stateBytes + " bytes) is over " + TrainStage.INLINE_MAX_BYTES_PROPERTY + " (" + inlineMaxBytes
                    + "), so it goes out as a broadcast";
        }
        return null;
    }

    /**
     * Waits, up to {@code waitMillis}, for the cluster to offer {@code partitions} task slots: on a cluster the train
     * stage may be the application's first, before any executor has registered. It stops early once executors have
     * come and their slots have not changed for {@value #SLOTS_SETTLED_MS} ms (a cluster that will not grow). Local mode
     * has all its slots from the start and never waits.
     */
    static void awaitSlots(JavaSparkContext sc, int partitions, long waitMillis) {
        if (sc.isLocal()) return;
        long start = System.nanoTime(), deadline = start + TimeUnit.MILLISECONDS.toNanos(waitMillis), changed = start;
        int last = slots(sc);
        while (last < partitions && System.nanoTime() < deadline
                && (last == 0 || System.nanoTime() - changed < TimeUnit.MILLISECONDS.toNanos(SLOTS_SETTLED_MS))) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            int now = slots(sc);
            if (now != last) changed = System.nanoTime();
            last = now;
        }
    }

    static final long SLOTS_SETTLED_MS = 5000;

    /** Task slots the cluster has now: what Spark's own barrier check counts. */
    static int slots(JavaSparkContext sc) {
        try {
            return sc.sc().maxNumConcurrentTasks(sc.sc().resourceProfileManager().defaultResourceProfile());
        } catch (RuntimeException | LinkageError e) {
            return sc.defaultParallelism();
        }
    }

    /** Starts the barrier stage and waits for every task to connect; returns why it failed, or null. */
    private String open() {
        int n = partitions.getNumPartitions();
        SparkConf conf = sc.getConf();
        String host = conf.get("spark.driver.host", "localhost");
        String bind = conf.get("spark.driver.bindAddress", host);
        byte[] token = new byte[SessionWire.TOKEN_BYTES];
        new SecureRandom().nextBytes(token);
        Conn[] got = new Conn[n];
        int[] attempts = new int[n];
        try {
            server = new ServerSocket();
            server.bind(new InetSocketAddress(InetAddress.getByName(bind), 0), Math.max(50, n));
            server.setSoTimeout(200);
            ClassTag<Integer> tag = ClassTag$.MODULE$.apply(Integer.class);
            RDD<Integer> stage = partitions.rdd().barrier().mapPartitions(
                    new RoundSessionTask(context, host, server.getLocalPort(), token, java.util.UUID.randomUUID().toString()), false, tag);
            job = JavaRDD.fromRDD(stage, tag).collectAsync();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMillis);
            int connected = 0;
            while (connected < n) {
                if (job.isDone()) return "its stage ended before every task connected (" + failure(job) + ")";
                if (System.nanoTime() > deadline) return "its " + n + " tasks did not all connect within " + waitMillis / 1000 + " s (" + connected + " did)";
                Socket s;
                try {
                    s = server.accept();
                } catch (SocketTimeoutException e) {
                    continue;
                }
                Greeting g = greet(s, token, attempts);
                if (g == null) continue;
                if (got[g.partition()] != null) got[g.partition()].close();     // a retried attempt replaces the one before
                else connected++;
                got[g.partition()] = g.conn();
            }
            conns = got;
            return null;
        } catch (IOException | RuntimeException e) {
            return "it could not start (" + e + ")";
        } finally {
            closeQuietly(server);
            if (conns == null) {
                for (Conn c : got) if (c != null) c.close();
                if (job != null) {
                    job.cancel(true);
                    job = null;
                }
            }
        }
    }

    private record Greeting(Conn conn, int partition) {}

    /** Reads a task's greeting: its connection and partition, or null for a stranger or a stale attempt. */
    private static Greeting greet(Socket s, byte[] token, int[] attempts) {
        try {
            s.setSoTimeout(10_000);
            s.setTcpNoDelay(true);
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream(), 1 << 16));
            if (in.readLong() != SessionWire.MAGIC) throw new IOException("not a round session task");
            byte[] t = new byte[SessionWire.TOKEN_BYTES];
            in.readFully(t);
            if (!MessageDigest.isEqual(t, token)) throw new IOException("wrong token");
            int p = in.readInt(), attempt = in.readInt();
            if (p < 0 || p >= attempts.length || attempt < attempts[p]) throw new IOException("partition " + p + " attempt " + attempt);
            attempts[p] = attempt;
            s.setSoTimeout(0);
            return new Greeting(new Conn(s, in, new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16))), p);
        } catch (IOException e) {
            closeQuietly(s);     // a stranger or a stale attempt
            return null;
        }
    }

    private RoundResult exchange(RoundState state) throws Lost {
        AdapterTensors[] fresh = FoldBroadcasts.unsent(state, foldsSent);
        byte[] payload;
        try {
            payload = SessionWire.serialize(new SessionWire.SessionRound(state.folds().isEmpty() ? state : state.withFolds(List.of()), fresh));
        } catch (IOException e) {
            throw new Lost("cannot serialise the round state: " + e.getMessage());
        }
        for (int p = 0; p < conns.length; p++) {
            try {
                SessionWire.writePayload(conns[p].out(), SessionWire.ROUND, payload);
            } catch (IOException e) {
                throw new Lost("cannot send the round to partition " + p + ": " + e.getMessage());
            }
        }
        foldsSent += fresh.length;
        RoundResult[] results = new RoundResult[conns.length];
        ClassLoader loader = Thread.currentThread().getContextClassLoader();
        for (int p = 0; p < conns.length; p++) results[p] = await(p, loader);
        try {
            return PartitionOrderSum.inOrder(Arrays.asList(results), new RoundResultSum(), PartitionOrderSum.DEFAULT_FAN_IN);
        } catch (Exception e) {
            throw new IllegalStateException("round session: cannot add the tasks' results: " + e.getMessage(), e);
        }
    }

    /** Partition {@code p}'s result for the round, watching the stage while it waits. */
    private RoundResult await(int p, ClassLoader loader) throws Lost {
        Conn c = conns[p];
        try {
            int kind;
            c.socket().setSoTimeout(1000);
            while (true) {
                try {
                    kind = c.in().read();
                    break;
                } catch (SocketTimeoutException e) {
                    if (job.isDone()) throw new Lost("its stage ended: " + failure(job));
                }
            }
            c.socket().setSoTimeout(0);
            if (kind < 0) throw new Lost("partition " + p + " closed its connection");
            if (kind == SessionWire.ERROR) throw new Lost("partition " + p + " failed: " + c.in().readUTF());
            if (kind != SessionWire.RESULT) throw new Lost("partition " + p + " sent frame " + kind);
            return SessionWire.deserialize(SessionWire.readPayload(c.in()), RoundResult.class, loader);
        } catch (IOException e) {
            throw new Lost("partition " + p + ": " + e.getMessage());
        }
    }

    private static String failure(JavaFutureAction<?> job) {
        try {
            job.get(0, TimeUnit.MILLISECONDS);
            return "it finished";
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            String m = String.valueOf(c.getMessage());
            int nl = m.indexOf('\n');
            return nl < 0 ? m : m.substring(0, nl);
        } catch (Exception e) {
            return e.toString();
        }
    }

    /** Tells every task to stop and waits for the stage to end (cancelling it when {@code cancel} or when it hangs). */
    private void shutDown(boolean cancel) {
        if (conns != null) {
            for (Conn c : conns) {
                if (!cancel) {
                    try {
                        c.out().writeByte(SessionWire.STOP);
                        c.out().flush();
                    } catch (IOException ignored) {
                        // the task is gone already
                    }
                }
                c.close();
            }
            conns = null;
        }
        if (job != null) {
            if (cancel) job.cancel(true);
            try {
                job.get(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                job.cancel(true);
            }
            job = null;
        }
        closeQuietly(server);
    }

    /** Ends the session, if one runs: each task gets {@code STOP} and its stage ends normally. */
    @Override
    public void close() {
        shutDown(false);
    }
}
