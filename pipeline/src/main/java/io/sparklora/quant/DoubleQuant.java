package io.sparklora.quant;

/**
 * QLoRA's double quantization of the NF4 absmax constants, as bitsandbytes does it ({@code compress_statistics}):
 * subtract their mean (the offset), then quantize them blockwise to 8 bits in blocks of {@link #BLOCK} with
 * bitsandbytes' signed dynamic map ({@link #DYNAMIC_MAP}), each block keeping its own fp32 absmax. Dequantized:
 * DYNAMIC_MAP[q]·nestedAbsmax[block] + offset.
 *
 * @param codes        one byte per NF4 block
 * @param nestedAbsmax one fp32 per {@link #BLOCK} codes
 * @param offset       the mean that was subtracted
 * @param map          the 256 code values ({@link #DYNAMIC_MAP} when quantized here; a loaded checkpoint's own
 *                     {@code nested_quant_map} otherwise, so its values are used exactly as written)
 */
public record DoubleQuant(byte[] codes, float[] nestedAbsmax, float offset, float[] map) {
    public static final int BLOCK = 256;

    public DoubleQuant {
        if (map.length != 256) throw new IllegalArgumentException("the nested quant map has " + map.length + " values, expected 256");
    }

    public DoubleQuant(byte[] codes, float[] nestedAbsmax, float offset) { this(codes, nestedAbsmax, offset, DYNAMIC_MAP); }

    /**
     * bitsandbytes' {@code create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)}: for exponents i = 0..6,
     * ±10^(i−6)·m for the midpoints m of linspace(0.1, 1, 2^i + 1), then 0 and 1, sorted (256 values, in float32).
     */
    public static final float[] DYNAMIC_MAP = dynamicMap();

    private static float[] dynamicMap() {
        float[] v = new float[256];
        int k = 0;
        for (int i = 0; i < 7; i++) {
            int items = (1 << i) + 1;
            float scale = (float) Math.pow(10, -6 + i);
            float step = (1.0f - 0.1f) / (items - 1);
            for (int j = 0; j + 1 < items; j++) {
                float a = 0.1f + step * j, b = 0.1f + step * (j + 1);
                float mean = (a + b) / 2.0f;
                v[k++] = scale * mean;
                v[k++] = -scale * mean;
            }
        }
        v[k++] = 0f;
        v[k++] = 1.0f;
        if (k != 256) throw new IllegalStateException("dynamic map has " + k + " values");
        java.util.Arrays.sort(v);
        return v;
    }

    /** The nearest map value's index for a normalized x ∈ [−1, 1] (binary search, then the closer neighbour). */
    static int encode(float x) {
        int i = java.util.Arrays.binarySearch(DYNAMIC_MAP, x);
        if (i >= 0) return i;
        int hi = -i - 1;
        if (hi == 0) return 0;
        if (hi == 256) return 255;
        return x - DYNAMIC_MAP[hi - 1] <= DYNAMIC_MAP[hi] - x ? hi - 1 : hi;
    }

    /** Double-quantizes NF4 absmax values. */
    public static DoubleQuant of(float[] absmax) {
        double sum = 0;
        for (float a : absmax) sum += a;
        float offset = absmax.length == 0 ? 0 : (float) (sum / absmax.length);
        int blocks = (absmax.length + BLOCK - 1) / BLOCK;
        float[] nested = new float[blocks];
        byte[] codes = new byte[absmax.length];
        for (int b = 0; b < blocks; b++) {
            int from = b * BLOCK, to = Math.min(absmax.length, from + BLOCK);
            float m = 0;
            for (int i = from; i < to; i++) m = Math.max(m, Math.abs(absmax[i] - offset));
            nested[b] = m;
            float inv = m == 0 ? 0 : 1.0f / m;
            for (int i = from; i < to; i++) codes[i] = (byte) encode((absmax[i] - offset) * inv);
        }
        return new DoubleQuant(codes, nested, offset);
    }

    /** The absmax of NF4 block {@code i}. */
    public float absmax(int i) { return map[codes[i] & 0xFF] * nestedAbsmax[i / BLOCK] + offset; }

    /** Every absmax, dequantized. */
    public float[] absmax() {
        float[] a = new float[codes.length];
        for (int i = 0; i < a.length; i++) a[i] = absmax(i);
        return a;
    }

    /** Bytes held: one per code, four per nested absmax and the offset. */
    public long bytes() { return codes.length + 4L * nestedAbsmax.length + 4; }
}
