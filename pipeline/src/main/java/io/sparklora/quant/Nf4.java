package io.sparklora.quant;

/**
 * 4-bit NormalFloat (NF4), the data type of QLoRA (Dettmers et al., 2023): 16 values that are the quantiles of a
 * standard normal distribution, scaled to [−1, 1], with an exact zero. A tensor is quantized in blocks of
 * {@link #BLOCK} consecutive elements (row-major): each block keeps its absolute maximum (absmax) in fp32 and each
 * element the index of the code value nearest to element/absmax. Two indices share a byte, the first in the high
 * nibble, as bitsandbytes packs them.
 *
 * <p>The code values are the paper's (its appendix) and bitsandbytes' ({@code get_4bit_type("nf4")}); the rounding is
 * to the nearest value, the thresholds being the midpoints between neighbouring values (an element exactly on a
 * midpoint takes the lower value, as bitsandbytes' {@code dQuantizeNF4} decision tree does with {@code x > t}).
 *
 * <p>Bits per parameter: 4 + 32/64 = 4.5 with fp32 absmax; with double quantization ({@link DoubleQuant}) the absmax
 * take 8 bits each plus one fp32 per 256 of them: 4 + 8/64 + 32/(64·256) = 4.127.
 */
public final class Nf4 {
    /** Elements per absmax block. */
    public static final int BLOCK = 64;

    /** The 16 NF4 values, index = the 4-bit code. */
    public static final float[] CODE = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
            -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
            0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
            0.7229568362236023f, 1.0f};

    /** Midpoints between neighbouring code values: a normalized element above THRESHOLD[i] has a code above i. */
    static final float[] THRESHOLD = new float[15];

    static {
        for (int i = 0; i < 15; i++) THRESHOLD[i] = (float) (((double) CODE[i] + CODE[i + 1]) / 2);
    }

    private Nf4() {}

    /** The code of a normalized value x ∈ [−1, 1]: the number of thresholds it lies above (nearest value). */
    public static int encode(float x) {
        int lo = 0, hi = 15;      // binary search over the 15 sorted thresholds
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (x > THRESHOLD[mid]) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /** Blocks of an n-element tensor. */
    public static int blocks(long n) { return (int) ((n + BLOCK - 1) / BLOCK); }

    /** Quantizes {@code w} (row-major) into packed nibbles, ⌈n/2⌉ bytes, and per-block absmax (into {@code absmax}). */
    public static byte[] quantize(float[] w, float[] absmax) {
        int n = w.length;
        if (absmax.length != blocks(n)) throw new IllegalArgumentException("absmax has " + absmax.length + " entries for " + blocks(n) + " blocks");
        byte[] packed = new byte[(n + 1) / 2];
        for (int b = 0; b < absmax.length; b++) {
            int from = b * BLOCK, to = Math.min(n, from + BLOCK);
            float m = 0;
            for (int i = from; i < to; i++) m = Math.max(m, Math.abs(w[i]));
            absmax[b] = m;
            float inv = m == 0 ? 0 : 1.0f / m;
            for (int i = from; i < to; i++) {
                int q = encode(w[i] * inv);
                if ((i & 1) == 0) packed[i >> 1] = (byte) (q << 4);
                else packed[i >> 1] |= (byte) q;
            }
        }
        return packed;
    }

    /** The code of element i of a packed tensor. */
    public static int code(byte[] packed, long i) {
        int b = packed[(int) (i >> 1)] & 0xFF;
        return (i & 1) == 0 ? b >>> 4 : b & 0x0F;
    }

    /** Elements [from, to) dequantized into {@code out} starting at {@code outOffset}, given every block's absmax. */
    public static void dequantize(byte[] packed, float[] absmax, long from, long to, float[] out, int outOffset) {
        for (long i = from; i < to; i++) out[outOffset + (int) (i - from)] = CODE[code(packed, i)] * absmax[(int) (i / BLOCK)];
    }
}
