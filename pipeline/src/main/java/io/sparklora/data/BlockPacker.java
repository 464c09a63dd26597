package io.sparklora.data;

import java.io.IOException;

/**
 * Streaming form of {@link io.sparklora.train.TokenBlocks#pack}, with exactly its layout: documents are
 * joined with an end-of-text token after each, cut into blocks of {@code seqLen + 1} tokens where the last
 * token of a block is also the first of the next (so every token is a target once), and the final partial
 * block is padded with {@code padId} (mask false). Documents come in one at a time and full blocks go out
 * to a sink as soon as they are complete, so memory is O(seqLen) whatever the corpus size.
 */
public final class BlockPacker {

    /** Receives blocks. The arrays are reused for the next block: copy them to keep them. */
    @FunctionalInterface
    public interface BlockSink {
        void accept(int[] tokens, boolean[] lossMask) throws IOException;
    }

    private final int seqLen;
    private final int eosId;
    private final int padId;
    private final BlockSink sink;
    private final int[] cur;
    private final boolean[] curMask;
    private int fill;
    private long documents, tokens, blocks, targets;
    private boolean finished;

    public BlockPacker(int seqLen, int eosId, int padId, BlockSink sink) {
        if (seqLen < 2) throw new IllegalArgumentException("sequence length must be at least 2, got " + seqLen);
        this.seqLen = seqLen;
        this.eosId = eosId;
        this.padId = padId;
        this.sink = sink;
        this.cur = new int[seqLen + 1];
        this.curMask = new boolean[seqLen + 1];
    }

    /** Adds a document; {@code lossMask} marks its target tokens (null: all are); its end-of-text token is always a target. */
    public void add(int[] doc, boolean[] lossMask) throws IOException {
        if (finished) throw new IllegalStateException("packer already finished");
        if (lossMask != null && lossMask.length != doc.length) {
            throw new IllegalArgumentException("loss mask of length " + lossMask.length + " for a document of " + doc.length + " tokens");
        }
        documents++;
        tokens += doc.length + 1;
        for (int i = 0; i <= doc.length; i++) {
            boolean isEos = i == doc.length;
            cur[fill] = isEos ? eosId : doc[i];
            curMask[fill] = isEos || lossMask == null || lossMask[i];
            fill++;
            if (fill == seqLen + 1) {
                emit();
                // the last token of a block starts the next one, so every token is a target once
                cur[0] = cur[seqLen];
                curMask[0] = curMask[seqLen];
                fill = 1;
            }
        }
    }

    /**
     * Emits {@code doc} as a block of its own, padded with {@code padId}, without end-of-text token and
     * without touching the partial block being packed: the layout of a text → label example, where
     * {@code lossMask} marks the label's tokens. Position 0 is never a target (nothing precedes it).
     *
     * @throws IllegalArgumentException when the document does not fit in {@code seqLen + 1} tokens
     */
    public void single(int[] doc, boolean[] lossMask) throws IOException {
        if (finished) throw new IllegalStateException("packer already finished");
        if (doc.length > seqLen + 1 || doc.length == 0) {
            throw new IllegalArgumentException("a single block holds 1 to " + (seqLen + 1) + " tokens, got " + doc.length);
        }
        if (lossMask.length != doc.length) {
            throw new IllegalArgumentException("loss mask of length " + lossMask.length + " for a document of " + doc.length + " tokens");
        }
        documents++;
        tokens += doc.length;
        int[] block = new int[seqLen + 1];
        boolean[] mask = new boolean[seqLen + 1];
        java.util.Arrays.fill(block, padId);
        System.arraycopy(doc, 0, block, 0, doc.length);
        System.arraycopy(lossMask, 0, mask, 0, doc.length);
        mask[0] = false;
        blocks++;
        for (int i = 1; i <= seqLen; i++) if (mask[i]) targets++;
        sink.accept(block, mask);
    }

    /** Pads and emits the last partial block, if any. */
    public void finish() throws IOException {
        if (finished) return;
        finished = true;
        if (fill > 1) {
            for (int i = fill; i <= seqLen; i++) {
                cur[i] = padId;
                curMask[i] = false;
            }
            emit();
        }
    }

    private void emit() throws IOException {
        blocks++;
        for (int i = 1; i <= seqLen; i++) if (curMask[i]) targets++;
        sink.accept(cur, curMask);
    }

    public long documents() { return documents; }

    /** Tokens packed, end-of-text tokens included (not padding, not the carried-over first tokens). */
    public long tokens() { return tokens; }

    public long blocks() { return blocks; }

    /** Positions that count in the loss: true mask entries at positions 1..seqLen of every block. */
    public long targets() { return targets; }
}
