package io.sparklora.report;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NiceScaleTest {

    @Test
    void zeroToSevenPointThreeGivesEvenTicks() {
        NiceScale s = NiceScale.of(0, 7.3, 5);
        assertEquals(List.of(0.0, 2.0, 4.0, 6.0, 8.0), s.ticks());
        assertEquals("0", s.label(0));
        assertEquals("8", s.label(8));
    }

    @Test
    void ticksAreRoundAndFreeOfFloatingPointNoise() {
        NiceScale s = NiceScale.of(0, 0.31, 6);
        assertEquals(List.of(0.0, 0.1, 0.2, 0.3, 0.4), s.ticks());
        assertEquals("0.3", s.label(s.ticks().get(3)));
        assertEquals(List.of(3.0, 3.5, 4.0, 4.5, 5.0, 5.5), NiceScale.of(3.2, 5.1, 6).ticks());
        assertEquals("3.5", NiceScale.of(3.2, 5.1, 6).label(3.5));
        assertEquals(List.of(0.0, 50.0, 100.0, 150.0), NiceScale.ofIntegers(1, 150, 6).ticks());
        assertEquals("1,000", NiceScale.of(0, 4321, 5).label(1000));
        for (double[] range : new double[][] {{0.0013, 0.0071}, {-3.7, 12.2}, {1e6, 3.3e6}, {98.2, 98.9}, {0, 1}}) {
            NiceScale scale = NiceScale.of(range[0], range[1], 6);
            assertTrue(scale.min() <= range[0] && scale.max() >= range[1], "covers the data");
            double mantissa = scale.step() / Math.pow(10, Math.floor(Math.log10(scale.step())));
            assertTrue(Math.abs(mantissa - 1) < 1e-9 || Math.abs(mantissa - 2) < 1e-9 || Math.abs(mantissa - 5) < 1e-9,
                    "step " + scale.step() + " is 1, 2 or 5 times a power of ten");
            assertTrue(scale.ticks().size() >= 3 && scale.ticks().size() <= 11, scale.ticks().toString());
            for (double t : scale.ticks()) {
                double steps = t / scale.step();
                assertEquals(Math.rint(steps), steps, 1e-9, "tick " + t + " is a multiple of the step");
                assertTrue(Double.toString(t).length() <= 12, "no floating-point noise in " + t);
            }
        }
    }

    @Test
    void integerScalesNeverStepBelowOne() {
        NiceScale s = NiceScale.ofIntegers(1, 3, 6);
        assertEquals(1.0, s.step());
        assertEquals(List.of(1.0, 2.0, 3.0), s.ticks());
    }

    @Test
    void degenerateRangesStillGiveAnAxis() {
        NiceScale one = NiceScale.of(4.2, 4.2, 5);
        assertTrue(one.min() < 4.2 && one.max() > 4.2);
        NiceScale zero = NiceScale.of(0, 0, 5);
        assertTrue(zero.min() < 0 && zero.max() > 0);
        NiceScale nan = NiceScale.of(Double.NaN, 1, 5);
        assertTrue(nan.ticks().size() >= 2);
        NiceScale reversed = NiceScale.of(10, 0, 5);
        assertEquals(0.0, reversed.min());
        assertEquals(10.0, reversed.max());
        assertEquals(0.5, reversed.fraction(5), 1e-12);
    }

    @Test
    void niceNumbers() {
        assertEquals(10, NiceScale.niceNumber(7.3, false));
        assertEquals(5, NiceScale.niceNumber(7.3 / 2, true));
        assertEquals(2, NiceScale.niceNumber(2.5, true));
        assertEquals(0.2, NiceScale.niceNumber(0.17, false));
        assertEquals(1000, NiceScale.niceNumber(999, false));
    }
}
