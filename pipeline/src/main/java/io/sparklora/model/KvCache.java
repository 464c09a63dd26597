package io.sparklora.model;

import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.List;

/**
 * The keys and values of every layer for incremental decoding (inference only), preallocated to a capacity.
 *
 * <p>Rows of a batch may have prompts of different lengths: each row is left-padded to the longest, so that
 * all rows append their next token at the same slot. Row b's first {@code pad[b]} slots hold padding, which
 * attention never reads (an additive mask of −1e9 over those key slots), and the token in slot s sits at
 * absolute position s − pad[b], so a row sees exactly the positions and keys it would see alone.
 *
 * <p>Shapes, per layer: keys and values [B, Hkv, capacity, D] (before grouped-query repetition; keys already
 * rotated); slots 0 .. {@link #length()}−1 are filled. The key mask is [B, 1, 1, capacity].
 */
public final class KvCache {
    private final int batch;
    private final int capacity;
    private final int[] pad;
    private final List<INDArray> keys = new ArrayList<>();
    private final List<INDArray> values = new ArrayList<>();
    private final INDArray padMask;          // [B, 1, 1, capacity]: −1e9 on padding slots, 0 elsewhere
    private int length;

    /**
     * An empty cache for {@code batch} rows of at most {@code capacity} slots each (padding included), for a
     * model with {@code layers} layers of {@code kvHeads} key/value heads of {@code headDim}.
     */
    public KvCache(int layers, int batch, int kvHeads, int headDim, int capacity, int[] pad, DataType dtype) {
        if (batch <= 0 || capacity <= 0) throw new IllegalArgumentException("KV cache: batch " + batch + " and capacity " + capacity + " must be positive");
        if (pad.length != batch) throw new IllegalArgumentException("KV cache: " + pad.length + " padding counts for " + batch + " rows");
        this.batch = batch;
        this.capacity = capacity;
        this.pad = pad.clone();
        for (int i = 0; i < layers; i++) {
            keys.add(Nd4j.create(dtype, batch, kvHeads, capacity, headDim));
            values.add(Nd4j.create(dtype, batch, kvHeads, capacity, headDim));
        }
        float[] m = new float[batch * capacity];
        for (int b = 0; b < batch; b++) {
            if (pad[b] < 0 || pad[b] >= capacity) throw new IllegalArgumentException("KV cache: row " + b + " has padding " + pad[b] + ", capacity " + capacity);
            for (int s = 0; s < pad[b]; s++) m[b * capacity + s] = -1e9f;
        }
        padMask = Nd4j.createFromArray(m).reshape(batch, 1, 1, capacity).castTo(dtype);
    }

    public int batch() { return batch; }
    public int capacity() { return capacity; }
    /** Filled slots (the same for every row; padding included). */
    public int length() { return length; }
    /** Padding slots at the start of row {@code b}. */
    public int pad(int b) { return pad[b]; }

    /** Absolute positions [B·t] of the next {@code t} tokens of each row (padding slots get position 0). */
    int[] positions(int t) {
        int[] p = new int[batch * t];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < t; i++) p[b * t + i] = Math.max(0, length + i - pad[b]);
        }
        return p;
    }

    /**
     * Writes layer {@code layer}'s keys and values of the next t tokens ([B, Hkv, t, D]) into slots
     * length .. length+t−1 and returns views of every filled slot, 0 .. length+t−1: {keys, values}.
     * The cache's length moves on only in {@link #advance}, after the last layer.
     */
    INDArray[] append(int layer, INDArray k, INDArray v) {
        long t = k.size(2);
        if (length + t > capacity) {
            throw new IllegalStateException("KV cache is full: " + length + " + " + t + " slots exceed its capacity " + capacity);
        }
        INDArray kc = keys.get(layer), vc = values.get(layer);
        kc.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(length, length + t), NDArrayIndex.all()).assign(k);
        vc.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(length, length + t), NDArrayIndex.all()).assign(v);
        long end = length + t;
        return new INDArray[]{
                kc.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, end), NDArrayIndex.all()),
                vc.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, end), NDArrayIndex.all())};
    }

    /**
     * The additive mask [B, 1, t, length+t] for t new queries: padding keys, and within the new tokens the
     * causal upper triangle, are −1e9.
     */
    INDArray mask(int t, DataType dtype) {
        int keysNow = length + t;
        INDArray m = padMask.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, keysNow)).dup('c');
        if (t == 1) return m;
        INDArray full = m.repeat(2, t);                                     // [B, 1, t, keys]
        INDArray causal = Kernels.causalMask(t, dtype);          // [t, t]
        full.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(length, keysNow)).addi(causal);
        Tensors.release(m);
        return full;
    }

    /** Marks the t tokens every layer has appended as filled. */
    void advance(int t) { length += t; }

    /** Frees the cache's buffers. */
    public void release() {
        keys.forEach(Tensors::release);
        values.forEach(Tensors::release);
        Tensors.release(padMask);
    }
}
