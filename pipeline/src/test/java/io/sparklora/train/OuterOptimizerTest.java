package io.sparklora.train;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** DiLoCo's outer step against a reference written out in double, its special cases, and its state's round trip. */
class OuterOptimizerTest {

    static AdapterTensors tensors(long seed, int n) {
        Random r = new Random(seed);
        float[] a = new float[n], b = new float[2 * n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < 2 * n; i++) b[i] = (float) r.nextGaussian();
        AdapterTensors t = new AdapterTensors();
        t.put("x.lora_A", Nd4j.create(a, new long[]{1, n}, DataType.FLOAT));
        t.put("x.lora_B", Nd4j.create(b, new long[]{2, n}, DataType.FLOAT));
        return t;
    }

    @Test
    void nesterovMatchesAReferenceOverThreeRounds() {
        double lr = 0.7, mu = 0.9;
        OuterOptimizer opt = new OuterOptimizer(OuterOptimizer.Spec.DILOCO);
        AdapterTensors theta = tensors(1, 5);
        Map<String, double[]> ref = new java.util.LinkedHashMap<>(), vel = new java.util.LinkedHashMap<>();
        theta.data().forEach((k, v) -> { double[] d = new double[v.length]; for (int i = 0; i < d.length; i++) d[i] = v[i]; ref.put(k, d); });
        for (int round = 0; round < 3; round++) {
            AdapterTensors avg = tensors(10 + round, 5);
            for (var e : ref.entrySet()) {
                double[] t = e.getValue(), a = new double[t.length];
                float[] af = avg.data().get(e.getKey());
                double[] v = vel.get(e.getKey());
                boolean first = v == null;
                if (first) { v = new double[t.length]; vel.put(e.getKey(), v); }
                for (int i = 0; i < t.length; i++) {
                    double d = t[i] - af[i];
                    v[i] = first ? d : mu * v[i] + d;
                    t[i] -= lr * (d + mu * v[i]);
                }
            }
            theta = opt.step(theta, avg);
        }
        for (var e : ref.entrySet()) {
            float[] got = theta.data().get(e.getKey());
            for (int i = 0; i < got.length; i++) assertEquals(e.getValue()[i], got[i], 1e-5, e.getKey() + "[" + i + "]");
        }
    }

    @Test
    void heavyBallUsesTheVelocityAlone() {
        OuterOptimizer opt = new OuterOptimizer(new OuterOptimizer.Spec("sgd", 0.5, 0.5, false));
        AdapterTensors start = tensors(2, 3), avg = tensors(3, 3);
        AdapterTensors once = opt.step(start, avg);
        AdapterTensors twice = opt.step(once, avg);
        // round 1: v = Δ1, θ1 = θ0 − ½Δ1; round 2: v = ½Δ1 + Δ2, θ2 = θ1 − ½v
        for (String k : start.data().keySet()) {
            float[] s = start.data().get(k), a = avg.data().get(k), t = twice.data().get(k);
            for (int i = 0; i < s.length; i++) {
                double d1 = s[i] - a[i], t1 = s[i] - 0.5 * d1, d2 = t1 - a[i], v = 0.5 * d1 + d2;
                assertEquals(t1 - 0.5 * v, t[i], 1e-5);
            }
        }
    }

    @Test
    void rateOneWithoutMomentumIsPlainAveragingAndNoneReturnsTheAverage() {
        AdapterTensors start = tensors(4, 7), avg = tensors(5, 7);
        AdapterTensors next = new OuterOptimizer(new OuterOptimizer.Spec("sgd", 1.0, 0.0, true)).step(start, avg);
        for (String k : avg.data().keySet()) assertArrayEquals(avg.data().get(k), next.data().get(k), 1e-6f, k);
        assertSame(avg, new OuterOptimizer(OuterOptimizer.Spec.NONE).step(start, avg));
        // neither input is changed
        assertEquals(tensors(4, 7).digest(), start.digest());
        assertEquals(tensors(5, 7).digest(), avg.digest());
    }

    @Test
    void stateRoundTripContinuesBitForBit() {
        OuterOptimizer a = new OuterOptimizer(OuterOptimizer.Spec.DILOCO);
        assertTrue(a.exportState().isEmpty(), "no state before the first step");
        AdapterTensors theta = a.step(tensors(6, 4), tensors(7, 4));
        Map<String, org.nd4j.linalg.api.ndarray.INDArray> state = a.exportState();
        assertEquals(java.util.Set.of("outer.x.lora_A.momentum_buffer", "outer.x.lora_B.momentum_buffer"), state.keySet());
        OuterOptimizer b = new OuterOptimizer(OuterOptimizer.Spec.DILOCO);
        java.util.Map<String, org.nd4j.linalg.api.ndarray.INDArray> withOthers = new java.util.HashMap<>(state);
        withOthers.put("x.lora_A.exp_avg", Nd4j.ones(DataType.FLOAT, 1, 4));   // an AdamW moment: not the outer optimizer's
        b.importState(withOthers);
        assertEquals(a.step(theta, tensors(8, 4)).digest(), b.step(theta, tensors(8, 4)).digest());
    }

    @Test
    void badSettingsAreRefusedWithTheKey() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new OuterOptimizer.Spec("adam", 0.7, 0.9, true))
                .getMessage().contains("train.outer.optimizer"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new OuterOptimizer.Spec("sgd", 0, 0.9, true))
                .getMessage().contains("train.outer.lr"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new OuterOptimizer.Spec("sgd", 0.7, 1.0, true))
                .getMessage().contains("train.outer.momentum"));
        AdapterTensors missing = new AdapterTensors();
        missing.put("x.lora_A", Nd4j.zeros(DataType.FLOAT, 1, 4));
        assertThrows(IllegalStateException.class, () -> OuterOptimizer.pseudoGradient(tensors(1, 4), missing));
    }
}
