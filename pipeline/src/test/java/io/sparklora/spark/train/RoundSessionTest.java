package io.sparklora.spark.train;

import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.PartitionOrderSum;
import io.sparklora.spark.ShardSource;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.ByteArrayOutputStream;
import java.io.InvalidClassException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Round sessions ({@link RoundSession}): the train stage's rounds over one barrier stage of long-lived tasks give the
 * adapter that one Spark job per round gives, bit for bit, in one job; a session that loses a task hands the round to
 * a job and the run still ends on the same adapter.
 */
public class RoundSessionTest {
    static JavaSparkContext sc;
    @TempDir static Path tmp;
    static final AtomicInteger JOBS = new AtomicInteger();
    static BaseModelRef base;

    static TrainSpec spec(String sync, int rounds, int k, boolean avgOpt) {
        io.sparklora.train.TrainingOptions o = new io.sparklora.train.TrainingOptions(rounds * k, 2, 1, 1e-2, 0.01, 1, "cosine", 0.0, 1.0, 11);
        return new TrainSpec(base, io.sparklora.adapters.AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj")), Map.of(), rounds, k, sync, avgOpt, o,
                1.0, 0, null);
    }

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        sc.sc().addSparkListener(new SparkListener() {
            @Override public void onJobStart(SparkListenerJobStart e) { JOBS.incrementAndGet(); }
        });
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(TrainStageTest.CFG, 7), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    record Run(DistributedTrainer.Result result, int jobs, String console) {}

    static Run run(TrainSpec spec, ShardSource shards, TrainStage.Rounds rounds) throws Exception {
        sc.sc().listenerBus().waitUntilEmpty();
        int before = JOBS.get();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        DistributedTrainer.Result r = TrainStage.run(sc, spec, shards, MetricsLog.inMemory(), "train",
                new PrintStream(out, true, StandardCharsets.UTF_8), null, TrainStage.DEFAULT_INLINE_MAX_BYTES, rounds);
        sc.sc().listenerBus().waitUntilEmpty();
        return new Run(r, JOBS.get() - before, out.toString(StandardCharsets.UTF_8));
    }

    static List<TokenBlocks> shards() {
        return List.of(TrainStageTest.randomShard(6, 16, 1), TrainStageTest.randomShard(5, 16, 2));
    }

    static void assertSameAdapter(DistributedTrainer.Result a, DistributedTrainer.Result b, String what) {
        List<Parameter> x = a.adapter().trainableParameters(), y = b.adapter().trainableParameters();
        assertEquals(x.size(), y.size());
        for (int t = 0; t < x.size(); t++) {
            assertEquals(x.get(t).name(), y.get(t).name());
            assertArrayEquals(x.get(t).value().dup('c').data().asFloat(), y.get(t).value().dup('c').data().asFloat(), what + " " + x.get(t).name());
        }
    }

