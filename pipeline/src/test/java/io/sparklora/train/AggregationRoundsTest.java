package io.sparklora.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.TrainStageTest;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

import static io.sparklora.train.OuterOptimizerRoundsTest.CFG;
import static io.sparklora.train.OuterOptimizerRoundsTest.QUIET;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train.aggregate: svd} in the driver's loop, rounds run in this process: with one partition the re-factorised
 * adapter has the same ΔW as plain averaging's; with two, each round logs both gaps, and the run's tasks send their own
 * factors (so a round moves P adapters up, not one sum).
 */
class AggregationRoundsTest {
    static final List<String> TARGETS = List.of("c_attn", "c_fc");

    static TrainSpec spec(String aggregate, int rounds) {
        TrainingOptions o = new TrainingOptions(rounds * 3, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        return new TrainSpec(new BaseModelRef("file:/tiny-base", "test"), AdapterConfig.lora(4, 8, TARGETS), Map.of(), rounds, 3, "parameters",
                false, o, 1.0, 0, null).withAggregate(aggregate);
    }

    record Run(AttachedAdapter driver, MetricsLog metrics, long bytesUp) {}

    static Run run(TrainSpec spec, List<TokenBlocks> shards) throws Exception {
        AttachedAdapter driver = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        AttachedAdapter worker = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), TrainSpec.ADAPTER_NAME, spec.adapter(), 11);
        MetricsLog m = MetricsLog.inMemory();
        DistributedTrainer.Result r = DistributedTrainer.run(driver, spec, new Configuration(), new InProcessRounds(worker, shards, spec),
                shards.size(), m, "train", QUIET, null);
        return new Run(driver, m, r.bytesReducedPerRound());
    }

    /** Every adapted layer's B·A. */
    static Map<String, INDArray> products(AttachedAdapter a) {
        Map<String, INDArray> out = new java.util.TreeMap<>();
        for (var p : a.trainableParameters()) {
            if (!p.name().contains(".lora_B.")) continue;
            INDArray b = p.value(), aa = a.trainableParameters().stream().filter(q -> q.name().equals(p.name().replace(".lora_B.", ".lora_A.")))
                    .findFirst().orElseThrow().value();
            out.put(p.name(), b.mmul(aa));
        }
        return out;
    }

    @Test
    void onePartitionSvdKeepsAveragingsProductAndTwoPartitionsLogBothGaps() throws Exception {
        List<TokenBlocks> one = List.of(TrainStageTest.randomShard(8, 16, 1));
        Map<String, INDArray> mean = products(run(spec("mean", 1), one).driver()), svd = products(run(spec("svd", 1), one).driver());
        assertEquals(mean.keySet(), svd.keySet());
        assertEquals(4, mean.size(), "c_attn and c_fc in 2 layers");
        for (String k : mean.keySet()) {
            double scale = mean.get(k).norm2Number().doubleValue();
            assertTrue(scale > 0, "one round of training must move B off zero");
            assertEquals(0, mean.get(k).sub(svd.get(k)).norm2Number().doubleValue(), 1e-5 * scale, k);
        }

        List<TokenBlocks> two = List.of(TrainStageTest.randomShard(8, 16, 1), TrainStageTest.randomShard(8, 16, 2));
        Run meanTwo = run(spec("mean", 3), two), svdTwo = run(spec("svd", 3), two);
        List<JsonNode> lines = svdTwo.metrics().lines();
        assertEquals(3, lines.size());
        for (JsonNode l : lines) {
            double avg = l.path("averaging_gap").asDouble(-1), cut = l.path("truncation_gap").asDouble(-1);
            assertTrue(avg > 0 && avg < 1, l.toString());
            assertTrue(cut >= 0 && cut < 1, l.toString());
        }
        for (JsonNode l : meanTwo.metrics().lines()) assertFalse(l.has("averaging_gap"), "mean logs no gaps");
        assertEquals(meanTwo.bytesUp(), svdTwo.bytesUp(), "each task sends one adapter's worth either way (as factors or as a weighted sum)");
    }
}
