package io.sparklora.spark.train;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.LrSchedule;
import io.sparklora.optim.ParamGroup;
import io.sparklora.train.BatchOrder;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.PrintStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The distributed train stage on Spark local[2]: exactness, bytes moved, resume after a crash. */
public class TrainStageTest {
    static JavaSparkContext sc;
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    @TempDir static Path tmp;
    static BaseModelRef base;
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(m, dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    public static TokenBlocks randomShard(int blocks, int seqLen, long seed) {
        Random r = new Random(seed);
        TokenBlocks b = new TokenBlocks(seqLen);
        for (int i = 0; i < blocks; i++) {
            int[] t = new int[seqLen + 1];
            boolean[] m = new boolean[seqLen + 1];
            for (int j = 0; j <= seqLen; j++) {
                t[j] = r.nextInt(64);
                m[j] = j > 2 || i % 2 == 0;     // uneven target counts, so weighting matters
            }
            b.add(t, m);
        }
        return b;
    }

    static TrainSpec spec(String sync, int rounds, int k, boolean avgOpt, int ckEvery, String out) {
        TrainingOptions o = new TrainingOptions(rounds * k, 2, 1, 1e-2, 0.01, 1, "cosine", 0.0, 1.0, 11);
        AdapterConfig a = AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj"));
        return new TrainSpec(base, a, Map.of(), rounds, k, sync, avgOpt, o, 1.0, ckEvery, out);
    }

    @Test
    void gradientAveragingEqualsOneProcessTrainingOnTheUnionOfBatches() throws Exception {
        List<TokenBlocks> shards = List.of(randomShard(6, 16, 1), randomShard(5, 16, 2));
        TrainSpec spec = spec("gradients", 3, 1, false, 0, null);
        DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);

        // reference: one process, each step's batch = both partitions' batches of that round, stacked
        TransformerLM model = TransformerLM.randomInit(CFG, 7);
        AttachedAdapter ad = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
        List<Parameter> params = ad.trainableParameters();
        AdamW opt = new AdamW(ParamGroup.byTag(params, 0.01), 1e-2);
        LrSchedule sched = LrSchedule.parse("cosine", 1, 3, 0.0);
        for (int round = 0; round < 3; round++) {
            List<int[]> rows = new ArrayList<>();
            List<boolean[]> masks = new ArrayList<>();
            for (int p = 0; p < 2; p++) {
                BatchOrder order = BatchOrder.at(shards.get(p).size(), 11 * 1_000_003L + p, (long) round * 2);
                for (int i : order.next(2)) {
                    rows.add(shards.get(p).block(i));
                    masks.add(shards.get(p).mask(i));
                }
            }
            TokenBatch union = TokenBatch.shifted(rows.toArray(new int[0][]), masks.toArray(new boolean[0][]));
            model.forwardBackward(union, io.sparklora.model.ForwardContext.inference(), 1.0);
            GradClipping.clip(params, 1.0);
            opt.step(sched.factor(round));
            opt.zeroGrad();
        }
        List<Parameter> distributed = r.adapter().trainableParameters();
        assertEquals(params.size(), distributed.size());
        // every tensor, A and B alike, moved away from its initial value (the same seed gives the same init)
        List<Parameter> initial = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(),
                spec.options().seed()).trainableParameters();
        double maxDiff = 0;
        for (int i = 0; i < params.size(); i++) {
            INDArray a = params.get(i).value(), b = distributed.get(i).value();
            maxDiff = Math.max(maxDiff, a.sub(b).amaxNumber().doubleValue());
            assertTrue(b.sub(initial.get(i).value()).amaxNumber().doubleValue() > 1e-4, distributed.get(i).name() + " did not train");
        }
        assertTrue(maxDiff < 1e-5, "distributed and one-process adapters differ by " + maxDiff);
    }

    @Test
    void svdAndStackAggregationAndDilocoOnSparkEqualTheSameRoundsInOneProcess() throws Exception {
        // the workers' own factors (svd) and the driver's outer momentum (DiLoCo) survive Spark's serialisation and
        // partition-ordered sum: the adapters equal those of the same rounds run in this process, bit for bit
        List<TokenBlocks> shards = List.of(randomShard(6, 16, 1), randomShard(5, 16, 2));
        // stack: every task's fresh model merges all earlier folds at once, the one-process worker merges them round by round
        for (TrainSpec spec : List.of(spec("parameters", 3, 2, false, 0, null).withAggregate("svd"),
                spec("parameters", 3, 2, false, 0, null).withAggregate("stack"),
                spec("parameters", 3, 2, true, 0, null).withOuter(io.sparklora.train.OuterOptimizer.Spec.DILOCO))) {
            MetricsLog log = MetricsLog.inMemory();
            DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), log, "train", QUIET, null);
            AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
            AttachedAdapter worker = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
            AttachedAdapter inProcess = DistributedTrainer.run(driver, spec, new org.apache.hadoop.conf.Configuration(),
                    new io.sparklora.train.InProcessRounds(worker, shards, spec), 2, MetricsLog.inMemory(), "train", QUIET, null).adapter();
            assertEquals(io.sparklora.train.AdapterTensors.ofValues(inProcess.trainableParameters()).digest(),
                    io.sparklora.train.AdapterTensors.ofValues(r.adapter().trainableParameters()).digest(), spec.aggregate() + " " + spec.outer());
            String key = spec.aggregate().equals("mean") ? "pseudo_gradient_norm" : "averaging_gap";
            for (var l : log.lines()) assertTrue(l.path(key).asDouble() > 0, l.toString());
            if (spec.aggregate().equals("stack")) {
                // the folds go out once each, in broadcasts of their own: rounds 2 and 3 each send the previous round's 2
                List<Long> down = log.lines().stream().map(l -> l.path("bytes_broadcast").asLong()).toList();
                assertEquals(down.get(1), down.get(2), down.toString());
                assertTrue(down.get(1) > down.get(0), down.toString());
            }
        }
    }

    @Test
    void roundStateInsideTheTaskOrBroadcastGivesTheSameAdapterBitForBit() throws Exception {
        // threshold 0: every round state is broadcast; Long.MAX_VALUE: every one rides inside the task closure
        List<TokenBlocks> shards = List.of(randomShard(6, 16, 1), randomShard(5, 16, 2));
        for (TrainSpec spec : List.of(spec("gradients", 3, 1, false, 0, null), spec("parameters", 3, 2, true, 0, null))) {
            // one job per round for both (a round session, RoundSessionTest, sends the state over its own connections)
            DistributedTrainer.Result broadcast = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null, 0,
                    TrainStage.Rounds.JOBS);
            DistributedTrainer.Result inline = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null,
                    Long.MAX_VALUE, TrainStage.Rounds.JOBS);
            List<Parameter> b = broadcast.adapter().trainableParameters(), i = inline.adapter().trainableParameters();
            assertEquals(b.size(), i.size());
            for (int t = 0; t < b.size(); t++) {
                assertEquals(b.get(t).name(), i.get(t).name());
                assertArrayEquals(b.get(t).value().dup('c').data().asFloat(), i.get(t).value().dup('c').data().asFloat(),
                        spec.sync() + " " + b.get(t).name());
            }
            assertEquals(broadcast.bytesBroadcastPerRound(), inline.bytesBroadcastPerRound(), "the report counts the state either way");
        }
    }

    @Test
    void onlyAdapterSizedTensorsMove() throws Exception {
        List<TokenBlocks> shards = List.of(randomShard(4, 16, 3), randomShard(4, 16, 4));
        DistributedTrainer.Result r = TrainStage.run(sc, spec("parameters", 2, 2, true, 0, null), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        long adapterBytes = 4L * r.trainableParams();
        // adapter + AdamW's two moments, both ways; nothing of the base
        assertEquals(3 * adapterBytes, r.bytesBroadcastPerRound());
        assertEquals(3 * adapterBytes, r.bytesReducedPerRound());
        DistributedTrainer.Result g = TrainStage.run(sc, spec("gradients", 1, 1, false, 0, null), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(adapterBytes, g.bytesBroadcastPerRound());
        assertEquals(adapterBytes, g.bytesReducedPerRound());
        assertEquals(4L * TransformerLM.parameterCount(CFG), g.modelBytes());
        assertTrue(g.bytesBroadcastPerRound() * 5 < g.modelBytes(), "adapter " + g.bytesBroadcastPerRound() + " B vs model " + g.modelBytes() + " B");
    }

    @Test
    void resumesFromTheLastCheckpointAfterACrashAndEndsWhereAnUninterruptedRunEnds() throws Exception {
        List<TokenBlocks> shards = List.of(randomShard(5, 16, 5), randomShard(7, 16, 6));
        String outA = tmp.resolve("uninterrupted").toString(), outB = tmp.resolve("crashed").toString();
        DistributedTrainer.Result full = TrainStage.run(sc, spec("parameters", 5, 2, true, 2, outA), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        MetricsLog metricsB = MetricsLog.inMemory();
        RuntimeException crash = assertThrows(RuntimeException.class, () -> TrainStage.run(sc, spec("parameters", 5, 2, true, 2, outB),
                new InMemoryShards(shards), metricsB, "train", QUIET, (done, res) -> {
                    if (done == 3) throw new RuntimeException("simulated driver crash after round 3");
                }));
        assertTrue(crash.getMessage().contains("simulated"));
        DistributedTrainer.Result resumed = TrainStage.run(sc, spec("parameters", 5, 2, true, 2, outB), new InMemoryShards(shards),
                metricsB, "train", QUIET, null);
        assertEquals(2, resumed.resumedFrom(), "resumes after the round-2 checkpoint");
        assertEquals(3, resumed.roundsRun());
        List<Parameter> a = full.adapter().trainableParameters(), b = resumed.adapter().trainableParameters();
        for (int i = 0; i < a.size(); i++) assertEquals(a.get(i).value(), b.get(i).value(), a.get(i).name());
        assertEquals(5, metricsB.lines().size(), "one metrics line per round, none duplicated by the resume");
        // killed after the final round's checkpoint and before the stage was marked done: the rerun runs no round and
        // still reports the whole run's figures, which the checkpoint carries
        DistributedTrainer.Result again = TrainStage.run(sc, spec("parameters", 5, 2, true, 2, outA), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(5, again.resumedFrom());
        assertEquals(0, again.roundsRun());
        assertEquals(full.finalLoss(), again.finalLoss(), "final loss from the checkpoint, not NaN");
        assertTrue(Double.isFinite(again.finalLoss()));
        assertEquals(full.bytesBroadcastPerRound(), again.bytesBroadcastPerRound());
        assertEquals(full.bytesReducedPerRound(), again.bytesReducedPerRound());
        assertEquals(full.executors(), again.executors());
        assertFalse(again.executors().isEmpty());
        assertEquals(full.tokensPerSecond(), again.tokensPerSecond(), 0.0);
        assertEquals(full.finalLoss(), resumed.finalLoss(), "the crashed-and-resumed run ends at the same loss");
        // a checkpoint made with other settings is refused, not silently mixed in
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> TrainStage.run(sc, spec("parameters", 6, 2, true, 2, outB),
                new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null));
        assertTrue(e.getMessage().contains("other settings"), e.getMessage());
    }

    @Test
    void localStepsTrainTheAdapterAndTheBaseLoadsOncePerJvm() throws Exception {
        List<TokenBlocks> shards = List.of(randomShard(8, 16, 7), randomShard(8, 16, 8));
        MetricsLog log = MetricsLog.inMemory();
        int loadsBefore = BaseModelCache.loads();
        DistributedTrainer.Result r = TrainStage.run(sc, spec("parameters", 6, 2, false, 0, null), new InMemoryShards(shards), log, "train", QUIET, null);
        // local[2]: tasks run in this JVM, which reads the base at most once whatever ran before (0 if another test did)
        int afterFirst = BaseModelCache.loads();
        assertTrue(afterFirst - loadsBefore <= 1, "one read of the base for all 12 tasks, got " + (afterFirst - loadsBefore));
        TrainStage.run(sc, spec("parameters", 2, 1, false, 0, null), new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(afterFirst, BaseModelCache.loads(), "a second run on the same JVM reads nothing: the base is cached");
        double first = log.lines().get(0).path("loss").asDouble(), last = log.lines().get(5).path("loss").asDouble();
        assertTrue(last < first, "loss falls: " + first + " -> " + last);
        assertEquals(6, r.roundsRun());
        assertEquals(2, r.adapter().model().blocks().size());
    }
}
