package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A batch for causal language modelling: input ids [B, T] and target ids [B, T], where a target of
 * {@link #IGNORE} (−100, Hugging Face's convention) is left out of the loss — prompt tokens and padding.
 */
public record TokenBatch(INDArray inputs, INDArray targets, int batch, int seq) {
    public static final int IGNORE = -100;

    public TokenBatch {
        if (inputs.rank() != 2 || !java.util.Arrays.equals(inputs.shape(), targets.shape())) {
            throw new IllegalArgumentException("inputs and targets must both be [B, T]; got "
                    + java.util.Arrays.toString(inputs.shape()) + " and " + java.util.Arrays.toString(targets.shape()));
        }
    }

    public static TokenBatch of(int[][] inputs, int[][] targets) {
        return new TokenBatch(Nd4j.createFromArray(inputs), Nd4j.createFromArray(targets), inputs.length, inputs[0].length);
    }

    /**
     * Next-token batch from blocks of length T+1: inputs are tokens 0..T−1, targets tokens 1..T.
     * {@code lossMask} (same shape as blocks, may be null) marks which tokens count as targets.
     */
    public static TokenBatch shifted(int[][] blocks, boolean[][] lossMask) {
        int b = blocks.length, t = blocks[0].length - 1;
        int[][] in = new int[b][t], tg = new int[b][t];
        for (int i = 0; i < b; i++) {
            if (blocks[i].length != t + 1) throw new IllegalArgumentException("block " + i + " has length " + blocks[i].length + ", expected " + (t + 1));
            System.arraycopy(blocks[i], 0, in[i], 0, t);
            for (int j = 0; j < t; j++) {
                boolean counts = lossMask == null || lossMask[i][j + 1];
                tg[i][j] = counts ? blocks[i][j + 1] : IGNORE;
            }
        }
        return of(in, tg);
    }

    public long tokens() { return (long) batch * seq; }

    /** Number of targets that count in the loss. */
    public long targetCount() { return targets.gte(0).castTo(org.nd4j.linalg.api.buffer.DataType.INT).sumNumber().longValue(); }
}
