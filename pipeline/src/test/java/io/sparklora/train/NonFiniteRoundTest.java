package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.TrainStageTest;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A NaN injected into one partition's training stops the run at that round with an error naming the round and the
 * partition; nothing of the round is applied, the last checkpoint stays intact and loadable, and no adapter holding a
 * NaN can be written.
 */
class NonFiniteRoundTest {
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    /** Partition 1's worker sits on a model whose token embedding holds a NaN from round {@code poisonRound} on. */
    static final class PoisonedRounds implements DistributedTrainer.RoundExecutor {
        final AttachedAdapter healthy, poisoned;
        final List<TokenBlocks> shards;
        final TrainSpec spec;
        final int poisonRound;

        PoisonedRounds(List<TokenBlocks> shards, TrainSpec spec, int poisonRound) {
            this.shards = shards;
            this.spec = spec;
            this.poisonRound = poisonRound;
            healthy = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
            TransformerLM bad = TransformerLM.randomInit(CFG, 7);
            bad.tokenEmbedding().value().putScalar(new long[]{3, 5}, Double.NaN);
            poisoned = AttachedAdapter.attach(bad, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed());
        }

        @Override
        public RoundResult run(RoundState st) {
            RoundResult sum = new RoundResult();
            for (int p = 0; p < shards.size(); p++) {
                AttachedAdapter w = p == 1 && st.round() >= poisonRound ? poisoned : healthy;
                sum.add(RoundWork.run(w, shards.get(p), st, spec, p));
            }
            return sum;
        }
    }

    @Test
    void aNanStopsTheRunNamingRoundAndPartitionAndTheLastCheckpointSurvives(@TempDir Path tmp) throws Exception {
        // every block holds token 3, so the poisoned row is read by every batch of partition 1
        TokenBlocks a = TrainStageTest.randomShard(6, 16, 1), b = TrainStageTest.randomShard(6, 16, 2);
        for (TokenBlocks t : List.of(a, b)) for (int i = 0; i < t.size(); i++) t.block(i)[0] = 3;
        for (String sync : List.of("gradients", "parameters")) {
            String out = tmp.resolve(sync).toString();
            TrainingOptions o = new TrainingOptions(10, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
            int k = sync.equals("gradients") ? 1 : 2;
            TrainSpec spec = new TrainSpec(new io.sparklora.checkpoint.BaseModelRef("file:/tiny-base", "test"), AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), 10 / k, k, sync, false, o, 1.0, 1, out);
            AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
            DistributedTrainer.NonFiniteRoundException e = assertThrows(DistributedTrainer.NonFiniteRoundException.class,
                    () -> DistributedTrainer.run(driver, spec, new Configuration(), new PoisonedRounds(List.of(a, b), spec, 3), 2,
                            MetricsLog.inMemory(), "train", QUIET, null));
            assertTrue(e.getMessage().contains("round 4") && e.getMessage().contains("partition 1") && !e.getMessage().contains("partition 0"),
                    sync + ": " + e.getMessage());
            assertTrue(e.getMessage().contains("is intact"), e.getMessage());
            for (Parameter p : driver.trainableParameters()) {
                assertFalse(p.value().isNaN().any(), sync + ": " + p.name() + " took the NaN round");
            }
            TrainCheckpoint.Loaded last = TrainCheckpoint.latest(new Configuration(), out).orElseThrow();
            assertEquals(3, last.roundsDone(), sync + ": the checkpoint of round 3 is the last, complete and intact");
            for (INDArray t : last.adapter().values()) assertFalse(t.isNaN().any(), "a checkpointed tensor holds NaN");
        }
    }

    @Test
    void anAdapterHoldingNanIsNeverWritten(@TempDir Path tmp) {
        AttachedAdapter a = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), "default", AdapterConfig.lora(4, 8, List.of("c_attn")), 1);
        a.trainableParameters().get(1).value().putScalar(0, 0, Double.POSITIVE_INFINITY);
        Path dir = tmp.resolve("adapter");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> PeftAdapterFormat.save(a, dir, "tiny"));
        assertTrue(e.getMessage().contains("lora_B") && e.getMessage().contains("NaN or infinite"), e.getMessage());
        assertFalse(dir.toFile().exists(), "nothing half-written");
    }
}
