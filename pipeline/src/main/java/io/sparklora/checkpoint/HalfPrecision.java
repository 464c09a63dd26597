package io.sparklora.checkpoint;

/**
 * Bit-level conversions between float and the two 16-bit float formats found in checkpoints:
 * IEEE 754 binary16 (F16) and bfloat16 (BF16). Java 17 has no Float.float16ToFloat, and going
 * through ND4J casts would need an array per value. Narrowing rounds to nearest, ties to even,
 * like numpy and PyTorch, so values we write match what Python would have written.
 */
public final class HalfPrecision {

    /** Every binary16 bit pattern widened once: 256 KiB, and decoding becomes one array load. */
    private static final float[] HALF_TO_FLOAT = new float[1 << 16];

    static {
        for (int h = 0; h < HALF_TO_FLOAT.length; h++) {
            HALF_TO_FLOAT[h] = decodeHalf(h);
        }
    }

    private HalfPrecision() {
    }

    /** binary16 bits → float. Exact: every binary16 value (subnormals, ±inf, NaN) is a float. */
    public static float halfToFloat(short bits) {
        return HALF_TO_FLOAT[bits & 0xffff];
    }

    /** bfloat16 bits → float. Exact: bfloat16 is the upper half of a float. */
    public static float bfloat16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** float → binary16 bits, rounding to nearest even; overflow gives ±inf, NaN stays NaN. */
    public static short floatToHalf(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs >= 0x7f800000) {
            if (abs == 0x7f800000) {
                return (short) (sign | 0x7c00);
            }
            // NaN: keep the top payload bits and force the quiet bit so the mantissa cannot become 0 (= inf).
            return (short) (sign | 0x7c00 | 0x0200 | ((abs >>> 13) & 0x03ff));
        }
        if (abs >= 0x47800000) { // >= 65536: beyond the largest finite half (65504) even before rounding
            return (short) (sign | 0x7c00);
        }
        if (abs >= 0x38800000) { // >= 2^-14: a normal half
            // Rebias the exponent (127 -> 15) and keep 10 mantissa bits; the 13 dropped bits decide rounding.
            int half = (abs - 0x38000000) >>> 13;
            int dropped = abs & 0x1fff;
            if (dropped > 0x1000 || (dropped == 0x1000 && (half & 1) != 0)) {
                half++; // a carry may roll into the exponent, up to 0x7c00 = inf, which is the right answer
            }
            return (short) (sign | half);
        }
        if (abs <= 0x33000000) { // <= 2^-25: half way to the smallest subnormal or less, rounds (to even) to 0
            return (short) sign;
        }
        // Subnormal half: value / 2^-24, from the 24-bit significand shifted right by (126 - exponent).
        int exponent = abs >>> 23;
        int significand = (abs & 0x007fffff) | 0x00800000;
        int shift = 126 - exponent;
        int half = significand >>> shift;
        int dropped = significand & ((1 << shift) - 1);
        int halfway = 1 << (shift - 1);
        if (dropped > halfway || (dropped == halfway && (half & 1) != 0)) {
            half++; // may carry into the smallest normal (0x0400), which is again correct
        }
        return (short) (sign | half);
    }

    /** float → bfloat16 bits, rounding to nearest even; NaN stays NaN. */
    public static short floatToBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            // NaN: truncating could clear every remaining mantissa bit and give inf, so set the quiet bit.
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    private static float decodeHalf(int h) {
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1f;
        int mantissa = h & 0x03ff;
        if (exponent == 0x1f) { // inf or NaN; NaN payload carried over
            return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
        }
        if (exponent != 0) { // normal: rebias 15 -> 127
            return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
        }
        float magnitude = mantissa * 0x1p-24f; // zero or subnormal; exact (mantissa < 2^10)
        return sign != 0 ? -magnitude : magnitude;
    }
}
