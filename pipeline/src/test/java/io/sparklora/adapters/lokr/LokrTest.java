package io.sparklora.adapters.lokr;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** PEFT's factorization (and where LyCORIS's differs), and LoKr's factored forward against the explicit Kronecker product. */
class LokrTest {

    /** LyCORIS's current factorization: the factor branch only when dimension ≥ factor² (for comparison only). */
    private static int[] lycoris(int dimension, int factor) {
        if (factor > 0 && dimension % factor == 0 && dimension >= factor * factor) {
            int m = factor, n = dimension / factor;
            return m > n ? new int[]{n, m} : new int[]{m, n};
        }
        int bound = factor < 0 ? dimension : factor, m = 1, n = dimension;
        while (m < n) {
            int newM = m + 1;
            while (dimension % newM != 0) newM++;
            int newN = dimension / newM;
            if (newM + newN > 1 + dimension || newM > bound) break;
            m = newM;
            n = newN;
        }
        return m > n ? new int[]{n, m} : new int[]{m, n};
    }

    @Test
    void factorizationFollowsPeft() {
        assertArrayEquals(new int[]{16, 16}, Factorization.split(256, -1));
        assertArrayEquals(new int[]{8, 16}, Factorization.split(128, -1));
        assertArrayEquals(new int[]{1, 127}, Factorization.split(127, -1));
        assertArrayEquals(new int[]{4, 32}, Factorization.split(128, 4));
        assertArrayEquals(new int[]{24, 32}, Factorization.split(768, -1));
        assertArrayEquals(new int[]{48, 48}, Factorization.split(2304, -1));
        assertArrayEquals(new int[]{2, 4}, Factorization.split(8, 4));
        assertArrayEquals(new int[]{2, 125}, Factorization.split(250, 2));
        // a factor that does not divide: the divisor walk bounded by it
        assertArrayEquals(new int[]{5, 50}, Factorization.split(250, 8));
    }

    /** Where PEFT and LyCORIS differ: a factor above the square root that divides the dimension. PEFT's wins here. */
    @Test
    void factorsAboveTheSquareRootDifferFromLycoris() {
        int[][] cases = {{12, 6}, {1024, 64}, {768, 64}};
        for (int[] c : cases) {
            int[] peft = Factorization.split(c[0], c[1]), ly = lycoris(c[0], c[1]);
            assertFalse(java.util.Arrays.equals(peft, ly), c[0] + " with factor " + c[1]);
            assertEquals(c[1], peft[1], "PEFT keeps the factor itself: " + java.util.Arrays.toString(peft));
        }
        assertArrayEquals(new int[]{2, 6}, Factorization.split(12, 6));
        assertArrayEquals(new int[]{3, 4}, lycoris(12, 6));
        assertArrayEquals(new int[]{16, 64}, Factorization.split(1024, 64));
        assertArrayEquals(new int[]{32, 32}, lycoris(1024, 64));
        // below the square root they agree
        assertArrayEquals(lycoris(1024, 8), Factorization.split(1024, 8));
    }

    /** The factored forward and backward equal x·(s·w1⊗w2)ᵀ and its gradient, at a GPT-2-small-like 96 → 288 layer. */
    @Test
    void factoredForwardEqualsTheExplicitKroneckerProduct() {
        TransformerLM m = TransformerLM.randomInit(ModelConfig.gpt2(11, 96, 1, 4, 8), 3, DataType.DOUBLE);
        for (String both : List.of("false", "true")) {
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("lokr", 2, 4, List.of("c_attn"))
                    .withOption("decompose_both", both), 5);
            for (Parameter p : a.trainableParameters()) p.value().assign(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(p.name().hashCode()), p.value().shape()));
            LokrAdapter layer = (LokrAdapter) a.layers().get("transformer.h.0.attn.c_attn");
            assertArrayEquals(new int[]{16, 18, 8, 12}, layer.split(), "288 = 16·18, 96 = 8·12");
            INDArray x = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(9), new long[]{5, 96}).castTo(DataType.DOUBLE);
            INDArray explicit = layer.deltaLogical();                                          // [288, 96]
            var act = layer.forward(x, null, ForwardContext.inference());
            assertEquals(0.0, act.delta().sub(x.mmul(explicit.transpose())).amaxNumber().doubleValue(), 1e-10, "decompose_both=" + both);
            INDArray dy = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(10), new long[]{5, 288}).castTo(DataType.DOUBLE);
            INDArray dx = layer.backward(act, dy);
            assertEquals(0.0, dx.sub(dy.mmul(explicit)).amaxNumber().doubleValue(), 1e-10, "dx, decompose_both=" + both);
            a.detach();
        }
    }
}
