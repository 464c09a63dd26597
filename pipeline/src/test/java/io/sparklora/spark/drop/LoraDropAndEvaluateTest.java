package io.sparklora.spark.drop;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.evaluate.EvalTarget;
import io.sparklora.spark.evaluate.EvalTask;
import io.sparklora.spark.evaluate.EvaluateStage;
import io.sparklora.spark.evaluate.ExampleSource;
import io.sparklora.spark.evaluate.LabelledExample;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.spark.train.TrainStageTest;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.Evaluator;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.conf.Configuration;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** LoRA-drop's selection and sharing, and the distributed evaluation, on Spark local[2]. */
class LoraDropAndEvaluateTest {
    static JavaSparkContext sc;
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    @TempDir static Path tmp;
    static BaseModelRef base;
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 3, 2, 16);

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 3), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    static TrainSpec spec(int rounds) {
        TrainingOptions o = new TrainingOptions(rounds, 2, 1, 2e-2, 0.0, 0, "constant", 0.0, 1.0, 5);
        return new TrainSpec(base, AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), rounds, 1, "gradients", false, o, 1.0, 0, null);
    }

    /** Examples split 2 + 1 over two partitions; a named class so that Spark can serialize it. */
    record TwoPartitionExamples(List<LabelledExample> ex) implements ExampleSource {
        @Override public int partitions() { return 2; }
        @Override public List<LabelledExample> load(int p, Configuration c) { return p == 0 ? ex.subList(0, 2) : ex.subList(2, 3); }
        @Override public List<int[]> labelTokens() { return List.of(new int[]{10}, new int[]{11, 12}); }
        @Override public List<String> labelNames() { return List.of("a", "bcdef"); }
    }

    @Test
    void selectionKeepsTheMostImportantUntilTheThreshold() {
        Map<String, Double> raw = new LinkedHashMap<>();
        raw.put("h.0.attn.c_attn", 1.0);
        raw.put("h.1.attn.c_attn", 6.0);
        raw.put("h.2.attn.c_attn", 3.0);
        Map<String, Double> n = LoraDropStage.normalise(raw);
        assertEquals(List.of("h.1.attn.c_attn", "h.2.attn.c_attn", "h.0.attn.c_attn"), new ArrayList<>(n.keySet()));
        assertEquals(0.6, n.get("h.1.attn.c_attn"), 1e-12);
        assertEquals(List.of("h.1.attn.c_attn"), LoraDropStage.select(n, 0.6));
        assertEquals(List.of("h.1.attn.c_attn", "h.2.attn.c_attn"), LoraDropStage.select(n, 0.9));
        assertEquals(3, LoraDropStage.select(n, 1.0).size());
        assertEquals(Map.of("h.0.attn.c_attn", "shared:h.*.attn.c_attn", "h.2.attn.c_attn", "shared:h.*.attn.c_attn"),
                LoraDropStage.shareGroups(n.keySet(), List.of("h.1.attn.c_attn")));
    }

    @Test
    void sharedLayersTrainOneSetOfTensorsAndExportAsPlainPeftLora() throws Exception {
        TransformerLM m = TransformerLM.randomInit(CFG, 3);
        Map<String, String> share = Map.of("transformer.h.0.attn.c_attn", "g", "transformer.h.2.attn.c_attn", "g");
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(4, 8, List.of("c_attn")), 1, share);
        long perLayer = 4 * (32 + 96);
        assertEquals(2 * perLayer, a.trainableParameterCount(), "two adapters: layer 1's own and the shared one");
        Map<String, INDArray> peft = PeftAdapterFormat.tensors(a);
        assertEquals(6, peft.size(), "PEFT sees an ordinary LoRA on all three layers");
        assertEquals(peft.get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"),
                peft.get("base_model.model.transformer.h.2.attn.c_attn.lora_A.weight"));
    }

    @Test
    void loraDropRunsDistributedAndReportsTheReduction() throws Exception {
        List<TokenBlocks> shards = List.of(TrainStageTest.randomShard(6, 16, 21), TrainStageTest.randomShard(6, 16, 22));
        LoraDropStage.Result r = LoraDropStage.run(sc, spec(4), new LoraDropStage.Spec(0.5, 3, 0.5, 3), new InMemoryShards(shards),
                MetricsLog.inMemory(), QUIET, tmp.resolve("drop").toString());
        // importance: one positive share per adapted layer, summing to 1
        assertEquals(java.util.Set.of("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn", "transformer.h.2.attn.c_attn"),
                r.importance().keySet());
        for (double v : r.importance().values()) assertTrue(v > 0 && v < 1, r.importance().toString());
        assertEquals(1.0, r.importance().values().stream().mapToDouble(Double::doubleValue).sum(), 1e-9);
        // kept: the most important layers, in order, until their shares reach the threshold 0.5 (recomputed here)
        List<String> byImportance = new ArrayList<>(r.importance().keySet());
        byImportance.sort((x, y) -> Double.compare(r.importance().get(y), r.importance().get(x)));
        List<String> expectKept = new ArrayList<>();
        double cum = 0;
        for (String m : byImportance) {
            if (cum >= 0.5) break;
            expectKept.add(m);
            cum += r.importance().get(m);
        }
        assertEquals(expectKept, r.kept());
        // every dropped layer shares the one c_attn adapter
        for (String m : byImportance) assertEquals(!expectKept.contains(m), r.shareGroups().containsKey(m), m + " in " + r.shareGroups());
        // the written adapter, read back: PEFT sees a plain LoRA on all three layers; shared layers hold equal tensors,
        // kept layers their own, and the distinct tensors add up to the reported trainable count
        java.util.Map<String, INDArray> saved = new LinkedHashMap<>();
        try (var reader = io.sparklora.checkpoint.SafetensorsReader.open(tmp.resolve("drop/adapter/adapter_model.safetensors"))) {
            for (String n : reader.names()) saved.put(n, reader.read(n));
        }
        assertEquals(6, saved.size(), saved.keySet().toString());
        java.util.Set<INDArray> distinct = new java.util.HashSet<>();
        for (String m : byImportance) {
            INDArray a = saved.get("base_model.model." + m + ".lora_A.weight"), b = saved.get("base_model.model." + m + ".lora_B.weight");
            assertNotNull(a, m);
            assertNotNull(b, m);
            distinct.add(a);
            distinct.add(b);
        }
        List<String> dropped = byImportance.stream().filter(m -> !expectKept.contains(m)).toList();
        for (String m : dropped) {
            assertEquals(saved.get("base_model.model." + dropped.get(0) + ".lora_A.weight"), saved.get("base_model.model." + m + ".lora_A.weight"));
            assertEquals(saved.get("base_model.model." + dropped.get(0) + ".lora_B.weight"), saved.get("base_model.model." + m + ".lora_B.weight"));
        }
        long counted = distinct.stream().mapToLong(INDArray::length).sum();
        long perLayer = 4 * (32 + 96);
        assertEquals(perLayer * (expectKept.size() + (dropped.isEmpty() ? 0 : 1)), counted);
        assertEquals(counted, r.trainableReduced());
        assertEquals(3 * perLayer, r.trainableFull());
        assertEquals(1.0 - (double) counted / (3 * perLayer), r.paramReduction(), 1e-12);
        // the reduced set was trained, not just saved at its initial value: B starts at zero
        for (String m : expectKept) assertTrue(saved.get("base_model.model." + m + ".lora_B.weight").amaxNumber().doubleValue() > 0, m);
    }

    @Test
    void aDyLoraAdapterIsEvaluatedAtEachRankOnTheExecutorsAsInOneProcess() throws Exception {
        List<TokenBlocks> val = List.of(TrainStageTest.randomShard(5, 16, 33), TrainStageTest.randomShard(4, 16, 34));
        AdapterConfig dy = AdapterConfig.of("dylora", 4, 8, List.of("c_attn"));
        TrainSpec s = new TrainSpec(base, dy, Map.of(), 4, 1, "gradients", false, spec(4).options(), 1.0, 0, null);
        AdapterTensors adapter = AdapterTensors.ofValues(TrainStage.run(sc, s, new InMemoryShards(val), MetricsLog.inMemory(), "train", QUIET, null)
                .adapter().stateTensors());
        List<EvalTarget> targets = new ArrayList<>();
        for (int b : dy.adapterMethod().ranks(dy)) targets.add(new EvalTarget("rank" + b, base, EvalTarget.Mode.ADAPTED, b));
        assertEquals(4, targets.size(), "every rank from r_min = 1 to r = 4");
        EvaluateStage.Result f = EvaluateStage.run(sc, targets, dy, Map.of(), adapter, new InMemoryShards(val), null, 4);
        TokenBlocks all = new TokenBlocks(16);
        for (TokenBlocks v : val) for (int i = 0; i < v.size(); i++) all.add(v.block(i), v.mask(i));
        java.util.Set<Double> distinct = new java.util.HashSet<>();
        for (int b = 1; b <= 4; b++) {
            TransformerLM local = TransformerLM.randomInit(CFG, 3);
            AttachedAdapter a = AttachedAdapter.attach(local, "default", dy, 0);
            adapter.copyInto(a.stateTensors());
            assertTrue(a.method().useRank(a, b));
            assertEquals(Evaluator.evaluate(local, all, 4).loss(), f.get("rank" + b).loss(), 1e-6, "rank " + b);
            distinct.add(Math.rint(f.get("rank" + b).loss() * 1e6));
        }
        assertEquals(4, distinct.size(), "each rank is a different model");
    }

    @Test
    void distributedEvaluationMatchesOneProcessAndMergedEqualsAdapted() throws Exception {
        List<TokenBlocks> val = List.of(TrainStageTest.randomShard(5, 16, 31), TrainStageTest.randomShard(4, 16, 32));
        DistributedTrainer.Result trained = TrainStage.run(sc, spec(3), new InMemoryShards(val), MetricsLog.inMemory(), "train", QUIET, null);
        AdapterTensors adapter = AdapterTensors.ofValues(trained.adapter().stateTensors());
        List<LabelledExample> ex = new ArrayList<>(List.of(new LabelledExample(new int[]{1, 2, 3, 4}, 0), new LabelledExample(new int[]{5, 6, 7}, 1),
                new LabelledExample(new int[]{8, 9}, 1)));
        ExampleSource examples = new TwoPartitionExamples(ex);
        List<EvalTarget> targets = List.of(new EvalTarget("base", base, EvalTarget.Mode.BASE),
                new EvalTarget("adapted", base, EvalTarget.Mode.ADAPTED), new EvalTarget("merged", base, EvalTarget.Mode.MERGED));
        EvaluateStage.Result f = EvaluateStage.run(sc, targets, spec(3).adapter(), Map.of(), adapter,
                new InMemoryShards(val), examples, 4);

        TokenBlocks all = new TokenBlocks(16);
        for (TokenBlocks v : val) for (int i = 0; i < v.size(); i++) all.add(v.block(i), v.mask(i));
        TransformerLM local = TransformerLM.randomInit(CFG, 3);
        assertEquals(Evaluator.evaluate(local, all, 4).loss(), f.get("base").loss(), 1e-6);
        AttachedAdapter a = AttachedAdapter.attach(local, "default", spec(3).adapter(), 0);
        adapter.copyInto(a.stateTensors());
        assertEquals(Evaluator.evaluate(local, all, 4).loss(), f.get("adapted").loss(), 1e-6);
        assertEquals(f.get("adapted").loss(), f.get("merged").loss(), 1e-5, "merging changes nothing but speed");
        assertNotEquals(f.get("base").loss(), f.get("adapted").loss(), 1e-6);
        int correct = 0, correctNorm = 0;
        for (LabelledExample e : ex) {
            // reference: one forward per label, the label tokens' summed NLL after the prompt
            double[] nll = new double[2];
            for (int l = 0; l < 2; l++) {
                int[] lab = examples.labelTokens().get(l);
                int[] ids = java.util.Arrays.copyOf(e.prompt(), e.prompt().length + lab.length);
                System.arraycopy(lab, 0, ids, e.prompt().length, lab.length);
                int[] in = java.util.Arrays.copyOf(ids, ids.length - 1), tg = new int[in.length];
                java.util.Arrays.fill(tg, io.sparklora.model.TokenBatch.IGNORE);
                for (int i = e.prompt().length - 1; i < in.length; i++) tg[i] = ids[i + 1];
                nll[l] = local.loss(io.sparklora.model.TokenBatch.of(new int[][]{in}, new int[][]{tg})).sumLoss();
            }
            assertArrayEquals(nll, EvalTask.labelNll(local, e.prompt(), examples.labelTokens()), 1e-4, "one batched pass = one pass per label");
            if ((nll[0] < nll[1] ? 0 : 1) == e.label()) correct++;
            // acc_norm divides by the bytes of " a" (2) and " bcdef" (6)
            if ((nll[0] / 2 < nll[1] / 6 ? 0 : 1) == e.label()) correctNorm++;
        }
        assertEquals(correct / 3.0, f.get("adapted").accuracy(), 1e-12);
        assertEquals(correctNorm / 3.0, f.get("adapted").accuracyNorm(), 1e-12);
        assertEquals(3, f.get("base").examples());
        assertArrayEquals(new long[]{1, 2}, f.examplesPerLabel());
        assertEquals(2.0 / 3, f.majorityClassAccuracy(), 1e-12);
        // the executors' shared base weights were not touched by merging
        TransformerLM again = BaseModelCache.model(base, sc.hadoopConfiguration());
        assertEquals(TransformerLM.randomInit(CFG, 3).stateDict().get("transformer.h.0.attn.c_attn.weight"),
                again.stateDict().get("transformer.h.0.attn.c_attn.weight"), "base bit-for-bit unchanged");
    }
}