    @Test
    void aSessionRunsEveryRoundInOneJobAndGivesTheAdapterOfAJobPerRoundBitForBit() throws Exception {
        // gradient sync; local steps with averaged moments; stack, whose folds go to each task once
        for (TrainSpec spec : List.of(spec("gradients", 4, 1, false),
                spec("parameters", 3, 2, true),
                spec("parameters", 3, 2, false).withAggregate("stack"))) {
            String what = spec.sync() + "/" + spec.aggregate();
            Run jobs = run(spec, new InMemoryShards(shards()), TrainStage.Rounds.JOBS);
            Run session = run(spec, new InMemoryShards(shards()), TrainStage.Rounds.SESSION);
            assertSameAdapter(jobs.result(), session.result(), what);
            assertEquals(jobs.result().finalLoss(), session.result().finalLoss(), what);
            assertEquals(jobs.result().bytesBroadcastPerRound(), session.result().bytesBroadcastPerRound(), what);
            assertEquals(spec.rounds(), jobs.jobs(), what + ": one job per round");
            assertEquals(1, session.jobs(), what + ": the session's one barrier stage\n" + session.console());
            assertTrue(session.console().contains("rounds run over a round session"), session.console());
        }
        // Spark 3.5's BarrierTaskContext object starts a non-daemon timer thread when first touched, which would keep a
        // local-mode spark-submit JVM alive after its main returns; the session's tasks must not touch it
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            assertFalse(t.getName().startsWith("Barrier task timer") && !t.isDaemon(), "a non-daemon " + t.getName() + " thread is running");
        }
    }

    /** Shards whose first load in this JVM throws a fault that is not refused input (so Spark would retry it). */
    static final class FailsOnce implements ShardSource {
        private static final long serialVersionUID = 1L;
        static final Map<String, Boolean> FAILED = new ConcurrentHashMap<>();
        private final InMemoryShards shards;
        private final String key;

        FailsOnce(InMemoryShards shards, String key) {
            this.shards = shards;
            this.key = key;
        }

        @Override public int partitions() { return shards.partitions(); }

        @Override
        public TokenBlocks load(int partition, Configuration conf) {
            if (partition == 1 && FAILED.putIfAbsent(key, true) == null) throw new IllegalStateException("disk went away (injected)");
            return shards.load(partition, conf);
        }
    }

    @Test
    void aLostSessionHandsTheRoundToAJobAndTheRunEndsOnTheSameAdapter() throws Exception {
        TrainSpec spec = spec("gradients", 3, 1, false);
        Run jobs = run(spec, new InMemoryShards(shards()), TrainStage.Rounds.JOBS);
        Run lost = run(spec, new FailsOnce(new InMemoryShards(shards()), "lost-" + System.nanoTime()), TrainStage.Rounds.SESSION);
        assertTrue(lost.console().contains("round session lost at round 1") && lost.console().contains("disk went away"), lost.console());
        assertSameAdapter(jobs.result(), lost.result(), "after the fallback");
        assertEquals(3, lost.result().roundsRun());
        // the session's stage, then one job per round from the lost round on
        assertEquals(1 + spec.rounds(), lost.jobs(), lost.console());
    }

    @Test
    void noSessionWhenItsStateWouldGoOutAsABroadcastOrWhenItIsOff() throws Exception {
        TrainSpec spec = spec("gradients", 2, 1, false);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TrainStage.run(sc, spec, new InMemoryShards(shards()), MetricsLog.inMemory(), "train", new PrintStream(out, true, StandardCharsets.UTF_8),
                null, 0, TrainStage.Rounds.SESSION);
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("no round session, the round state"), out.toString(StandardCharsets.UTF_8));
        Run off = run(spec, new InMemoryShards(shards()), TrainStage.Rounds.JOBS);
        assertEquals(2, off.jobs());
        assertTrue(off.console().contains("no round session, off"), off.console());
        assertNotNull(RoundSession.whyNot(sc, 3, 1, Long.MAX_VALUE), "3 partitions on local[2] cannot all run at once");
        assertNull(RoundSession.whyNot(sc, 2, 1, Long.MAX_VALUE));
    }

    @Test
    void theWireReadsOnlyTheRoundsOwnClasses() throws Exception {
        AdapterTensors t = new AdapterTensors();
        t.put("x", org.nd4j.linalg.factory.Nd4j.linspace(1, 6, 6, DataType.FLOAT).reshape(2, 3));
        io.sparklora.train.RoundResult r = new io.sparklora.train.RoundResult();
        r.payload = t;
        r.executors.add("e");
        io.sparklora.train.RoundResult back = SessionWire.deserialize(SessionWire.serialize(r), io.sparklora.train.RoundResult.class,
                getClass().getClassLoader());
        assertEquals(t.digest(), back.payload.digest());
        ArrayList<Object> foreign = new ArrayList<>(List.of(new java.io.File("/etc/passwd")));
        assertThrows(InvalidClassException.class, () -> SessionWire.deserialize(SessionWire.serialize(foreign), ArrayList.class,
                getClass().getClassLoader()));
        assertThrows(InvalidClassException.class, () -> SessionWire.deserialize(SessionWire.serialize("a string"), io.sparklora.train.RoundResult.class,
                getClass().getClassLoader()));
    }

    @Test
    void theDriversSumHasTheSparkSumsAssociation() throws Exception {
        // 23 partitions, fan-in 4: three levels; values chosen so that a different association changes the bits
        List<Double> values = new ArrayList<>();
        java.util.Random rnd = new java.util.Random(5);
        for (int i = 0; i < 23; i++) values.add(Math.scalb(rnd.nextDouble(), rnd.nextInt(60) - 30));
        double spark = PartitionOrderSum.sum(sc.parallelize(values, 23), Double::sum, 4);
        double local = PartitionOrderSum.inOrder(values, Double::sum, 4);
        assertEquals(Double.doubleToLongBits(spark), Double.doubleToLongBits(local));
        double flat = 0;
        for (double v : values) flat += v;
        assertNotEquals(Double.doubleToLongBits(flat), Double.doubleToLongBits(local), "the values must tell associations apart");
    }
}
