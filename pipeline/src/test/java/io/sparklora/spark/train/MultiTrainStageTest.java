package io.sparklora.spark.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Several adapters trained in one Spark job on local[2], their rounds shared: each adapter ends where the train stage
 * run for it alone ends (to fp32 rounding), with gradient sync and with K local steps and averaged moments; one
 * adapter's refused data fails that adapter only.
 */
class MultiTrainStageTest {
    static JavaSparkContext sc;
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    @TempDir static Path tmp;
    static BaseModelRef base;
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 7), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    static TrainSpec spec(AdapterConfig a, String sync, int rounds, int k, boolean avgOpt, double lr, long seed) {
        TrainingOptions o = new TrainingOptions(rounds * k, 2, 1, lr, 0.01, 1, "cosine", 0.0, 1.0, seed);
        return new TrainSpec(base, a, Map.of(), rounds, k, sync, avgOpt, o, 1.0, 0, null);
    }

    static List<TokenBlocks> shards(long seed) {
        return List.of(TrainStageTest.randomShard(6, 8, seed), TrainStageTest.randomShard(5, 8, seed + 1));
    }

    static List<MultiTrainStage.Job> jobs(String sync, int k, boolean avgOpt) {
        return List.of(
                new MultiTrainStage.Job("chat", spec(AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj")).withDropout(0.1), sync, 3, k, avgOpt, 1e-2, 11),
                        new InMemoryShards(shards(100)), MetricsLog.inMemory()),
                new MultiTrainStage.Job("code", spec(AdapterConfig.of("dora", 2, 4, List.of("c_fc")), sync, 2, k, avgOpt, 5e-3, 12),
                        new InMemoryShards(shards(200)), MetricsLog.inMemory()),
                new MultiTrainStage.Job("mail", spec(AdapterConfig.of("loha", 2, 4, List.of("c_attn")), sync, 3, k, avgOpt, 2e-2, 13),
                        new InMemoryShards(shards(300)), MetricsLog.inMemory()));
    }

    static void assertSameAsAlone(MultiTrainStage.Outcome o, MultiTrainStage.Job j) throws Exception {
        assertTrue(o.succeeded(), o.name() + ": " + o.error());
        DistributedTrainer.Result alone = TrainStage.run(sc, j.spec(), j.shards(), MetricsLog.inMemory(), "train", QUIET, null);
        Map<String, INDArray> want = PeftAdapterFormat.tensors(alone.adapter()), got = PeftAdapterFormat.tensors(o.result().adapter());
        assertEquals(want.keySet(), got.keySet(), o.name());
        Map<String, INDArray> init = PeftAdapterFormat.tensors(io.sparklora.adapters.AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7),
                TrainSpec.ADAPTER_NAME, j.spec().adapter(), j.spec().options().seed()));
        double moved = 0;
        for (String k : want.keySet()) {
            assertEquals(0, got.get(k).sub(want.get(k)).amaxNumber().doubleValue(), 2e-5 * Math.max(1, want.get(k).amaxNumber().doubleValue()), o.name() + ": " + k);
            moved = Math.max(moved, want.get(k).sub(init.get(k)).amaxNumber().doubleValue());
        }
        assertTrue(moved > 1e-3, o.name() + ": training must move the adapter for the comparison to mean anything: " + moved);
        assertEquals(alone.roundsRun(), o.result().roundsRun(), o.name() + ": rounds");
    }

    @Test
    void withGradientSyncEachAdapterEqualsItsTrainStageAlone() throws Exception {
        List<MultiTrainStage.Job> jobs = jobs("gradients", 1, false);
        Map<String, MultiTrainStage.Outcome> out = MultiTrainStage.run(sc, jobs, QUIET);
        assertEquals(List.of("chat", "code", "mail"), List.copyOf(out.keySet()));
        for (MultiTrainStage.Job j : jobs) assertSameAsAlone(out.get(j.name()), j);
        assertEquals(3, jobs.get(0).metrics().lines().stream().filter(l -> l.path("stage").asText().equals("chat")).count(), "one metrics line per round");
    }

    @Test
    void withLocalStepsAndAveragedMomentsEachAdapterEqualsItsTrainStageAlone() throws Exception {
        List<MultiTrainStage.Job> jobs = jobs("parameters", 2, true);
        Map<String, MultiTrainStage.Outcome> out = MultiTrainStage.run(sc, jobs, QUIET);
        for (MultiTrainStage.Job j : jobs) assertSameAsAlone(out.get(j.name()), j);
    }

    @Test
    void refusedDataFailsThatAdapterOnly() throws Exception {
        List<TokenBlocks> bad = new ArrayList<>(shards(400));
        bad.get(1).block(2)[4] = 999;
        List<MultiTrainStage.Job> jobs = new ArrayList<>(jobs("gradients", 1, false));
        jobs.add(1, new MultiTrainStage.Job("bad", spec(AdapterConfig.lora(4, 8, List.of("c_attn")), "gradients", 3, 1, false, 1e-2, 14),
                new InMemoryShards(bad), MetricsLog.inMemory()));
        Map<String, MultiTrainStage.Outcome> out = MultiTrainStage.run(sc, jobs, QUIET);
        MultiTrainStage.Outcome b = out.get("bad");
        assertFalse(b.succeeded());
        assertTrue(b.error().contains("adapter 'bad'") && b.error().contains("token id 999") && b.error().contains("partition 1"), b.error());
        for (MultiTrainStage.Job j : jobs) if (!j.name().equals("bad")) assertSameAsAlone(out.get(j.name()), j);
    }

    @Test
    void refusesAdaptersThatCannotShareAJob() {
        List<MultiTrainStage.Job> mixed = new ArrayList<>(jobs("gradients", 1, false));
        mixed.add(new MultiTrainStage.Job("avg", spec(AdapterConfig.lora(4, 8, List.of("c_attn")), "parameters", 2, 2, false, 1e-2, 15),
                new InMemoryShards(shards(500)), MetricsLog.inMemory()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MultiTrainStage.run(sc, mixed, QUIET));
        assertTrue(e.getMessage().contains("share one sync mode"), e.getMessage());
    }
}
