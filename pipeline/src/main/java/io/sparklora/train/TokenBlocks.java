package io.sparklora.train;

import io.sparklora.model.TokenBatch;

import java.util.ArrayList;
import java.util.List;

/**
 * Token blocks for causal language modelling: each block holds T+1 tokens (inputs are the first T,
 * targets the last T) and a loss mask over the same positions, false for prompt tokens and padding.
 * Documents are concatenated with an end-of-document token between them and cut into blocks, so no
 * token is wasted on padding except at the very end.
 */
public final class TokenBlocks {
    private final int seqLen;
    private final List<int[]> tokens = new ArrayList<>();
    private final List<boolean[]> masks = new ArrayList<>();

    public TokenBlocks(int seqLen) {
        if (seqLen < 2) throw new IllegalArgumentException("sequence length must be at least 2, got " + seqLen);
        this.seqLen = seqLen;
    }

    /** Packs documents (already tokenized) into blocks; {@code loss[i]} marks which tokens of doc i are targets (null: all). */
    public static TokenBlocks pack(List<int[]> docs, List<boolean[]> loss, int eosId, int seqLen, int padId) {
        TokenBlocks b = new TokenBlocks(seqLen);
        int[] cur = new int[seqLen + 1];
        boolean[] curMask = new boolean[seqLen + 1];
        int fill = 0;
        for (int d = 0; d < docs.size(); d++) {
            int[] doc = docs.get(d);
            boolean[] m = loss == null ? null : loss.get(d);
            for (int i = 0; i <= doc.length; i++) {
                boolean isEos = i == doc.length;
                cur[fill] = isEos ? eosId : doc[i];
                curMask[fill] = isEos || m == null || m[i];
                fill++;
                if (fill == seqLen + 1) {
                    b.add(cur.clone(), curMask.clone());
                    // the last token of a block starts the next one, so every token is a target once
                    cur[0] = cur[seqLen];
                    curMask[0] = curMask[seqLen];
                    fill = 1;
                }
            }
        }
        if (fill > 1) {
            for (int i = fill; i <= seqLen; i++) {
                cur[i] = padId;
                curMask[i] = false;
            }
            b.add(cur.clone(), curMask.clone());
        }
        return b;
    }

    public void add(int[] block, boolean[] lossMask) {
        if (block.length != seqLen + 1 || lossMask.length != seqLen + 1) {
            throw new IllegalArgumentException("block of length " + block.length + ", expected " + (seqLen + 1));
        }
        tokens.add(block);
        masks.add(lossMask);
    }

    public int seqLen() { return seqLen; }
    public int size() { return tokens.size(); }
    public int[] block(int i) { return tokens.get(i); }
    public boolean[] mask(int i) { return masks.get(i); }

    /** The batch of the given block indices. */
    public TokenBatch batch(int[] indices) {
        int[][] t = new int[indices.length][];
        boolean[][] m = new boolean[indices.length][];
        for (int i = 0; i < indices.length; i++) {
            t[i] = tokens.get(indices[i]);
            m[i] = masks.get(indices[i]);
        }
        return TokenBatch.shifted(t, m);
    }

    /** How many targets {@link #batch}{@code (indices)} would count in the loss ({@link TokenBatch#targetCount()}), without building it. */
    public long targetCount(int[] indices) {
        long n = 0;
        for (int i : indices) {
            int[] b = tokens.get(i);
            boolean[] m = masks.get(i);
            for (int j = 1; j < b.length; j++) if (m[j] && b[j] >= 0) n++;
        }
        return n;
    }

    /** Splits off every k-th block (deterministically) as a held-out set. */
    public TokenBlocks[] splitEvery(int k) {
        TokenBlocks train = new TokenBlocks(seqLen), held = new TokenBlocks(seqLen);
        for (int i = 0; i < size(); i++) (i % k == k - 1 ? held : train).add(tokens.get(i), masks.get(i));
        return new TokenBlocks[]{train, held};
    }
}
