package io.sparklora.optim;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class LrScheduleTest {
    private static final double TOL = 1e-12;

    @Test
    void warmupRisesLinearlyToThePeak() {
        LrSchedule s = LrSchedule.parse("cosine", 10, 110, 0.1);
        assertEquals(0.1, s.factor(0), TOL);   // first step already moves the weights
        assertEquals(0.5, s.factor(4), TOL);   // mid-warmup
        assertEquals(1.0, s.factor(9), TOL);   // last warmup step runs at the peak
        assertEquals(1.0, s.factor(10), TOL);  // decay starts from the peak
    }

    @Test
    void cosineDecaysToTheMinRatio() {
        LrSchedule s = LrSchedule.parse("cosine", 10, 110, 0.1);
        assertEquals(0.1 + 0.9 * 0.5, s.factor(60), TOL); // half-way through decay
        assertEquals(0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.99)), s.factor(109), TOL); // final step
        assertEquals(0.1, s.factor(110), TOL);
        assertEquals(0.1, s.factor(10_000), TOL);  // stays at the floor past the end
    }

    @Test
    void linearDecaysToTheMinRatio() {
        LrSchedule s = LrSchedule.parse("Linear", 4, 24, 0.0);
        assertEquals(0.25, s.factor(0), TOL);
        assertEquals(1.0, s.factor(3), TOL);
        assertEquals(0.5, s.factor(14), TOL);
        assertEquals(0.05, s.factor(23), TOL);
        assertEquals(0.0, s.factor(24), TOL);
    }

    @Test
    void constantHoldsThePeakAfterWarmup() {
        LrSchedule s = LrSchedule.parse(" constant ", 2, 100, 0.3);
        assertEquals(0.5, s.factor(0), TOL);
        assertEquals(1.0, s.factor(1), TOL);
        assertEquals(1.0, s.factor(50), TOL);
        assertEquals(1.0, s.factor(99), TOL);
    }

    @Test
    void noWarmupStartsAtThePeak() {
        LrSchedule s = new LrSchedule(LrSchedule.Decay.LINEAR, 0, 10, 0.0);
        assertEquals(1.0, s.factor(0), TOL);
        assertEquals(0.1, s.factor(9), TOL);
    }

    @Test
    void unknownNameListsTheValidOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LrSchedule.parse("step", 0, 10, 0));
        assertTrue(e.getMessage().contains("'step'"), e.getMessage());
        assertTrue(e.getMessage().contains("cosine, linear, constant"), e.getMessage());
    }

    @Test
    void rejectsInconsistentSettings() {
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.parse("cosine", 20, 10, 0));
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.parse("cosine", 0, 10, 1.5));
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.parse("cosine", 0, 10, 0).factor(-1));
    }
}
