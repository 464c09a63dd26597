package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Rotary position embedding in Hugging Face Llama's convention: the head dimension is split in two halves
 * (not interleaved pairs), x' = x·cos + rotate_half(x)·sin with rotate_half([x1, x2]) = [−x2, x1],
 * and angle(t, i) = t · inv_freq(i), inv_freq(i) = θ^(−2i/D) for i < D/2, repeated for both halves. A
 * {@link RopeScaling} (config.json's {@code rope_scaling}) changes inv_freq; dynamic scaling makes it depend
 * on the sequence length.
 *
 * <p>Shapes: x [B, H, T, D]; the cos/sin tables are [T, D] and broadcast over B and H.
 * The rotation is orthogonal, so backward is the same formula with sin negated.
 */
public final class RotaryEmbedding {
    private final int headDim;
    private final double theta;
    private final RopeScaling scaling;
    private final Map<String, INDArray[]> tables = new ConcurrentHashMap<>();

    public RotaryEmbedding(int headDim, double theta) {
        this(headDim, theta, RopeScaling.NONE);
    }

    public RotaryEmbedding(int headDim, double theta, RopeScaling scaling) {
        if (headDim % 2 != 0) throw new ModelConfigException("rotary embedding needs an even head dimension, got " + headDim);
        this.headDim = headDim;
        this.theta = theta;
        this.scaling = scaling;
    }

    public INDArray forward(INDArray x) { return rotate(x, false); }

    public INDArray backward(INDArray dy) { return rotate(dy, true); }

    /**
     * Inference with a KV cache: rotates x [B, h, t, D] whose token (b, i) sits at absolute position
     * {@code positions[b·t + i]}, in a sequence of {@code seqLen} positions so far within a cache of
     * {@code capacity}. The tables are those of the full {@link #forward} over the same positions (their rows do
     * not depend on the table's length), except under dynamic scaling past the original context, where inv_freq
     * depends on the length: new tokens then use the current length's, and keys already cached keep theirs
     * (as transformers' cache does). Returns a fresh array.
     */
    public INDArray forwardAt(INDArray x, int[] positions, int seqLen, int capacity) {
        long b = x.size(0), t = x.size(2);
        int tableLen = scaling.dependsOnLength(seqLen) ? seqLen : capacity;
        INDArray[] cs = tables(tableLen, x.dataType());
        INDArray cos = Nd4j.pullRows(cs[0], 1, positions).reshape('c', b, 1, t, headDim);
        INDArray sin = Nd4j.pullRows(cs[1], 1, positions).reshape('c', b, 1, t, headDim);
        INDArray r = x.mul(cos).addi(rotateHalf(x).muli(sin));
        Tensors.release(cos, sin);
        return r;
    }

    private INDArray rotate(INDArray x, boolean inverse) {
        int t = (int) x.size(2);
        INDArray[] cs = tables(t, x.dataType());
        INDArray sin = inverse ? cs[1].neg() : cs[1];
        return x.mul(cs[0]).addi(rotateHalf(x).muli(sin));
    }

    private INDArray rotateHalf(INDArray x) {
        int half = headDim / 2;
        INDArray x1 = x.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, half));
        INDArray x2 = x.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(half, headDim));
        return Nd4j.concat(3, x2.neg(), x1);
    }

    /** cos and sin tables [T, D] for positions 0..T−1, computed once per (T, dtype). */
    private INDArray[] tables(int t, DataType dtype) {
        return tables.computeIfAbsent(t + ":" + dtype, k -> {
            int half = headDim / 2;
            double[] cos = new double[t * headDim];
            double[] sin = new double[t * headDim];
            // Same float steps as transformers: inv_freq in fp32, angle = pos * inv_freq in fp32
            float[] invFreq = scaling.inverseFrequencies(headDim, theta, t);
            for (int pos = 0; pos < t; pos++) {
                for (int i = 0; i < half; i++) {
                    float angle = pos * invFreq[i];
                    double c = Math.cos(angle), s = Math.sin(angle);
                    cos[pos * headDim + i] = c;
                    cos[pos * headDim + i + half] = c;
                    sin[pos * headDim + i] = s;
                    sin[pos * headDim + i + half] = s;
                }
            }
            return new INDArray[]{
                    Nd4j.createFromArray(cos).reshape(t, headDim).castTo(dtype),
                    Nd4j.createFromArray(sin).reshape(t, headDim).castTo(dtype)};
        });
    }
}
