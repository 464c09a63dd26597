package io.sparklora.spark.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.PerExampleGradients;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.privacy.DpNoise;
import io.sparklora.privacy.DpSpec;
import io.sparklora.privacy.PerExampleClipping;
import io.sparklora.privacy.RdpAccountant;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.RoundWork;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
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
 * Differentially private training: per-example gradients without a loop over the base, clipping, the driver's noise,
 * DP-SGD and DP-FedAvg on Spark against plain training at σ = 0 and C = ∞, reruns, resume and the ε budget.
 */
public class DpTrainingTest {
    static JavaSparkContext sc;
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    @TempDir static Path tmp;
    static BaseModelRef base;
    public static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 7), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    /** Blocks whose every position is a target (so every example has the same number of targets). */
    public static TokenBlocks shard(int n, long seed) {
        java.util.Random r = new java.util.Random(seed);
        TokenBlocks b = new TokenBlocks(16);
        for (int i = 0; i < n; i++) {
            int[] t = new int[17];
            boolean[] m = new boolean[17];
            for (int j = 0; j < 17; j++) {
                t[j] = r.nextInt(64);
                m[j] = true;
            }
            b.add(t, m);
        }
        return b;
    }

    static double maxDiff(List<Parameter> a, List<Parameter> b) {
        double d = 0;
        for (int i = 0; i < a.size(); i++) d = Math.max(d, a.get(i).value().sub(b.get(i).value()).amaxNumber().doubleValue());
        return d;
    }

    // ---- per-example gradients and clipping (one process) ----------------------------------------------

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"lora", "dora", "vera", "loha", "lokr", "glora", "dylora", "delta_lora"})
    void eachExamplesGradientEqualsThatExampleAloneForEveryMethod(String method) {
        ModelConfig cfg = TinyModels.gpt2();
        AdapterConfig ac = AdapterConfig.of(method, 2, 4, List.of("c_attn", "mlp.c_proj"));
        if (method.equals("vera")) ac = AdapterConfig.of("vera", 4, 1, List.of("c_attn", "mlp.c_proj"));
        if (method.equals("dylora")) ac = ac.withOption("dylora_update", "all");
        if (method.equals("delta_lora")) ac = ac.withOption("delta_warmup", "0");
        TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", ac, 1);
        long seed = 50;
        for (Parameter p : a.trainableParameters()) {
            INDArray noise = org.nd4j.linalg.factory.Nd4j.randn(org.nd4j.linalg.factory.Nd4j.getRandomFactory().getNewRandomInstance(seed++), p.value().shape());
            if (p.group().equals("lora_magnitude_vector")) p.value().muli(noise.muli(0.1).addi(1.0));
            else p.value().assign(noise.muli(0.3));
        }
        TokenBatch batch = TinyModels.batch(cfg, 3, 5, 2);
        PerExampleGradients g = new PerExampleGradients(3, 5);
        a.trainableParameters().forEach(Parameter::zeroGrad);
        model.forwardBackwardPerExample(batch, ForwardContext.inference(), g);
        int[][] in = batch.inputs().toIntMatrix(), tg = batch.targets().toIntMatrix();
        for (int i = 0; i < 3; i++) {
            a.trainableParameters().forEach(Parameter::zeroGrad);
            TokenBatch one = TokenBatch.of(new int[][]{in[i]}, new int[][]{tg[i]});
            model.forwardBackward(one, ForwardContext.inference(), one.targetCount());
            for (Parameter p : a.trainableParameters()) {
                INDArray alone = p.grad().reshape(p.size());
                INDArray per = g.of(p).getRow(i);
                assertEquals(0.0, per.sub(alone).amaxNumber().doubleValue(), 1e-10 * Math.max(1, alone.amaxNumber().doubleValue()),
                        method + " " + p.name() + " example " + i);
            }
        }
    }

    @Test
    void clippingBoundsEveryExampleAndSumsThem() {
        TransformerLM model = TransformerLM.randomInit(CFG, 5, DataType.DOUBLE);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", AdapterConfig.lora(4, 8, List.of("c_attn")), 1);
        for (Parameter p : a.trainableParameters()) p.value().assign(org.nd4j.linalg.factory.Nd4j.rand(DataType.DOUBLE, p.value().shape()).subi(0.5));
        TokenBatch batch = TinyModels.batch(CFG, 4, 8, 3);
        PerExampleGradients g = new PerExampleGradients(4, 8);
        model.forwardBackwardPerExample(batch, ForwardContext.inference(), g);
        double[] w = {1.0 / 8, 1.0 / 8, 1.0 / 8, 1.0 / 8};
        double[] norms = PerExampleClipping.clipAndSum(g, w, Double.POSITIVE_INFINITY);
        double c = 0.5 * java.util.Arrays.stream(norms).min().orElseThrow();     // every example is clipped
        for (int i = 0; i < 4; i++) {
            // example i alone: its clipped contribution has norm exactly min(‖g_i‖, C) ≤ C
            double[] only = new double[4];
            only[i] = w[i];
            PerExampleClipping.clipAndSum(g, only, c);
            double sq = 0;
            for (Parameter p : a.trainableParameters()) sq += p.grad().mul(p.grad()).sumNumber().doubleValue();
            assertEquals(c, Math.sqrt(sq), 1e-9 * c, "example " + i + " clipped to C");
            assertTrue(norms[i] > c);
        }
        PerExampleClipping.clipAndSum(g, w, c);
        double sq = 0;
        for (Parameter p : a.trainableParameters()) sq += p.grad().mul(p.grad()).sumNumber().doubleValue();
        assertTrue(Math.sqrt(sq) <= 4 * c + 1e-9, "the sum of four clipped examples is at most 4C");
    }

    @Test
    void theDriversNoiseHasStandardDeviationSigmaTimesCAndIsReproducible() {
        float[] v = new float[400_000];
        DpNoise.addGaussian(Map.of("t", v), 0.7 * 2.0, 11, 3);
        double mean = 0, sq = 0;
        for (float x : v) mean += x;
        mean /= v.length;
        for (float x : v) sq += (x - mean) * (x - mean);
        double std = Math.sqrt(sq / (v.length - 1));
        assertEquals(1.4, std, 1.4 * 0.005, "σ·C = 1.4");
        assertEquals(0.0, mean, 0.01);
        float[] again = new float[400_000], other = new float[400_000];
        DpNoise.addGaussian(Map.of("t", again), 1.4, 11, 3);
        DpNoise.addGaussian(Map.of("t", other), 1.4, 11, 4);
        assertArrayEquals(v, again, "same seed and round: the same noise");
        assertFalse(java.util.Arrays.equals(v, other), "another round: other noise");
        boolean[] clients = DpNoise.sampleClients(5, 0, 10_000, 0.3);
        int n = 0;
        for (boolean b : clients) if (b) n++;
        assertEquals(3000, n, 150);
    }

    @Test
    void executorsAddNoNoise() {
        // a task's contribution depends on C and q, never on σ: the noise is the driver's
        TransformerLM model = TransformerLM.randomInit(CFG, 7);
        AdapterConfig ac = AdapterConfig.lora(4, 8, List.of("c_attn"));
        TrainingOptions o = new TrainingOptions(1, 4, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 3);
        List<AdapterTensors> payloads = new ArrayList<>();
        for (double sigma : new double[]{0, 3}) {
            AttachedAdapter a = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, ac, 3);
            TrainSpec spec = new TrainSpec(base, ac, Map.of(), 1, 1, "gradients", false, o, 1.0, 0, null)
                    .withDp(new DpSpec("example", 0.1, sigma, 0.5, 1e-5, 0, 9));
            RoundState st = new RoundState(0, AdapterTensors.ofValues(a.trainableParameters()), new AdapterTensors(), null, 0);
            RoundResult r = RoundWork.run(a, shard(8, 1), st, spec, 0);
            assertTrue(r.sampled > 0 && r.maxClippedNorm <= 0.1 + 1e-7, "sampled " + r.sampled + ", max norm " + r.maxClippedNorm);
            payloads.add(r.payload);
        }
        assertEquals(payloads.get(0).data().keySet(), payloads.get(1).data().keySet());
        payloads.get(0).data().forEach((k, v) -> assertArrayEquals(v, payloads.get(1).data().get(k), k));
        assertNotNull(model);
    }

    // ---- on Spark ------------------------------------------------------------------------------------------

    static TrainSpec spec(String sync, int k, int rounds, int batch, DpSpec dp, int checkpointEvery, String out) {
        TrainingOptions o = new TrainingOptions(rounds * k, batch, 1, 1e-2, 0.0, 0, "constant", 0.0, 0.0, 13);
        return new TrainSpec(base, AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), rounds, k, sync, false, o, 1.0, checkpointEvery, out)
                .withDp(dp);
    }

    @Test
    void atSigmaZeroAndNoClippingDpTrainingIsPlainTraining() throws Exception {
        List<TokenBlocks> shards = List.of(shard(6, 1), shard(6, 2));
        // DP-SGD with q = 1 is a full batch of each shard: plain gradient sync with the shard as the batch
        MetricsLog mp = MetricsLog.inMemory(), md = MetricsLog.inMemory();
        DistributedTrainer.Result plain = TrainStage.run(sc, spec("gradients", 1, 3, 6, DpSpec.OFF, 0, null), new InMemoryShards(shards),
                mp, "train", QUIET, null);
        DpSpec sgd = new DpSpec("example", Double.POSITIVE_INFINITY, 0, 1.0, 1e-5, 0, 1);
        DistributedTrainer.Result dp = TrainStage.run(sc, spec("gradients", 1, 3, 6, sgd, 0, null), new InMemoryShards(shards),
                md, "train", QUIET, null);
        assertEquals(mp.lines().get(2).get("loss").asDouble(), md.lines().get(2).get("loss").asDouble(), 1e-5, "the same losses");
        double dSgd = maxDiff(plain.adapter().trainableParameters(), dp.adapter().trainableParameters());
        assertTrue(dSgd < 1e-6, "DP-SGD vs plain: " + dSgd);
        assertEquals(Double.POSITIVE_INFINITY, dp.privacy().epsilon(), "σ = 0 gives no privacy, and says so");
        // DP-FedAvg with q = 1: the unweighted mean of the clients' models, which equal shards make plain averaging
        DistributedTrainer.Result plainAvg = TrainStage.run(sc, spec("parameters", 2, 3, 2, DpSpec.OFF, 0, null), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        DpSpec fed = new DpSpec("client", Double.POSITIVE_INFINITY, 0, 1.0, 1e-5, 0, 1);
        DistributedTrainer.Result dpAvg = TrainStage.run(sc, spec("parameters", 2, 3, 2, fed, 0, null), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        double dAvg = maxDiff(plainAvg.adapter().trainableParameters(), dpAvg.adapter().trainableParameters());
        assertTrue(dAvg < 1e-6, "DP-FedAvg vs plain: " + dAvg);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"example", "client"})
    void aRerunIsReproducibleAResumeContinuesTheAccountantAndTheBudgetStopsWithACheckpoint(String mode) throws Exception {
        List<TokenBlocks> shards = List.of(shard(8, 3), shard(8, 4));
        boolean ex = mode.equals("example");
        String sync = ex ? "gradients" : "parameters";
        int k = ex ? 1 : 2;
        DpSpec dp = new DpSpec(mode, 0.5, 1.1, ex ? 0.25 : 0.5, 1e-5, 0, 21);
        MetricsLog m1 = MetricsLog.inMemory();
        DistributedTrainer.Result r1 = TrainStage.run(sc, spec(sync, k, 4, 2, dp, 0, null), new InMemoryShards(shards), m1, "train", QUIET, null);
        DistributedTrainer.Result r2 = TrainStage.run(sc, spec(sync, k, 4, 2, dp, 0, null), new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(0.0, maxDiff(r1.adapter().trainableParameters(), r2.adapter().trainableParameters()), "a rerun draws the same noise");
        RdpAccountant.Spent expected = RdpAccountant.epsilon(dp.sampleRate(), 1.1, 4, 1e-5);
        assertEquals(expected.epsilon(), r1.privacy().epsilon(), 1e-12);
        double prev = 0;
        for (var l : m1.lines()) {
            assertTrue(l.get("epsilon").asDouble() > prev, "epsilon grows every round");
            prev = l.get("epsilon").asDouble();
            assertTrue(l.get("max_clipped_norm").asDouble() <= 0.5 + 1e-6);
        }
        assertEquals(expected.epsilon(), prev, 1e-12);

        // crash after round 3; resume from the round-2 checkpoint: the same adapter and the same epsilon
        String out = tmp.resolve("dp-" + mode).toString();
        assertThrows(RuntimeException.class, () -> TrainStage.run(sc, spec(sync, k, 4, 2, dp, 2, out), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, (done, res) -> { if (done == 3) throw new RuntimeException("simulated crash"); }));
        DistributedTrainer.Result resumed = TrainStage.run(sc, spec(sync, k, 4, 2, dp, 2, out), new InMemoryShards(shards),
                MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(2, resumed.resumedFrom());
        assertEquals(4, resumed.privacy().noisySteps(), "the accountant came back with two steps and added two");
        assertEquals(r1.privacy().epsilon(), resumed.privacy().epsilon(), 1e-12);
        assertTrue(maxDiff(r1.adapter().trainableParameters(), resumed.adapter().trainableParameters()) < 1e-6);

        // a budget between the epsilon of 2 and of 3 rounds: stops after round 2, with a checkpoint there
        double budget = (RdpAccountant.epsilon(dp.sampleRate(), 1.1, 2, 1e-5).epsilon() + RdpAccountant.epsilon(dp.sampleRate(), 1.1, 3, 1e-5).epsilon()) / 2;
        String outB = tmp.resolve("budget-" + mode).toString();
        DpSpec capped = new DpSpec(mode, 0.5, 1.1, dp.sampleRate(), 1e-5, budget, 21);
        DistributedTrainer.Result b = TrainStage.run(sc, spec(sync, k, 4, 2, capped, 0, outB), new InMemoryShards(shards), MetricsLog.inMemory(),
                "train", QUIET, null);
        assertTrue(b.privacy().stoppedAtBudget());
        assertEquals(2, b.roundsRun());
        assertTrue(b.privacy().epsilon() <= budget);
        assertEquals(2, io.sparklora.train.TrainCheckpoint.latest(sc.hadoopConfiguration(), outB).orElseThrow().roundsDone());
    }
}
