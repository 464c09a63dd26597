package io.sparklora.quant;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** NF4: the code table, the rounding, the nibble order, the error bound, double quantization and the bytes held. */
class Nf4Test {
    /** The QLoRA paper's NF4 values (appendix E), as printed there. */
    private static final double[] PAPER = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
            0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};

    private static int nearest(float x) {
        int best = 0;
        for (int i = 1; i < 16; i++) if (Math.abs(x - Nf4.CODE[i]) < Math.abs(x - Nf4.CODE[best])) best = i;
        return best;
    }

    @Test
    void theCodeTableIsThePapersAndRoundingIsToTheNearestValue() {
        for (int i = 0; i < 16; i++) assertEquals((float) PAPER[i], Nf4.CODE[i], 0f, "code " + i);
        Random r = new Random(1);
        for (int k = 0; k < 200_000; k++) {
            float x = r.nextFloat() * 2 - 1;
            assertEquals(nearest(x), Nf4.encode(x), "x = " + x);
        }
        for (int i = 0; i < 15; i++) {
            float t = Nf4.THRESHOLD[i];
            assertEquals(i, Nf4.encode(t), "exactly on a midpoint: the lower value");
            assertEquals(i + 1, Nf4.encode(Math.nextUp(t)));
        }
        assertEquals(0, Nf4.encode(-1f));
        assertEquals(7, Nf4.encode(0f));
        assertEquals(15, Nf4.encode(1f));
    }

    @Test
    void blocksOfSixtyFourTheHighNibbleFirstAndEveryElementWithinHalfACodeGap() {
        Random r = new Random(2);
        float[] w = new float[64 * 10 + 13];      // a partial last block
        for (int i = 0; i < w.length; i++) w[i] = (float) (r.nextGaussian() * 0.02);
        float[] absmax = new float[Nf4.blocks(w.length)];
        byte[] packed = Nf4.quantize(w, absmax);
        assertEquals((w.length + 1) / 2, packed.length);
        assertEquals(11, absmax.length);
        for (int b = 0; b < absmax.length; b++) {
            float m = 0;
            for (int i = b * 64; i < Math.min(w.length, b * 64 + 64); i++) m = Math.max(m, Math.abs(w[i]));
            assertEquals(m, absmax[b], 0f, "block " + b);
        }
        assertEquals(nearest(w[0] / absmax[0]), (packed[0] & 0xFF) >>> 4, "element 0 in the high nibble");
        assertEquals(nearest(w[1] / absmax[0]), packed[0] & 0x0F, "element 1 in the low nibble");
        float[] back = new float[w.length];
        Nf4.dequantize(packed, absmax, 0, w.length, back, 0);
        for (int i = 0; i < w.length; i++) {
            int q = Nf4.code(packed, i);
            float a = absmax[i / 64];
            double below = q == 0 ? 0 : (Nf4.CODE[q] - Nf4.CODE[q - 1]) / 2.0, above = q == 15 ? 0 : (Nf4.CODE[q + 1] - Nf4.CODE[q]) / 2.0;
            double err = w[i] - back[i];
            assertTrue(err <= above * a * (1 + 1e-6) + 1e-12 && -err <= below * a * (1 + 1e-6) + 1e-12,
                    "element " + i + " off by " + err + ", more than half a code gap of its block's scale " + a);
        }
        // the element with the block's largest magnitude comes back exactly
        int arg = 0;
        for (int i = 1; i < 64; i++) if (Math.abs(w[i]) > Math.abs(w[arg])) arg = i;
        assertEquals(w[arg], back[arg], 0f);
    }

    @Test
    void nf4HasALowerErrorThanAUniformFourBitGridOnNormalWeights() {
        Random r = new Random(3);
        float[] w = new float[64 * 4096];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        float[] absmax = new float[Nf4.blocks(w.length)];
        byte[] packed = Nf4.quantize(w, absmax);
        float[] back = new float[w.length];
        Nf4.dequantize(packed, absmax, 0, w.length, back, 0);
        double nf4 = 0, uniform = 0;
        for (int i = 0; i < w.length; i++) {
            nf4 += (w[i] - back[i]) * (double) (w[i] - back[i]);
            double x = w[i] / absmax[i / 64];
            double u = Math.rint((x + 1) * 7.5) / 7.5 - 1;          // 16 evenly spaced values on [−1, 1]
            double d = w[i] - u * absmax[i / 64];
            uniform += d * d;
        }
        nf4 /= w.length;
        uniform /= w.length;
        // measured: 0.00845 against 0.01008 (seed 3, 262,144 N(0, 1) weights)
        assertTrue(nf4 < 0.9 * uniform, "NF4 mean squared error " + nf4 + " against uniform " + uniform);
    }

    @Test
    void doubleQuantizedAbsmaxComeBackWithinHalfADynamicMapStepAndTheBytesAreExact() {
        Random r = new Random(4);
        float[] absmax = new float[256 * 3 + 5];
        for (int i = 0; i < absmax.length; i++) absmax[i] = (float) (0.05 + 0.02 * Math.abs(r.nextGaussian()));
        DoubleQuant dq = DoubleQuant.of(absmax);
        assertEquals(256, DoubleQuant.DYNAMIC_MAP.length);
        // bitsandbytes' signed map ends at −(0.9859375 + 1)/2 below and at 1 above (it adds 1.0, not −1.0)
        assertEquals(-0.99296875f, DoubleQuant.DYNAMIC_MAP[0], 1e-7f);
        assertEquals(0f, DoubleQuant.DYNAMIC_MAP[127], 0f);
        assertEquals(1f, DoubleQuant.DYNAMIC_MAP[255], 0f);
        double mean = 0;
        for (float a : absmax) mean += a;
        assertEquals(mean / absmax.length, dq.offset(), 1e-7);
        float[] back = dq.absmax();
        double maxStep = 0;
        for (int i = 1; i < 256; i++) maxStep = Math.max(maxStep, DoubleQuant.DYNAMIC_MAP[i] - DoubleQuant.DYNAMIC_MAP[i - 1]);
        for (int i = 0; i < absmax.length; i++) {
            double bound = dq.nestedAbsmax()[i / 256] * maxStep / 2 * (1 + 1e-5);
            assertTrue(Math.abs(absmax[i] - back[i]) <= bound, "absmax " + i + " off by " + Math.abs(absmax[i] - back[i]) + " > " + bound);
        }
        assertEquals(absmax.length + 4L * 4 + 4, dq.bytes());
        // bits per parameter of a 768 x 2304 weight: 4.5 with fp32 absmax, 4.127 with double quantization
        long n = 768L * 2304, blocks = Nf4.blocks(n);
        assertEquals(4.5, (n / 2 + 4 * blocks) * 8.0 / n, 1e-12);
        assertEquals(4 + 8.0 / 64 + 32.0 / (64 * 256), (n / 2 + blocks + 4 * ((blocks + 255) / 256) + 4) * 8.0 / n, 1e-4);
    }
}
