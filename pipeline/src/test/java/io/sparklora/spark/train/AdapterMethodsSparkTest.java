package io.sparklora.spark.train;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethods;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.LrSchedule;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.BatchOrder;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.Optimizers;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.RoundWork;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import io.sparklora.train.TrainingStep;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Spark part of the methods' contract, on {@code local[2]}: for every method, {@code sync: gradients}
 * equals one-process training on the union of the batches and moves exactly 4 bytes per trainable scalar
 * each way; {@code bias: all} trains private copies and leaves the executor's cached base bit-for-bit as
 * loaded; LoRA-FA's parameter averaging is exact averaging of ΔW (plain LoRA's is not); a method's
 * per-round state travels with each round and is restored on resume.
 */
public class AdapterMethodsSparkTest {
    static JavaSparkContext sc;
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    @TempDir static Path tmp;
    static BaseModelRef base;
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final List<String> TARGETS = List.of("c_attn", "mlp.c_fc", "mlp.c_proj");

    @BeforeAll
    static void start() throws Exception {
        if (!AdapterMethods.names().contains(CountingLoraMethod.NAME)) AdapterMethods.register(new CountingLoraMethod());
        sc = SparkSetup.local(2);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 7), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
    }

    @AfterAll
    static void stop() { sc.stop(); }

    /** One configuration of every method (the Spark contract's, and QLoRA's over an NF4 base). */
    public static Stream<AdapterConfig> methods() {
        return Stream.of(AdapterConfig.lora(4, 8, TARGETS), AdapterConfig.of("loraplus", 4, 8, TARGETS),
                AdapterConfig.of("lora_fa", 4, 8, TARGETS), AdapterConfig.of("dora", 4, 8, TARGETS),
                AdapterConfig.of("vera", 8, 1, TARGETS).withOption("d_initial", "0.5"),
                AdapterConfig.of("loha", 2, 4, TARGETS), AdapterConfig.of("lokr", 2, 4, TARGETS),
                // the snapshot is taken on the driver after step 2 and travels as round state from then on
                AdapterConfig.of("delta_lora", 4, 8, TARGETS).withOption("delta_warmup", "2").withOption("delta_lambda", "0.5"),
                // E constant on mlp.c_proj would shift every channel of the residual, which the next LayerNorm removes: its
                // true gradient is 0 and Adam turns the rounding noise into steps, so that term is a vector there
                AdapterConfig.of("glora", 2, 1, TARGETS).withOption("layer_structures",
                        "h.0.attn.c_attn=vector,constant,vector,vector,constant; mlp.c_proj=lora,lora,lora,constant,vector"),
                // the driver draws the rank of each round (= the one-process rank of that step) and broadcasts it
                AdapterConfig.of("dylora", 4, 8, TARGETS).withOption("rank_seed", "5"),
                // the driver takes each step (gradient sync) and decides the masks; they travel down with every round
                AdapterConfig.of("adalora", 4, 8, TARGETS).withOption("target_r", "2").withOption("tinit", "0").withOption("tfinal", "1"));
    }

    static List<TokenBlocks> shards() {
        return List.of(TrainStageTest.randomShard(6, 16, 1), TrainStageTest.randomShard(5, 16, 2));
    }

    static TrainSpec spec(AdapterConfig a, String sync, int rounds, int k, int checkpointEvery, String out) {
        TrainingOptions o = new TrainingOptions(rounds * k, 2, 1, 1e-2, 0.01, 1, "cosine", 0.0, 1.0, 11);
        return new TrainSpec(base, a, Map.of(), rounds, k, sync, false, o, 1.0, checkpointEvery, out);
    }

    /** One process, the method's own optimizer groups and hooks, each step on both partitions' batches of that round stacked. */
    static AttachedAdapter oneProcess(TrainSpec spec, List<TokenBlocks> shards) throws Exception {
        return oneProcess(spec, shards, TransformerLM.randomInit(CFG, 7));      // the weights saved as the base, float32 both
    }

    /** As above over a given model (an NF4 one for QLoRA). */
    public static AttachedAdapter oneProcess(TrainSpec spec, List<TokenBlocks> shards, TransformerLM model) throws Exception {
        AttachedAdapter ad = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
        TrainingOptions o = spec.options();
        ad.hooks().plan(spec.totalSteps());
        TrainingStep step = new TrainingStep(model, Optimizers.forAdapter(ad, o), ad.hooks(),
                LrSchedule.parse(o.schedule(), o.warmupSteps(), spec.totalSteps(), o.minLrRatio()), o.maxGradNorm());
        for (int round = 0; round < spec.rounds(); round++) {
            List<int[]> rows = new ArrayList<>();
            List<boolean[]> masks = new ArrayList<>();
            for (int p = 0; p < shards.size(); p++) {
                BatchOrder order = BatchOrder.at(shards.get(p).size(), o.seed() * 1_000_003L + p, (long) round * o.batchSize());
                for (int i : order.next(o.batchSize())) {
                    rows.add(shards.get(p).block(i));
                    masks.add(shards.get(p).mask(i));
                }
            }
            step.begin(round);
            // a training forward (DyLoRA trains at the drawn rank; no method here has dropout on)
            step.microBatch(TokenBatch.shifted(rows.toArray(new int[0][]), masks.toArray(new boolean[0][])),
                    ForwardContext.training(io.sparklora.model.Seeds.rng(1)), 1.0);
            step.apply(round);
        }
        return ad;
    }

    /** The largest difference between same-named tensors, relative to the larger magnitude of each tensor (at least 0.1). */
    static double maxDiff(List<Parameter> a, List<Parameter> b) {
        assertEquals(a.size(), b.size());
        double d = 0;
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).name(), b.get(i).name());
            double scale = Math.max(0.1, Math.max(a.get(i).value().amaxNumber().doubleValue(), b.get(i).value().amaxNumber().doubleValue()));
            d = Math.max(d, a.get(i).value().sub(b.get(i).value()).amaxNumber().doubleValue() / scale);
        }
        return d;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    void gradientSyncEqualsOneProcessTrainingAndMovesFourBytesPerTrainableScalar(AdapterConfig a) throws Exception {
        TrainSpec spec = spec(a, "gradients", 3, 1, 0, null);
        DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards()), MetricsLog.inMemory(), "train", QUIET, null);
        AttachedAdapter reference = oneProcess(spec, shards());
        double d = maxDiff(reference.trainableParameters(), r.adapter().trainableParameters());
        assertTrue(d < 1e-4, a.method() + ": distributed and one-process differ by " + d);
        double moved = 0;
        AttachedAdapter fresh = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, a, spec.options().seed());
        moved = maxDiff(fresh.trainableParameters(), r.adapter().trainableParameters());
        assertTrue(moved > 1e-4, a.method() + ": nothing trained");
        long trainable = r.adapter().trainableParameterCount();
        // down: the trainable tensors plus the method's round state (Delta-LoRA's snapshot, once its warm-up is over)
        long state = r.adapter().hooks().roundState().values().stream().mapToLong(t -> t.length()).sum();
        if (a.method().equals("delta_lora")) assertEquals(trainable, state, "delta_lora: the snapshot (A_K, B_K) is adapter-sized");
        else if (a.method().equals("dylora")) assertEquals(1, state, "dylora: the round's rank, one scalar");
        else if (a.method().equals("adalora")) assertEquals(4 * r.adapter().layers().size() + 1, state, "adalora: one mask entry per triplet and the final flag");
        else assertEquals(0, state, a.method() + " has no round state");
        assertEquals(4 * (trainable + state), r.bytesBroadcastPerRound(), a.method() + ": bytes down per round");
        assertEquals(4 * trainable, r.bytesReducedPerRound(), a.method() + ": bytes up per round");
    }

    @Test
    void biasAllTrainsPrivateCopiesLeavesTheCachedBaseBitForBitAndEqualsOneProcess() throws Exception {
        TransformerLM cached = BaseModelCache.model(base, sc.hadoopConfiguration());
        Map<String, INDArray> before = new LinkedHashMap<>();
        cached.stateDict().forEach((k, v) -> before.put(k, v.dup()));
        TrainSpec spec = spec(AdapterConfig.lora(4, 8, TARGETS).withBias("all"), "gradients", 3, 1, 0, null);
        DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards()), MetricsLog.inMemory(), "train", QUIET, null);

        Map<String, INDArray> after = BaseModelCache.model(base, sc.hadoopConfiguration()).stateDict();
        for (Map.Entry<String, INDArray> e : before.entrySet()) {
            assertEquals(e.getValue(), after.get(e.getKey()), e.getKey() + " of the executor's cached base changed");
        }
        AttachedAdapter reference = oneProcess(spec, shards());
        assertFalse(r.adapter().trainableBiases().isEmpty());
        // The key projection's bias has a gradient that is zero in exact arithmetic (softmax ignores a shift shared
        // by all keys), so its float32 noise, ~1e-9, meets AdamW's eps and its steps differ between any two
        // summation orders by up to a fraction of lr. It cannot change the outputs: the logits must agree closely.
        double d = maxDiff(reference.trainableParameters(), r.adapter().trainableParameters());
        assertTrue(d < 1e-3, "bias: all, distributed vs one process: " + d);
        TokenBatch probe = TokenBatch.shifted(new int[][]{shards().get(0).block(0)}, new boolean[][]{shards().get(0).mask(0)});
        INDArray l1 = reference.model().logits(probe), l2 = r.adapter().model().logits(probe);
        double dl = l1.sub(l2).amaxNumber().doubleValue() / l1.amaxNumber().doubleValue();
        assertTrue(dl < 1e-5, "bias: all, logits of distributed vs one-process training differ by " + dl);
        Parameter bias = r.adapter().trainableBiases().get(0);
        assertTrue(bias.value().sub(before.get(bias.name())).amaxNumber().doubleValue() > 1e-5, "the biases trained");
    }

    /** ΔW = s·B·A of every adapted layer, [out, in]. */
    static Map<String, INDArray> deltas(AttachedAdapter a) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        a.layers().forEach((k, l) -> {
            LoraAdapter lora = (LoraAdapter) l;
            m.put(k, lora.loraB().value().mmul(lora.loraA().value()).muli(lora.scale()));
        });
        return m;
    }

    /**
     * One round of K local steps on each of two partitions: the worst relative gap between the ΔW the driver
     * ends with and the target-weighted mean of the two workers' ΔW.
     */
    static double averagingGap(AdapterConfig a) throws Exception {
        TrainSpec spec = spec(a, "parameters", 1, 3, 0, null);
        List<TokenBlocks> shards = shards();
        DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
        AttachedAdapter start = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, a, spec.options().seed());
        RoundState st = new RoundState(0, AdapterTensors.ofValues(start.trainableParameters()), new AdapterTensors(), null, 0);
        Map<String, INDArray> mean = new LinkedHashMap<>();
        double weights = 0;
        for (int p = 0; p < shards.size(); p++) {
            AttachedAdapter worker = AttachedAdapter.attach(BaseModelCache.model(base, sc.hadoopConfiguration()), TrainSpec.ADAPTER_NAME, a,
                    spec.options().seed());
            RoundResult res = RoundWork.run(worker, shards.get(p), st, spec, p);
            res.payload.scale(1.0 / res.weight).copyInto(worker.trainableParameters());
            double w = res.weight;
            weights += w;
            deltas(worker).forEach((k, v) -> mean.merge(k, v.mul(w), INDArray::addi));
        }
        double gap = 0;
        for (Map.Entry<String, INDArray> e : deltas(r.adapter()).entrySet()) {
            INDArray expected = mean.get(e.getKey()).divi(weights);
            gap = Math.max(gap, e.getValue().sub(expected).amaxNumber().doubleValue() / expected.amaxNumber().doubleValue());
        }
        return gap;
    }

    @Test
    void loraFaParameterAveragingAveragesDeltaWExactlyAndPlainLoraDoesNot() throws Exception {
        double fa = averagingGap(AdapterConfig.of("lora_fa", 4, 8, TARGETS));
        double lora = averagingGap(AdapterConfig.lora(4, 8, TARGETS));
        assertTrue(fa < 1e-5, "LoRA-FA: averaged B times the shared A vs the mean of the workers' ΔW: " + fa);
        assertTrue(lora > 1e-3, "plain LoRA: mean(B)·mean(A) should differ from mean(B·A), gap " + lora);
    }

    @Test
    void aMethodsRoundStateTravelsWithEachRoundAndIsRestoredOnResume() throws Exception {
        AdapterConfig a = AdapterConfig.of(CountingLoraMethod.NAME, 4, 8, TARGETS);
        TrainSpec plain = spec(a, "gradients", 4, 1, 0, null);
        DistributedTrainer.Result r = TrainStage.run(sc, plain, new InMemoryShards(shards()), MetricsLog.inMemory(), "train", QUIET, null);
        AttachedAdapter reference = oneProcess(plain, shards());
        assertEquals(4L, CountingLoraMethod.counter(reference), "one process: the counter counted every step");
        double d = maxDiff(reference.trainableParameters(), r.adapter().trainableParameters());
        assertTrue(d < 1e-4, "tasks must see the driver's per-round state: distributed vs one process " + d);

        String out = tmp.resolve("counting").toString();
        assertThrows(RuntimeException.class, () -> TrainStage.run(sc, spec(a, "gradients", 4, 1, 1, out), new InMemoryShards(shards()),
                MetricsLog.inMemory(), "train", QUIET, (done, res) -> {
                    if (done == 3) throw new RuntimeException("simulated crash after round 3");
                }));
        DistributedTrainer.Result resumed = TrainStage.run(sc, spec(a, "gradients", 4, 1, 1, out), new InMemoryShards(shards()),
                MetricsLog.inMemory(), "train", QUIET, null);
        assertEquals(3, resumed.resumedFrom());
        assertEquals(4L, CountingLoraMethod.counter(resumed.adapter()), "the counter came back from the checkpoint");
        double dr = maxDiff(r.adapter().trainableParameters(), resumed.adapter().trainableParameters());
        assertTrue(dr < 1e-6, "resumed vs uninterrupted: " + dr);
    }
}
