package io.sparklora.model.kernels;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Vector API kernels (the CPU path) equal the ND4J-op kernels (the path every backend, CUDA included, can run),
 * function by function, on shapes whose rows are and are not a multiple of the SIMD width; and inputs the Vector
 * kernels cannot address (fp64, views) still give the ND4J result.
 */
class KernelsEquivalenceTest {
    private static final double TOL = 2e-6;   // relative to the largest magnitude of the reference
    private static Kernels vec;
    private static final Kernels ND = Kernels.nd4j();

    @BeforeAll
    static void vectorKernelsAreLoaded() {
        // the build runs tests with conf/jvm.options, which adds jdk.incubator.vector, on the CPU backend
        vec = Kernels.vector();
        assertNotNull(vec, "jdk.incubator.vector is not in this JVM: run with conf/jvm.options");
        assertSame(vec, Kernels.active(), "the CPU build must use the Vector kernels");
    }

    private static INDArray rand(long seed, double scale, long... shape) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.randn(DataType.FLOAT, shape).muli(scale);
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(actual.shape()), what + " shape");
        double scale = Math.max(1e-30, Transforms.abs(expected).maxNumber().doubleValue());
        double diff = Transforms.abs(expected.sub(actual)).maxNumber().doubleValue();
        assertTrue(diff <= TOL * scale, what + ": max |Δ| " + diff + " > " + TOL + " × " + scale);
    }

    @Test
    void geluAndItsDerivativeMatch() {
        for (long[] shape : new long[][]{{64, 96}, {7, 37}, {3}}) {
            INDArray u = rand(1, 3.0, shape);
            assertClose(ND.gelu(u), vec.gelu(u), "gelu " + java.util.Arrays.toString(shape));
            INDArray d = rand(2, 1.0, shape);
            assertClose(ND.geluBackwardInPlace(u, d.dup()), vec.geluBackwardInPlace(u, d.dup()), "gelu' " + java.util.Arrays.toString(shape));
        }
    }

    @Test
    void geluIsHuggingFacesGeluNew() {
        // exact values of ½u(1 + tanh(√(2/π)(u + 0.044715u³))) in double precision
        INDArray u = Nd4j.createFromArray(-3f, -1f, -0.5f, 0f, 0.5f, 1f, 3f, 10f, -10f, 0.1f, 2f, -2f, 4f, -4f, 0.7f, -0.7f, 1.5f);
        INDArray out = vec.gelu(u);
        for (int i = 0; i < u.length(); i++) {
            double x = u.getDouble(i);
            double ref = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            assertEquals(ref, out.getDouble(i), 1e-6 * Math.max(1, Math.abs(ref)), "gelu(" + x + ")");
        }
    }

    @Test
    void layerNormAndRmsNormMatchForwardAndBackward() {
        for (int c : new int[]{48, 37}) {
            INDArray x = rand(3, 2.0, 9, c).addi(0.5);
            INDArray gamma = rand(4, 0.3, c).addi(1.0), beta = rand(5, 0.3, c);
            INDArray dy = rand(6, 1.0, 9, c);
            for (boolean center : new boolean[]{true, false}) {
                String what = (center ? "layer_norm" : "rms_norm") + " C=" + c;
                Kernels.NormResult a = ND.normForward(x, gamma, center ? beta : null, 1e-5, center);
                Kernels.NormResult b = vec.normForward(x, gamma, center ? beta : null, 1e-5, center);
                assertClose(a.out(), b.out(), what + " y");
                assertClose(a.xhat(), b.xhat(), what + " x̂");
                assertClose(a.rstd(), b.rstd(), what + " 1/σ");
                Kernels.NormGrads ga = ND.normBackward(dy, a.xhat(), a.rstd(), gamma, center, true, center);
                Kernels.NormGrads gb = vec.normBackward(dy, a.xhat(), a.rstd(), gamma, center, true, center);
                assertClose(ga.dx(), gb.dx(), what + " dx");
                assertClose(ga.dGamma().reshape(c), gb.dGamma().reshape(c), what + " dγ");
                if (center) assertClose(ga.dBeta().reshape(c), gb.dBeta().reshape(c), what + " dβ");
            }
        }
    }

    @Test
    void causalSoftmaxAndItsBackwardMatch() {
        for (long[] shape : new long[][]{{2, 3, 40, 40}, {1, 2, 19, 19}, {5, 5}}) {
            INDArray scores = rand(7, 2.0, shape);
            INDArray p = ND.causalSoftmax(scores.dup());
            INDArray q = vec.causalSoftmax(scores.dup());
            assertClose(p, q, "causal softmax " + java.util.Arrays.toString(shape));
            int t = (int) shape[shape.length - 1];
            INDArray block = q.reshape(-1, t, t);
            for (int i = 0; i < t; i++) {
                assertEquals(1.0, block.get(NDArrayIndex.point(0), NDArrayIndex.point(i), NDArrayIndex.all()).sumNumber().doubleValue(), 1e-5, "row " + i + " sums to 1");
                if (i + 1 < t) assertEquals(0.0, block.get(NDArrayIndex.all(), NDArrayIndex.point(i), NDArrayIndex.interval(i + 1, t)).maxNumber().doubleValue(), "above the diagonal");
            }
            INDArray dP = rand(8, 1.0, shape);
            assertClose(ND.causalSoftmaxBackwardInPlace(dP.dup(), p), vec.causalSoftmaxBackwardInPlace(dP.dup(), q),
                    "softmax backward " + java.util.Arrays.toString(shape));
        }
    }

    @Test
    void crossEntropyAndItsGradientMatch() {
        for (int v : new int[]{37, 1000}) {
            INDArray logits = rand(10, 3.0, 6, v);
            INDArray targets = Nd4j.createFromArray(3, -100, 0, v - 1, 17 % v, -100);
            for (double denominator : new double[]{-1, 10}) {
                INDArray a = logits.dup(), b = logits.dup();
                Kernels.LossSum la = ND.crossEntropyInPlace(a, targets, true, denominator);
                Kernels.LossSum lb = vec.crossEntropyInPlace(b, targets, true, denominator);
                assertEquals(4, la.count());
                assertEquals(la.count(), lb.count());
                assertEquals(la.sum(), lb.sum(), 1e-5 * Math.abs(la.sum()), "loss V=" + v);
                assertClose(a, b, "dL/dz V=" + v + " denominator " + denominator);
                assertEquals(0.0, b.getRow(1).norm1Number().doubleValue(), "an ignored row has no gradient");
            }
            Kernels.LossSum noGrad = vec.crossEntropyInPlace(logits.dup(), targets, false, -1);
            assertEquals(ND.crossEntropyInPlace(logits.dup(), targets, false, -1).sum(), noGrad.sum(), 1e-5 * Math.abs(noGrad.sum()));
        }
    }

    @Test
    void inputsTheVectorKernelsCannotAddressGiveTheNd4jResult() {
        INDArray wide = rand(9, 2.0, 6, 40);
        INDArray view = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(4, 36));      // strided rows
        assertTrue(view.isView());
        assertClose(ND.gelu(view.dup()), vec.gelu(view), "gelu of a view");
        INDArray g = Nd4j.ones(DataType.FLOAT, 32);
        assertClose(ND.normForward(view.dup(), g, null, 1e-6, true).out(), vec.normForward(view, g, null, 1e-6, true).out(), "norm of a view");
        INDArray d = wide.castTo(DataType.DOUBLE);
        assertEquals(DataType.DOUBLE, vec.gelu(d).dataType());
        assertClose(ND.gelu(d).castTo(DataType.FLOAT), vec.gelu(d).castTo(DataType.FLOAT), "gelu in fp64");
    }
}
