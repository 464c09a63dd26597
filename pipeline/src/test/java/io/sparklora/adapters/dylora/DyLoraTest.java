package io.sparklora.adapters.dylora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethods;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.LoraExport;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DyLoRA: each rank's truncation is the LoRA of those slices at scale alpha/b; the frozen rule's gradients; the rank
 * sequence; on Spark, the driver's rank reaching every task of a round and a resume continuing the sequence.
 */
class DyLoraTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    private static void perturb(AttachedAdapter a, long seed) {
        for (Parameter p : a.trainableParameters()) {
            p.value().assign(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed++), p.value().shape()).castTo(p.value().dataType()).muli(0.3));
        }
    }

    @Test
    void everyRankIsTheLoraOfItsSlicesScaledByAlphaOverB() {
        for (ModelConfig cfg : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            List<String> targets = cfg.architecture() == io.sparklora.model.Architecture.GPT2 ? List.of("c_attn", "c_fc") : List.of("q_proj", "down_proj");
            TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
            AttachedAdapter dy = AttachedAdapter.attach(model, "default", AdapterConfig.of("dylora", 4, 8, targets), 1);
            perturb(dy, 3);
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
            for (int b = 1; b <= 4; b++) {
                DyLoraMethod.setEvalRank(dy, b);
                INDArray truncated = model.logits(batch).dup();
                // the same model with a plain LoRA of rank b over the first b slices: scale alpha/b
                TransformerLM ref = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
                AttachedAdapter lora = AttachedAdapter.attach(ref, "default", AdapterConfig.lora(b, 8, targets), 1);
                for (String m : dy.layers().keySet()) {
                    LoraAdapter src = (LoraAdapter) dy.layers().get(m);
                    lora.layers().get(m).loadStateDict(Map.of(
                            "lora_A.weight", src.loraA().value().get(NDArrayIndex.interval(0, b), NDArrayIndex.all()).dup(),
                            "lora_B.weight", src.loraB().value().get(NDArrayIndex.all(), NDArrayIndex.interval(0, b)).dup()), "test");
                    assertEquals(8.0 / b, ((DyLoraAdapter) src).scaleAt(b), 0.0);
                }
                assertEquals(0.0, ref.logits(batch).sub(truncated).amaxNumber().doubleValue(), 1e-12, cfg.architecture() + " rank " + b);
                // export --to lora --rank b is that LoRA, exactly
                TransformerLM ex = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
                AttachedAdapter copy = AttachedAdapter.attach(ex, "default", dy.config(), 1);
                for (int i = 0; i < copy.trainableParameters().size(); i++) {
                    copy.trainableParameters().get(i).value().assign(dy.trainableParameters().get(i).value());
                }
                LoraExport.Result r = LoraExport.toLora(copy, b);
                assertTrue(r.maxRelativeError() < 1e-9, "rank " + b + ": " + r.errors());
                assertEquals(0.0, ex.logits(batch).sub(truncated).amaxNumber().doubleValue(), 1e-9, "export at rank " + b);
            }
        }
    }

    @Test
    void theFrozenRuleTrainsOnlyTheBthSliceAndAllTrainsTheFirstB() {
        ModelConfig cfg = TinyModels.gpt2();
        Map<String, INDArray[]> grads = new java.util.HashMap<>();
        for (String rule : List.of("slice", "all")) {
            TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
            AttachedAdapter a = AttachedAdapter.attach(model, "default", AdapterConfig.of("dylora", 4, 8, List.of("c_attn")).withOption("dylora_update", rule), 1);
            perturb(a, 3);
            for (Adapter l : a.layers().values()) ((DyLoraAdapter) l).setTrainRank(3);
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
            model.forwardBackward(batch, ForwardContext.training(Nd4j.getRandomFactory().getNewRandomInstance(1)), 1.0);
            LoraAdapter l = (LoraAdapter) a.layers().values().iterator().next();
            INDArray gA = l.loraA().grad().dup(), gB = l.loraB().grad().dup();
            grads.put(rule, new INDArray[]{gA, gB});
            // rank 3: nothing reaches slice 4; the frozen rule leaves slices 1 and 2 at zero too
            assertEquals(0.0, gA.getRow(3).amaxNumber().doubleValue(), rule);
            assertEquals(0.0, gB.getColumn(3).amaxNumber().doubleValue(), rule);
            assertTrue(gA.getRow(2).amaxNumber().doubleValue() > 0, rule + ": slice 3 trains");
            for (int k = 0; k < 2; k++) {
                double ga = gA.getRow(k).amaxNumber().doubleValue(), gb = gB.getColumn(k).amaxNumber().doubleValue();
                if (rule.equals("slice")) assertEquals(0.0, ga + gb, "slice " + (k + 1) + " is frozen at rank 3");
                else assertTrue(ga > 0 && gb > 0, "slice " + (k + 1) + " trains under 'all'");
            }
        }
        // the b-th slice gets the same gradient either way
        assertEquals(0.0, grads.get("slice")[0].getRow(2).sub(grads.get("all")[0].getRow(2)).amaxNumber().doubleValue(), 1e-12);
        assertEquals(0.0, grads.get("slice")[1].getColumn(2).sub(grads.get("all")[1].getColumn(2)).amaxNumber().doubleValue(), 1e-12);
    }

    @Test
    void ranksFollowTheDistributionAndAreAFunctionOfSeedAndIndex() {
        DyLoraMethod.RankSampler u = DyLoraMethod.RankSampler.parse("uniform", 2, 8);
        int[] counts = new int[9];
        for (int i = 0; i < 14_000; i++) counts[u.draw(7, i)]++;
        assertEquals(0, counts[0] + counts[1]);
        for (int b = 2; b <= 8; b++) assertEquals(2000, counts[b], 200, "uniform count of rank " + b);
        assertEquals(u.draw(7, 123), u.draw(7, 123));
        DyLoraMethod.RankSampler g = DyLoraMethod.RankSampler.parse("geometric:0.5", 1, 4);
        int[] gc = new int[5];
        for (int i = 0; i < 15_000; i++) gc[g.draw(1, i)]++;
        // P(b) ∝ 0.5^(b−1) over 1..4: 8/15, 4/15, 2/15, 1/15
        assertEquals(8000, gc[1], 300);
        assertEquals(1000, gc[4], 150);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DyLoraMethod.RankSampler.parse("poisson", 1, 4));
        assertTrue(e.getMessage().contains("rank_distribution"), e.getMessage());
        AdapterConfig bad = AdapterConfig.of("dylora", 4, 8, List.of("c_attn")).withOption("r_min", "5");
        e = assertThrows(IllegalArgumentException.class, () -> bad.adapterMethod().validate(bad));
        assertTrue(e.getMessage().contains("r_min"), e.getMessage());
    }

    // ---- on Spark ---------------------------------------------------------------------------------

    /** Records the rank of every training forward, in the order they ran (tasks of local[2] share this JVM). */
    static final ConcurrentLinkedQueue<Integer> SEEN = new ConcurrentLinkedQueue<>();

    static final class RecordingMethod extends DyLoraMethod {
        @Override public String name() { return "test_recording_dylora"; }

        @Override
        protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
            return new DyLoraAdapter(adapterName, layer, config, rng, true, config.r()) {
                @Override
                public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
                    if (ctx.training()) SEEN.add(trainRank());
                    return super.forward(x, baseOut, ctx);
                }
            };
        }
    }

    private static TokenBlocks shard(int n, long seed) { return io.sparklora.spark.train.DpTrainingTest.shard(n, seed); }

    /** The recorded ranks as one rank per round, checking each round's forwards all used one rank. */
    private static List<Integer> perRound(List<Integer> seen, int rounds) {
        assertEquals(0, seen.size() % rounds, "the same number of forwards every round: " + seen.size());
        int per = seen.size() / rounds;
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < rounds; i++) {
            List<Integer> chunk = seen.subList(i * per, (i + 1) * per);
            assertEquals(1, chunk.stream().distinct().count(), "round " + i + ": every task and local step at one rank: " + chunk);
            out.add(chunk.get(0));
        }
        return out;
    }

    @Test
    void theDriversRankReachesEveryTaskOfTheRoundAndAResumeContinuesTheSequence(@TempDir Path tmp) throws Exception {
        if (!AdapterMethods.names().contains("test_recording_dylora")) AdapterMethods.register(new RecordingMethod());
        ModelConfig cfg = ModelConfig.gpt2(64, 32, 2, 2, 16);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 7), dir, DataType.FLOAT, null);
        AdapterConfig ac = AdapterConfig.of("test_recording_dylora", 6, 12, List.of("c_attn")).withOption("rank_seed", "3");
        DyLoraMethod.RankSampler sampler = DyLoraMethod.RankSampler.parse("uniform", 1, 6);
        List<TokenBlocks> shards = List.of(shard(6, 1), shard(6, 2));
        TrainingOptions o = new TrainingOptions(12, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
            // parameter sync, K = 2 local steps per round: each task's Trainer must not redraw within the round
            TrainSpec spec = new TrainSpec(base, ac, Map.of(), 6, 2, "parameters", false, o, 1.0, 0, null);
            SEEN.clear();
            DistributedTrainer.Result full = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
            List<Integer> ranks = perRound(new ArrayList<>(SEEN), 6);
            for (int round = 0; round < 6; round++) assertEquals(sampler.draw(3, round), ranks.get(round), "round " + round);
            assertTrue(ranks.stream().distinct().count() > 1, "the rank changes between rounds: " + ranks);

            // crash after round 3, resume from the round-2 checkpoint: rounds 3..6 at the ranks of the uninterrupted run
            String out = tmp.resolve("run").toString();
            TrainSpec ck = new TrainSpec(base, ac, Map.of(), 6, 2, "parameters", false, o, 1.0, 2, out);
            assertThrows(RuntimeException.class, () -> TrainStage.run(sc, ck, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET,
                    (done, res) -> { if (done == 3) throw new RuntimeException("simulated crash"); }));
            SEEN.clear();
            DistributedTrainer.Result resumed = TrainStage.run(sc, ck, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
            assertEquals(2, resumed.resumedFrom());
            assertEquals(ranks.subList(2, 6), perRound(new ArrayList<>(SEEN), 4), "the resumed rounds' ranks");
            List<Parameter> a = full.adapter().trainableParameters(), b = resumed.adapter().trainableParameters();
            for (int i = 0; i < a.size(); i++) {
                assertEquals(0.0, a.get(i).value().sub(b.get(i).value()).amaxNumber().doubleValue(), 1e-6, a.get(i).name());
            }
        }
    }
}
