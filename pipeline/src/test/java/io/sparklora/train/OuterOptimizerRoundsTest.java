package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.TrainStageTest;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train.outer} in the driver's loop, rounds run in this process over two partitions: rate 1 without momentum is
 * plain averaging; DiLoCo's step changes the result and logs the pseudo-gradient's norm; a run killed after a round
 * and rerun resumes with the outer momentum from the checkpoint and ends bit-identical to an uninterrupted run; and a
 * checkpoint made with another outer setting is refused.
 */
class OuterOptimizerRoundsTest {
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    static final List<TokenBlocks> SHARDS = List.of(TrainStageTest.randomShard(8, 16, 1), TrainStageTest.randomShard(8, 16, 2));

    static TrainSpec spec(OuterOptimizer.Spec outer, String out) {
        TrainingOptions o = new TrainingOptions(24, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        return new TrainSpec(new BaseModelRef("file:/tiny-base", "test"), AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(),
                6, 4, "parameters", false, o, 1.0, out == null ? 0 : 1, out).withOuter(outer);
    }

    record Run(AdapterTensors adapter, MetricsLog metrics) {}

    static Run run(TrainSpec spec, DistributedTrainer.RoundListener listener) throws Exception {
        AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        AttachedAdapter worker = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        MetricsLog metrics = MetricsLog.inMemory();
        DistributedTrainer.run(driver, spec, new Configuration(), new InProcessRounds(worker, SHARDS, spec), SHARDS.size(), metrics,
                "train", QUIET, listener);
        return new Run(AdapterTensors.ofValues(driver.trainableParameters()), metrics);
    }

    static double maxAbsDiff(AdapterTensors a, AdapterTensors b) {
        double m = 0;
        for (String k : a.data().keySet()) {
            float[] x = a.data().get(k), y = b.data().get(k);
            for (int i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
        }
        return m;
    }

    @Test
    void rateOneWithoutMomentumIsPlainAveragingAndDilocoIsNot() throws Exception {
        Run plain = run(spec(OuterOptimizer.Spec.NONE, null), null);
        Run unit = run(spec(new OuterOptimizer.Spec("sgd", 1.0, 0.0, true), null), null);
        Run diloco = run(spec(OuterOptimizer.Spec.DILOCO, null), null);
        // θ − (θ − θ̄) is θ̄ up to float rounding, which 24 AdamW steps carry on: equal to 1e-4, against DiLoCo's 1e-2 and more
        double unitDiff = maxAbsDiff(plain.adapter(), unit.adapter()), dilocoDiff = maxAbsDiff(plain.adapter(), diloco.adapter());
        assertTrue(unitDiff < 1e-4, "sgd(1, 0) vs averaging: " + unitDiff);
        assertTrue(dilocoDiff > 1e-2, "DiLoCo's momentum must move the adapter elsewhere: " + dilocoDiff);
        List<com.fasterxml.jackson.databind.JsonNode> lines = diloco.metrics().lines();
        assertEquals(6, lines.size());
        for (var l : lines) assertTrue(l.path("pseudo_gradient_norm").asDouble() > 0, l.toString());
    }

    @Test
    void aKilledDilocoRunResumesWithItsMomentumAndEndsBitIdentical(@TempDir Path tmp) throws Exception {
        AdapterTensors uninterrupted = run(spec(OuterOptimizer.Spec.DILOCO, tmp.resolve("a").toString()), null).adapter();

        TrainSpec killed = spec(OuterOptimizer.Spec.DILOCO, tmp.resolve("b").toString());
        assertThrows(IllegalStateException.class, () -> run(killed, (done, r) -> {
            if (done == 3) throw new IllegalStateException("killed after round 3");
        }));
        TrainCheckpoint.Loaded ck = TrainCheckpoint.latest(new Configuration(), killed.outputUri()).orElseThrow();
        assertEquals(3, ck.roundsDone());
        assertTrue(ck.optimizer().keySet().stream().anyMatch(k -> k.startsWith(OuterOptimizer.STATE_PREFIX)),
                "the checkpoint holds the outer momentum: " + ck.optimizer().keySet());
        AdapterTensors resumed = run(killed, null).adapter();
        assertEquals(uninterrupted.digest(), resumed.digest(), "resumed run differs from the uninterrupted one");

        // the same run without its momentum in the checkpoint would differ: the momentum is what carries over
        TrainSpec other = spec(new OuterOptimizer.Spec("sgd", 0.7, 0.5, true), killed.outputUri());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> run(other, null));
        assertTrue(e.getMessage().contains("other settings"), e.getMessage());
    }
}
