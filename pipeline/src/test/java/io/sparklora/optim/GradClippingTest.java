package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class GradClippingTest {

    private static Parameter withGrad(String name, boolean trainable, double... grad) {
        Parameter p = new Parameter(name, Nd4j.zeros(DataType.DOUBLE, grad.length), trainable, "x");
        p.accumulate(Nd4j.createFromArray(grad));
        return p;
    }

    @Test
    void scalesToExactlyTheMaxNormAndReturnsThePreClipNorm() {
        Parameter a = withGrad("a", true, 3, 0);
        Parameter b = withGrad("b", true, 0, 4, 0);   // global norm = 5
        Parameter frozen = withGrad("f", false, 100, 100);
        List<Parameter> params = List.of(a, b, frozen);

        assertEquals(5.0, GradClipping.globalNorm(params), 1e-12);
        assertEquals(5.0, GradClipping.clip(params, 1.0), 1e-12);
        assertEquals(1.0, GradClipping.globalNorm(params), 1e-12);
        assertArrayEquals(new double[]{0.6, 0}, a.grad().toDoubleVector(), 1e-12);
        assertArrayEquals(new double[]{0, 0.8, 0}, b.grad().toDoubleVector(), 1e-12);
        assertNull(frozen.grad());
    }

    @Test
    void leavesGradientsBelowTheMaxUntouched() {
        Parameter a = withGrad("a", true, 0.3, -0.4);
        assertEquals(0.5, GradClipping.clip(List.of(a), 1.0), 1e-12);
        assertArrayEquals(new double[]{0.3, -0.4}, a.grad().toDoubleVector(), 0.0);
    }

    @Test
    void nonFiniteNormIsReportedAndGradientsAreLeftForTheCallerToSkip() {
        Parameter a = withGrad("a", true, Double.NaN, 1);
        Parameter b = withGrad("b", true, 2, 2);
        assertTrue(Double.isNaN(GradClipping.clip(List.of(a, b), 1.0)));
        assertArrayEquals(new double[]{2, 2}, b.grad().toDoubleVector(), 0.0);
    }

    @Test
    void float32GradientsAreAccumulatedInDouble() {
        Parameter p = new Parameter("f", Nd4j.zeros(DataType.FLOAT, 2, 2), true, "x");
        p.accumulate(Nd4j.createFromArray(3f, 4f, 0f, 0f).reshape(2, 2));
        assertEquals(5.0, GradClipping.clip(List.of(p), 2.5), 1e-6);
        assertArrayEquals(new double[]{1.5, 2.0, 0, 0}, p.grad().reshape(-1).toDoubleVector(), 1e-6);
    }

    @Test
    void rejectsNonPositiveMax() {
        assertThrows(IllegalArgumentException.class, () -> GradClipping.clip(List.of(), 0.0));
    }
}
