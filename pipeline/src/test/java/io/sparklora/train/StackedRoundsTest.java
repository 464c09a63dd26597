package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.TrainStageTest;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static io.sparklora.train.OuterOptimizerRoundsTest.CFG;
import static io.sparklora.train.OuterOptimizerRoundsTest.QUIET;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train.aggregate: stack} (FLoRA) in the driver's loop, rounds run in this process: every round's workers train
 * on weights that hold exactly the sum of all earlier rounds' workers' ΔW (a private copy; the shared base stays as it
 * was), and the run ends with one adapter whose ΔW is exactly the sum of every worker's weighted ΔW of every round.
 */
class StackedRoundsTest {
    static final List<String> TARGETS = List.of("c_attn", "c_fc");
    static final List<TokenBlocks> SHARDS = List.of(TrainStageTest.randomShard(8, 16, 1), TrainStageTest.randomShard(6, 16, 2));

    static TrainSpec spec(AdapterConfig adapter, int rounds, String out) {
        TrainingOptions o = new TrainingOptions(rounds * 3, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        return new TrainSpec(new BaseModelRef("file:/tiny-base", "test"), adapter, Map.of(), rounds, 3, "parameters",
                false, o, 1.0, out == null ? 0 : 1, out).withAggregate("stack");
    }

    /** Each layer's ΔW in [out, in] (s·B·A), by layer module. */
    static Map<String, INDArray> deltas(AttachedAdapter a) {
        Map<String, INDArray> out = new TreeMap<>();
        a.layers().forEach((m, layer) -> out.put(m, layer.deltaWeight().dup()));
        return out;
    }

    /** The dense weight of every targeted layer, by module (a copy). */
    static Map<String, INDArray> weights(TransformerLM model, AttachedAdapter a) {
        Map<String, INDArray> out = new TreeMap<>();
        for (String m : a.layers().keySet()) out.put(m, model.linears().get(m).baseWeight().dense().dup());
        return out;
    }

    @Test
    void workersTrainOnTheExactSumOfEarlierRoundsAndTheRunEndsWithItExactly() throws Exception {
        TrainSpec spec = spec(AdapterConfig.lora(4, 8, TARGETS), 3, null);
        TransformerLM workerModel = TransformerLM.randomInit(CFG, 7);
        AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        AttachedAdapter worker = AttachedAdapter.attach(workerModel, TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        Map<String, INDArray> w0 = weights(workerModel, worker);
        for (String m : w0.keySet()) workerModel.linears().get(m).baseWeight().parameter().markShared();
        INDArray sharedBefore = workerModel.linears().get(w0.keySet().iterator().next()).baseWeight().dense();

        // the expected sum of ΔW, built densely from each round's workers' own factors and weights
        Map<String, INDArray> expected = new TreeMap<>();
        w0.forEach((m, w) -> expected.put(m, Nd4j.zerosLike(layout(workerModel, m, w))));     // [out, in]
        InProcessRounds inner = new InProcessRounds(worker, SHARDS, spec);
        List<Integer> foldsSeen = new ArrayList<>();
        DistributedTrainer.RoundExecutor checking = state -> {
            // what the workers start from this round: W0 + Σ of every earlier fold, in the layer's layout
            RoundResult r = inner.run(state);
            foldsSeen.add(state.folds().size());
            assertEquals(state.folds().size(), worker.folded(), "the worker merged every fold the round carries");
            Map<String, INDArray> now = weights(workerModel, worker);
            for (String m : w0.keySet()) {
                INDArray merged = w0.get(m).add(layout(workerModel, m, expected.get(m)));
                assertEquals(0, now.get(m).sub(merged).norm2Number().doubleValue(), 1e-5 * merged.norm2Number().doubleValue(),
                        "round " + state.round() + " " + m);
            }
            double total = r.factors.stream().mapToDouble(PartitionFactors::weight).sum();
            for (PartitionFactors f : r.factors) {
                for (String m : w0.keySet()) {
                    INDArray b = f.factors().get(m + ".lora_B.default.weight"), a = f.factors().get(m + ".lora_A.default.weight");
                    expected.get(m).addi(b.mmul(a).muli(spec.adapter().scale() * f.weight() / total));
                }
            }
            return r;
        };
        MetricsLog metrics = MetricsLog.inMemory();
        DistributedTrainer.Result res = DistributedTrainer.run(driver, spec, new Configuration(), checking, SHARDS.size(), metrics, "train", QUIET, null);

        assertEquals(List.of(0, 2, 4), foldsSeen, "round t carries the 2 workers' folds of each earlier round");
        // each round reports what a task newly receives: the fresh adapter and the previous round's 2 folds, not all folds
        List<Long> down = metrics.lines().stream().map(l -> l.path("bytes_broadcast").asLong()).toList();
        long adapterBytes = 4 * worker.trainableParameterCount(), foldBytes = 4 * worker.trainableParameterCount();   // a fold: one adapter's pair
        assertEquals(List.of(adapterBytes, adapterBytes + 2 * foldBytes, adapterBytes + 2 * foldBytes), down);
        for (String m : w0.keySet()) assertNotSame(sharedBefore, workerModel.linears().get(m).baseWeight().dense(), "the worker wrote a private copy");
        assertArrayEquals(w0.get(w0.keySet().iterator().next()).dup('c').data().asFloat(), sharedBefore.dup('c').data().asFloat(),
                "the shared base array is bit-for-bit as it was");
        AttachedAdapter out = res.adapter();
        assertEquals("lora", out.config().method());
        assertEquals(Math.min(3 * 2 * 4, 64), out.config().r(), "rank: 3 rounds × 2 workers × r 4, under the layers' full rank");
        Map<String, INDArray> got = deltas(out);
        assertEquals(expected.keySet(), got.keySet());
        for (String m : expected.keySet()) {
            double scale = expected.get(m).norm2Number().doubleValue();
            assertTrue(scale > 0, m);
            assertEquals(0, got.get(m).sub(layout(workerModel, m, expected.get(m))).norm2Number().doubleValue(), 1e-5 * scale, m);
        }
    }

    static AttachedAdapter run(TrainSpec spec, DistributedTrainer.RoundListener listener) throws Exception {
        AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        AttachedAdapter worker = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        return DistributedTrainer.run(driver, spec, new Configuration(), new InProcessRounds(worker, SHARDS, spec), SHARDS.size(),
                MetricsLog.inMemory(), "train", QUIET, listener).adapter();
    }

    @Test
    void aKilledRunResumesWithItsFoldsAndEndsBitIdentical(@TempDir Path tmp) throws Exception {
        AdapterConfig lora = AdapterConfig.lora(4, 8, TARGETS);
        String uninterrupted = AdapterTensors.ofValues(run(spec(lora, 3, tmp.resolve("a").toString()), null).trainableParameters()).digest();
        TrainSpec killed = spec(lora, 3, tmp.resolve("b").toString());
        assertThrows(IllegalStateException.class, () -> run(killed, (done, r) -> {
            if (done == 2) throw new IllegalStateException("killed after round 2");
        }));
        TrainCheckpoint.Loaded ck = TrainCheckpoint.latest(new Configuration(), killed.outputUri()).orElseThrow();
        assertEquals(2, ck.roundsDone());
        assertEquals(4, StackedRounds.fromCheckpoint(ck.optimizer()).size(), "the checkpoint holds 2 rounds × 2 workers' folds");
        // a fresh worker model (as a new executor's) merges all 4 folds at once, the killed run's worker had merged them round by round
        assertEquals(uninterrupted, AdapterTensors.ofValues(run(killed, null).trainableParameters()).digest(), "resumed run differs");
    }

    @Test
    void refusesWhatCannotBeStacked() {
        AdapterConfig lora = AdapterConfig.lora(4, 8, TARGETS);
        for (var c : List.of(AdapterConfig.of("dora", 4, 8, TARGETS), AdapterConfig.of("lora_fa", 4, 8, TARGETS),
                AdapterConfig.of("loha", 4, 8, TARGETS), lora.withBias("all"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> spec(c, 2, null), c.toString());
            assertTrue(e.getMessage().contains("train.aggregate: stack"), e.getMessage());
        }
        TrainingOptions o = TrainingOptions.defaults(6);
        IllegalArgumentException avg = assertThrows(IllegalArgumentException.class, () -> new TrainSpec(new BaseModelRef("file:/b", "t"), lora,
                Map.of(), 2, 3, "parameters", true, o, 1.0, 0, null).withAggregate("stack"));
        assertTrue(avg.getMessage().contains("average_optimizer_state"), avg.getMessage());
        IllegalArgumentException grad = assertThrows(IllegalArgumentException.class, () -> new TrainSpec(new BaseModelRef("file:/b", "t"), lora,
                Map.of(), 2, 1, "gradients", false, o, 1.0, 0, null).withAggregate("stack"));
        assertTrue(grad.getMessage().contains("sync: parameters"), grad.getMessage());
        assertEquals("stack", spec(AdapterConfig.of("loraplus", 4, 8, TARGETS), 2, null).aggregate(), "LoRA+ stacks like LoRA");
        // adapters training together share the base weights, which stacking merges into
        TrainSpec stack = spec(lora, 2, null);
        AttachedAdapter a = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), "a", lora, 1);
        RoundState st = new RoundState(0, AdapterTensors.ofValues(a.trainableParameters()), new AdapterTensors(), null, 0);
        IllegalArgumentException shared = assertThrows(IllegalArgumentException.class,
                () -> RoundWork.runTogether(List.of(new RoundWork.Member("a", a, SHARDS.get(0), st, stack)), 0));
        assertTrue(shared.getMessage().contains("stack"), shared.getMessage());
    }

    /** A [out, in] matrix in the layer's storage layout. */
    static INDArray layout(TransformerLM model, String module, INDArray outIn) {
        return model.linears().get(module).transposed() ? outIn : outIn.transpose();
    }
}
