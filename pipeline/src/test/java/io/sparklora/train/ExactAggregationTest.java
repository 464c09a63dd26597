package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.checkpoint.BaseModelRef;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;
import java.util.Map;

import static io.sparklora.train.LowRankTest.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train.aggregate: svd} on hand-made workers: the next B·A is the exact weighted mean of the workers' B_i·A_i
 * when that has rank ≤ r, the gaps equal dense computations, and settings that cannot hold are refused by name.
 */
class ExactAggregationTest {
    static final ExactAggregation.Pair PAIR = new ExactAggregation.Pair("m.lora_B.default.weight", "m.lora_A.default.weight");

    static PartitionFactors worker(int partition, double weight, double[][] b, double[][] a) {
        AdapterTensors t = new AdapterTensors();
        t.put(PAIR.b(), Nd4j.create(b).castTo(DataType.FLOAT));
        t.put(PAIR.a(), Nd4j.create(a).castTo(DataType.FLOAT));
        return new PartitionFactors(partition, weight, t);
    }

    /** The factors as the workers hold them (rounded to float). */
    static double[][] stored(PartitionFactors w, String name) {
        return w.factors().get(name).castTo(DataType.DOUBLE).toDoubleMatrix();
    }

    @Test
    void svdRecoversTheExactMeanOfTheProductsAndReportsWhatAveragingWouldLose() {
        // two workers of rank 4 whose products have rank 2 each: the weighted mean has rank <= 4 = r, so svd is exact
        double[][] b1 = random(10, 4, 1), a1 = random(4, 12, 2), b2 = random(10, 4, 3), a2 = random(4, 12, 4);
        for (double[] row : b1) { row[2] = 0; row[3] = 0; }
        for (double[] row : b2) { row[0] = 0; row[1] = 0; }
        PartitionFactors w1 = worker(0, 30, b1, a1), w2 = worker(1, 10, b2, a2);
        ExactAggregation.Result r = ExactAggregation.svd(List.of(w1, w2), List.of(PAIR), 4, new AdapterTensors());

        double[][] p1 = product(stored(w1, PAIR.b()), stored(w1, PAIR.a())), p2 = product(stored(w2, PAIR.b()), stored(w2, PAIR.a()));
        double[][] exact = new double[10][12];
        for (int i = 0; i < 10; i++) for (int j = 0; j < 12; j++) exact[i][j] = 0.75 * p1[i][j] + 0.25 * p2[i][j];
        double[][] got = product(r.adapter().get(PAIR.b()).castTo(DataType.DOUBLE).toDoubleMatrix(),
                r.adapter().get(PAIR.a()).castTo(DataType.DOUBLE).toDoubleMatrix());
        assertTrue(frob(minus(got, exact)) < 1e-6 * frob(exact), "svd's B'A' vs the exact mean: " + frob(minus(got, exact)) / frob(exact));
        assertEquals(0, r.truncationGap(), 1e-9);
        assertArrayEquals(new long[]{10, 4}, r.adapter().get(PAIR.b()).shape());
        assertArrayEquals(new long[]{4, 12}, r.adapter().get(PAIR.a()).shape());

        // what plain averaging would have given: mean(B)·mean(A)
        double[][] mb = new double[10][4], ma = new double[4][12];
        double[][] sb1 = stored(w1, PAIR.b()), sb2 = stored(w2, PAIR.b()), sa1 = stored(w1, PAIR.a()), sa2 = stored(w2, PAIR.a());
        for (int i = 0; i < 10; i++) for (int j = 0; j < 4; j++) mb[i][j] = 0.75 * sb1[i][j] + 0.25 * sb2[i][j];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 12; j++) ma[i][j] = 0.75 * sa1[i][j] + 0.25 * sa2[i][j];
        double gap = frob(minus(product(mb, ma), exact)) / frob(exact);
        assertTrue(gap > 0.1, "these workers' factors disagree: averaging must lose a lot, got " + gap);
        assertEquals(gap, r.averagingGap(), 1e-9);
    }

    @Test
    void aCutBelowTheSumsRankReportsItsTail() {
        PartitionFactors w1 = worker(0, 1, random(10, 4, 5), random(4, 12, 6)), w2 = worker(1, 1, random(10, 4, 7), random(4, 12, 8));
        ExactAggregation.Result r = ExactAggregation.svd(List.of(w1, w2), List.of(PAIR), 4, new AdapterTensors());
        assertTrue(r.truncationGap() > 0 && r.truncationGap() < r.averagingGap(),
                "rank 8 cut to 4: the best rank-4 choice loses less than averaging; " + r.truncationGap() + " vs " + r.averagingGap());
    }

    @Test
    void settingsThatCannotHoldAreRefused() {
        TrainingOptions o = new TrainingOptions(4, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 11);
        BaseModelRef base = new BaseModelRef("file:/tiny-base", "test");
        List<String> targets = List.of("c_attn");
        TrainSpec ok = new TrainSpec(base, AdapterConfig.lora(4, 8, targets), Map.of(), 2, 2, "parameters", false, o, 1.0, 0, null).withAggregate("svd");
        assertEquals("svd", ok.aggregate());
        String[][] cases = {
                {"svd", "parameters", "true", "lora", "average_optimizer_state: false"},
                {"svd", "parameters", "false", "lora_fa", "adapter type lora_fa"},
                {"svd", "parameters", "false", "dylora", "adapter type dylora"},
                {"frozen_a", "parameters", "false", "lora", "Use adapter.type: lora_fa"},
                {"svd", "gradients", "false", "lora", "only sync: parameters sends"},
                {"median", "parameters", "false", "lora", "train.aggregate must be one of"},
        };
        for (String[] c : cases) {
            int k = c[1].equals("gradients") ? 1 : 2;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new TrainSpec(base,
                    AdapterConfig.of(c[3], 4, 8, targets), Map.of(), 2, k, c[1], Boolean.parseBoolean(c[2]), o, 1.0, 0, null).withAggregate(c[0]));
            assertTrue(e.getMessage().contains(c[4]), String.join(",", c) + ": " + e.getMessage());
        }
        assertEquals("frozen_a", new TrainSpec(base, AdapterConfig.of("lora_fa", 4, 8, targets), Map.of(), 2, 2, "parameters", false, o, 1.0, 0, null)
                .withAggregate("frozen_a").aggregate());
        IllegalArgumentException withOuter = assertThrows(IllegalArgumentException.class, () -> ok.withOuter(OuterOptimizer.Spec.DILOCO));
        assertTrue(withOuter.getMessage().contains("train.outer"), withOuter.getMessage());
    }
}
