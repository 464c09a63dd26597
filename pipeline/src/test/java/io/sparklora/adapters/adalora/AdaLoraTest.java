package io.sparklora.adapters.adalora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.gradcheck.GradientChecker;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.spark.train.TrainStageTest;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * AdaLoRA's own rules: the orthogonality penalty's gradient, the importance formula, the budget schedule never exceeded
 * at a reallocation, pruned triplets that come back, the final allocation, PEFT's sliced layout with its rank pattern,
 * and on Spark: the driver's masks applied by every task, K = 1 equal to one process, resume equal to an uninterrupted run.
 */
class AdaLoraTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final List<String> TARGETS = List.of("c_attn", "mlp.c_fc", "mlp.c_proj");

    static AdapterConfig config(String... kv) {
        AdapterConfig c = AdapterConfig.of("adalora", 4, 8, TARGETS).withOption("target_r", "2");
        for (int i = 0; i + 1 < kv.length; i += 2) c = c.withOption(kv[i], kv[i + 1]);
        return c;
    }

    static List<AdaLoraAdapter> layers(AttachedAdapter a) { return a.layers().values().stream().map(l -> (AdaLoraAdapter) l).toList(); }

    static int ranksInUse(AttachedAdapter a) { return layers(a).stream().mapToInt(AdaLoraAdapter::rank).sum(); }

    @Test
    void theOrthogonalityPenaltyHasTheGradientOfItsValue() {
        TransformerLM model = TinyModels.model(TinyModels.llama(), 3);      // float64
        AttachedAdapter a = AttachedAdapter.attach(model, "default", AdapterConfig.of("adalora", 3, 8, TinyModels.allLinearTargets(TinyModels.llama()))
                .withOption("target_r", "1").withOption("orth_reg_weight", "0.7"), 5);
        AdaLoraHooks h = (AdaLoraHooks) a.hooks();
        for (Parameter p : a.trainableParameters()) p.zeroGrad();
        double value = h.regularize(1.0);
        assertTrue(value > 0, "random P and Q are not orthogonal");
        for (AdaLoraAdapter l : layers(a)) {
            for (Parameter p : List.of(l.loraA(), l.loraB())) {
                INDArray analytic = p.grad().dup();
                GradientChecker.Result r = GradientChecker.check(p.name(), p.value(), analytic, () -> {
                    double v = h.regularize(0.0);       // the value only: a zero scale adds no gradient
                    return v;
                }, 20, 1e-6, 7);
                assertTrue(r.maxRelativeError() < 1e-6, r.toString());
            }
            assertEquals(0.0, l.loraE().grad().amaxNumber().doubleValue(), 0.0, "the penalty does not involve E");
        }
        // PEFT's value: w × the mean over the 2L matrices of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F
        double sum = 0;
        for (AdaLoraAdapter l : layers(a)) {
            INDArray A = l.loraA().value(), B = l.loraB().value();
            sum += A.mmul(A.transpose()).subi(Nd4j.eye(3).castTo(A.dataType())).norm2Number().doubleValue();
            sum += B.transpose().mmul(B).subi(Nd4j.eye(3).castTo(B.dataType())).norm2Number().doubleValue();
        }
        assertEquals(0.7 * sum / (2 * layers(a).size()), value, 1e-12);
    }

    @Test
    void importanceIsTheSmoothedSensitivityTimesTheUncertainty() {
        TransformerLM model = TinyModels.model(CFG, 1);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", config("beta1", "0.7", "beta2", "0.6"), 2);
        AdaLoraHooks h = (AdaLoraHooks) a.hooks();
        h.plan(100);
        Parameter e = layers(a).get(0).loraE();
        double[] avg = new double[4], unc = new double[4];
        java.util.Random r = new java.util.Random(3);
        for (int step = 0; step < 3; step++) {
            INDArray v = Nd4j.rand(DataType.DOUBLE, 4, 1), g = Nd4j.rand(DataType.DOUBLE, 4, 1).subi(0.5);
            e.value().assign(v);
            for (Parameter p : a.trainableParameters()) p.zeroGrad();
            e.accumulate(g);
            h.allocator.updateImportance();
            for (int i = 0; i < 4; i++) {
                double ipt = Math.abs(v.getDouble(i, 0) * g.getDouble(i, 0));
                avg[i] = 0.7 * avg[i] + 0.3 * ipt;
                unc[i] = 0.6 * unc[i] + 0.4 * Math.abs(ipt - avg[i]);
            }
        }
        INDArray gotAvg = h.allocator.expIpt.get(e.name()), gotUnc = h.allocator.expUnc.get(e.name());
        for (int i = 0; i < 4; i++) {
            assertEquals(avg[i], gotAvg.getDouble(i, 0), 1e-12);
            assertEquals(unc[i], gotUnc.getDouble(i, 0), 1e-12);
        }
    }

    @Test
    void theBudgetFollowsTheCubicScheduleAndIsNeverExceededAtAReallocation() {
        TransformerLM model = TransformerLM.randomInit(CFG, 1);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", config("tinit", "3", "tfinal", "4", "deltaT", "2"), 2);
        AdaLoraHooks h = (AdaLoraHooks) a.hooks();
        TokenBlocks data = TrainStageTest.randomShard(12, 16, 4);
        TrainingOptions o = new TrainingOptions(20, 2, 1, 2e-2, 0.0, 0, "constant", 0.0, 1.0, 3);
        Trainer t = Trainer.forAdapter(a, o);
        RankAllocator al = h.allocator;
        assertEquals(24, al.initialBudget());
        assertEquals(12, al.targetBudget());
        io.sparklora.train.BatchOrder order = new io.sparklora.train.BatchOrder(data.size(), 3);
        List<Integer> budgets = new ArrayList<>();
        boolean cameBack = false;
        boolean[][] before = null;
        for (int step = 0; step < 20; step++) {
            t.step(data, order);
            RankAllocator.Budget b = al.budget(step);
            budgets.add(b.budget());
            // the paper's schedule: b0 through tinit, then cubic down to the target, fixed over the last tfinal steps
            int expected = step <= 3 ? 24 : step > 16 ? 12 : (int) (12 * Math.pow(1 - (step - 3) / 13.0, 3) + 12);
            assertEquals(expected, b.budget(), "budget at step " + step);
            if (b.allocate() || step == 16) assertTrue(ranksInUse(a) <= b.budget(), "step " + step + ": " + ranksInUse(a) + " ranks > " + b.budget());
            // a pruned triplet's E regrows until the next allocation (the vectors are kept)
            if (before != null && !b.allocate() && step < 16) {
                for (int li = 0; li < before.length; li++) {
                    for (int i = 0; i < before[li].length; i++) {
                        if (!before[li][i] && layers(a).get(li).loraE().value().getDouble(i, 0) != 0) cameBack = true;
                    }
                }
            }
            before = layers(a).stream().map(AdaLoraAdapter::mask).toArray(boolean[][]::new);
        }
        assertTrue(cameBack, "a pruned singular value trains again between allocations");
        assertEquals(12, ranksInUse(a), "the final allocation spends exactly the target budget: " + budgets);
        for (AdaLoraAdapter l : layers(a)) {
            boolean[] m = l.mask();
            for (int i = 0; i < m.length; i++) if (!m[i]) assertEquals(0.0, l.loraE().value().getDouble(i, 0), 0.0, "pruned after the final allocation");
        }
        Map<String, Double> metrics = h.metrics();
        assertEquals(12.0, metrics.get("adalora_budget"));
        assertEquals(12.0, metrics.get("adalora_ranks_in_use"));
        assertTrue(layers(a).stream().mapToInt(AdaLoraAdapter::rank).distinct().count() > 1,
                "ranks differ between matrices: " + h.ranks());
    }

    @Test
    void savedInPeftsAdaloraLayoutSlicedToTheRankPatternAndReadBack(@TempDir Path tmp) throws Exception {
        TransformerLM model = TransformerLM.randomInit(CFG, 1);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", config("tinit", "1", "tfinal", "2"), 2);
        TokenBlocks data = TrainStageTest.randomShard(12, 16, 4);
        Trainer.forAdapter(a, new TrainingOptions(8, 2, 1, 2e-2, 0.0, 0, "constant", 0.0, 1.0, 3)).train(data, s -> {});
        TokenBatch batch = TokenBatch.shifted(new int[][]{data.block(0)}, new boolean[][]{data.mask(0)});
        INDArray adapted = model.logits(batch).dup();
        Path dir = tmp.resolve("adapter");
        PeftAdapterFormat.save(a, dir, "tiny");
        JsonNode cfg = new ObjectMapper().readTree(Files.readString(dir.resolve(PeftAdapterFormat.CONFIG_FILE)));
        assertEquals("ADALORA", cfg.get("peft_type").asText());
        assertEquals(4, cfg.get("init_r").asInt());
        assertEquals(2, cfg.get("target_r").asInt());
        assertEquals(8, cfg.get("total_step").asInt(), "the run's total steps");
        JsonNode pattern = cfg.get("rank_pattern");
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve(PeftAdapterFormat.WEIGHTS_FILE))) {
            for (AdaLoraAdapter l : layers(a)) {
                JsonNode m = pattern.get(l.module() + ".lora_E");
                assertNotNull(m, l.module());
                int kept = 0;
                for (int i = 0; i < 4; i++) {
                    assertEquals(l.mask()[i], m.get(i).asBoolean());
                    if (m.get(i).asBoolean()) kept++;
                }
                String p = "base_model.model." + l.module() + ".";
                assertArrayEquals(new long[]{kept, l.loraA().value().size(1)}, r.shape(p + "lora_A"));
                assertArrayEquals(new long[]{kept, 1}, r.shape(p + "lora_E"));
                assertArrayEquals(new long[]{l.loraB().value().size(0), kept}, r.shape(p + "lora_B"));
                assertFalse(r.contains(p + "ranknum"), "no ranknum: PEFT rebuilds it");
            }
        }
        TransformerLM fresh = TransformerLM.randomInit(CFG, 1);
        AttachedAdapter back = PeftAdapterFormat.load(fresh, dir, "default");
        assertEquals(0.0, fresh.logits(batch).sub(adapted).amaxNumber().doubleValue(), 0.0, "the sliced file gives the same function");
        for (int li = 0; li < layers(a).size(); li++) assertArrayEquals(layers(a).get(li).mask(), layers(back).get(li).mask());
        back.merge();
        assertEquals(0.0, fresh.logits(batch).sub(adapted).amaxNumber().doubleValue(), 1e-5, "merged equals unmerged");
    }

    /** sync: gradients (K = 1) on 2 partitions, every round: the tasks apply the driver's masks; the run equals one process. */
    @Test
    void onSparkTheTasksApplyTheDriversMasksAndKEqualsOneEqualsOneProcess(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 7), dir, DataType.FLOAT, null);
        List<TokenBlocks> shards = List.of(TrainStageTest.randomShard(6, 16, 1), TrainStageTest.randomShard(5, 16, 2));
        AdapterConfig ac = config("tinit", "1", "tfinal", "2", "deltaT", "1");
        TrainingOptions o = new TrainingOptions(8, 2, 1, 2e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
            TrainSpec spec = new TrainSpec(base, ac, Map.of(), 8, 1, "gradients", false, o, 1.0, 0, null);
            MetricsLog log = MetricsLog.inMemory();
            List<java.util.Set<String>> digests = new ArrayList<>();
            DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), log, "train", QUIET,
                    (done, res) -> digests.add(res.methodStateDigests));
            assertEquals(8, digests.size());
            for (java.util.Set<String> d : digests) assertEquals(1, d.size(), "both tasks applied the same masks (the driver checks they are its own)");
            // one process on the union of the two tasks' batches, the same schedule
            AttachedAdapter ref = io.sparklora.spark.train.AdapterMethodsSparkTest.oneProcess(spec, shards, TransformerLM.randomInit(CFG, 7));
            for (int li = 0; li < layers(ref).size(); li++) {
                assertArrayEquals(layers(ref).get(li).mask(), layers(r.adapter()).get(li).mask(), "masks of " + layers(ref).get(li).module());
            }
            List<Parameter> p1 = ref.trainableParameters(), p2 = r.adapter().trainableParameters();
            for (int i = 0; i < p1.size(); i++) {
                double scale = Math.max(0.1, p1.get(i).value().amaxNumber().doubleValue());
                assertEquals(0.0, p1.get(i).value().sub(p2.get(i).value()).amaxNumber().doubleValue() / scale, 1e-4, p1.get(i).name());
            }
            assertEquals(12, ranksInUse(r.adapter()));
            // the budget curve is in metrics.jsonl, one value per round
            assertEquals(8, log.lines().stream().filter(l -> l.has("adalora_budget")).count());
            assertEquals(12.0, log.lines().get(7).path("adalora_ranks_in_use").asDouble());

            // resume: crash after round 5 of a run checkpointing every 2 rounds; the resumed run ends where the whole one did
            String out = tmp.resolve("run").toString();
            TrainSpec ck = new TrainSpec(base, ac, Map.of(), 8, 1, "gradients", false, o, 1.0, 2, out);
            assertThrows(RuntimeException.class, () -> TrainStage.run(sc, ck, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET,
                    (done, res) -> { if (done == 5) throw new RuntimeException("simulated crash"); }));
            DistributedTrainer.Result resumed = TrainStage.run(sc, ck, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
            assertEquals(4, resumed.resumedFrom());
            List<Parameter> q1 = r.adapter().trainableParameters(), q2 = resumed.adapter().trainableParameters();
            for (int i = 0; i < q1.size(); i++) {
                assertEquals(0.0, q1.get(i).value().sub(q2.get(i).value()).amaxNumber().doubleValue(), 1e-6, q1.get(i).name());
            }
            for (int li = 0; li < layers(r.adapter()).size(); li++) assertArrayEquals(layers(r.adapter()).get(li).mask(), layers(resumed.adapter()).get(li).mask());

            // parameter sync, K = 2: the driver averages the tasks' importance and allocates at round boundaries
            TrainSpec ps = new TrainSpec(base, ac, Map.of(), 4, 2, "parameters", false, o, 1.0, 0, null);
            List<java.util.Set<String>> psDigests = new ArrayList<>();
            DistributedTrainer.Result pr = TrainStage.run(sc, ps, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET,
                    (done, res) -> { psDigests.add(res.methodStateDigests); assertNotNull(res.methodStats, "the tasks sent their importance"); });
            for (java.util.Set<String> d : psDigests) assertEquals(1, d.size());
            assertEquals(12, ranksInUse(pr.adapter()), "the final allocation on the driver");
        }
    }
}
