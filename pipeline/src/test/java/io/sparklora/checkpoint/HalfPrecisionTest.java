package io.sparklora.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class HalfPrecisionTest {

    private static short h(int bits) {
        return (short) bits;
    }

    @Test
    void decodesKnownHalfValues() {
        assertEquals(1.0f, HalfPrecision.halfToFloat(h(0x3c00)));
        assertEquals(-2.0f, HalfPrecision.halfToFloat(h(0xc000)));
        assertEquals(65504.0f, HalfPrecision.halfToFloat(h(0x7bff)));          // largest finite
        assertEquals(0x1p-14f, HalfPrecision.halfToFloat(h(0x0400)));          // smallest normal
        assertEquals(0x1p-24f, HalfPrecision.halfToFloat(h(0x0001)));          // smallest subnormal
        assertEquals(1023 * 0x1p-24f, HalfPrecision.halfToFloat(h(0x03ff)));   // largest subnormal
        assertEquals(Float.POSITIVE_INFINITY, HalfPrecision.halfToFloat(h(0x7c00)));
        assertEquals(Float.NEGATIVE_INFINITY, HalfPrecision.halfToFloat(h(0xfc00)));
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(HalfPrecision.halfToFloat(h(0x8000))));
        assertTrue(Float.isNaN(HalfPrecision.halfToFloat(h(0x7e00))));
        assertTrue(Float.isNaN(HalfPrecision.halfToFloat(h(0x7c01))));
    }

    @Test
    void everyHalfValueSurvivesAFloatRoundTrip() {
        for (int bits = 0; bits < 1 << 16; bits++) {
            float f = HalfPrecision.halfToFloat(h(bits));
            short back = HalfPrecision.floatToHalf(f);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfPrecision.halfToFloat(back)), "NaN 0x" + Integer.toHexString(bits));
            } else {
                assertEquals(bits, back & 0xffff, "half 0x" + Integer.toHexString(bits));
            }
        }
    }

    @Test
    void narrowingToHalfRoundsToNearestEven() {
        // For every pair of neighbouring positive finite halves, the midpoint goes to the even one,
        // and anything off the midpoint goes to the nearer one. Covers subnormals and normals.
        for (int bits = 0; bits < 0x7bff; bits++) {
            float lo = HalfPrecision.halfToFloat(h(bits));
            float hi = HalfPrecision.halfToFloat(h(bits + 1));
            float mid = (float) (((double) lo + hi) / 2); // exact: 12 significant bits fit in a float
            int even = (bits & 1) == 0 ? bits : bits + 1;
            assertEquals(even, HalfPrecision.floatToHalf(mid), "midpoint above 0x" + Integer.toHexString(bits));
            assertEquals(bits, HalfPrecision.floatToHalf(Math.nextDown(mid)));
            assertEquals(bits + 1, HalfPrecision.floatToHalf(Math.nextUp(mid)));
            assertEquals(bits | 0x8000, HalfPrecision.floatToHalf(-Math.nextDown(mid)) & 0xffff);
        }
    }

    @Test
    void narrowingToHalfHandlesRangeEdges() {
        assertEquals(0x7bff, HalfPrecision.floatToHalf(65519.99f));               // below the rounding point: max finite
        assertEquals(0x7c00, HalfPrecision.floatToHalf(65520f));                  // tie with 65536 goes to even = inf
        assertEquals(0x7c00, HalfPrecision.floatToHalf(1e6f));
        assertEquals(0xfc00, HalfPrecision.floatToHalf(-Float.MAX_VALUE) & 0xffff);
        assertEquals(0x7c00, HalfPrecision.floatToHalf(Float.POSITIVE_INFINITY));
        assertEquals(0x0000, HalfPrecision.floatToHalf(0x1p-25f));                // tie between 0 and 2^-24: even = 0
        assertEquals(0x0001, HalfPrecision.floatToHalf(Math.nextUp(0x1p-25f)));
        assertEquals(0x0000, HalfPrecision.floatToHalf(Float.MIN_VALUE));
        assertEquals(0x8000, HalfPrecision.floatToHalf(-0.0f) & 0xffff);
        assertEquals(0x0400, HalfPrecision.floatToHalf(Math.nextDown(0x1p-14f))); // rounds up into the normals
        assertTrue(Float.isNaN(HalfPrecision.halfToFloat(HalfPrecision.floatToHalf(Float.NaN))));
        // A NaN whose payload sits only in the low float bits must not turn into infinity.
        assertTrue(Float.isNaN(HalfPrecision.halfToFloat(HalfPrecision.floatToHalf(Float.intBitsToFloat(0x7f800001)))));
    }

    @Test
    void everyBfloat16ValueSurvivesAFloatRoundTrip() {
        for (int bits = 0; bits < 1 << 16; bits++) {
            float f = HalfPrecision.bfloat16ToFloat(h(bits));
            assertEquals(bits << 16, Float.floatToRawIntBits(f));
            short back = HalfPrecision.floatToBfloat16(f);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfPrecision.bfloat16ToFloat(back)));
            } else {
                assertEquals(bits, back & 0xffff, "bfloat16 0x" + Integer.toHexString(bits));
            }
        }
    }

    @Test
    void narrowingToBfloat16RoundsToNearestEven() {
        assertEquals(0x3f80, HalfPrecision.floatToBfloat16(1.0f));
        assertEquals(0x3f80, HalfPrecision.floatToBfloat16(1 + 0x1p-8f));          // tie between 0x3f80 and 0x3f81: even
        assertEquals(0x3f82, HalfPrecision.floatToBfloat16(1 + 3 * 0x1p-8f));      // tie between 0x3f81 and 0x3f82: even
        assertEquals(0x3f81, HalfPrecision.floatToBfloat16(Math.nextUp(1 + 0x1p-8f)));
        assertEquals(0x3f80, HalfPrecision.floatToBfloat16(Math.nextDown(1 + 0x1p-8f)));
        assertEquals(0xc060, HalfPrecision.floatToBfloat16(-3.5f) & 0xffff);
        assertEquals(0x7f80, HalfPrecision.floatToBfloat16(Float.MAX_VALUE));       // rounds up to infinity
        assertEquals(0x7f80, HalfPrecision.floatToBfloat16(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(HalfPrecision.bfloat16ToFloat(HalfPrecision.floatToBfloat16(Float.NaN))));
        assertTrue(Float.isNaN(HalfPrecision.bfloat16ToFloat(
                HalfPrecision.floatToBfloat16(Float.intBitsToFloat(0x7f800001)))));
    }

    @Test
    void bothNarrowingsStayWithinHalfAnUlp() {
        java.util.Random random = new java.util.Random(7);
        for (int i = 0; i < 100_000; i++) {
            float x = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(20) - 10));
            float viaHalf = HalfPrecision.halfToFloat(HalfPrecision.floatToHalf(x));
            float viaBf16 = HalfPrecision.bfloat16ToFloat(HalfPrecision.floatToBfloat16(x));
            if (Math.abs(x) >= 0x1p-14f) { // normal half range: relative error <= 2^-11
                assertTrue(Math.abs(viaHalf - x) <= Math.abs(x) * 0x1p-11f, x + " -> " + viaHalf);
            }
            assertTrue(Math.abs(viaBf16 - x) <= Math.abs(x) * 0x1p-8f, x + " -> " + viaBf16);
        }
    }
}
