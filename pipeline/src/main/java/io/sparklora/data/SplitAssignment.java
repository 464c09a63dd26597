package io.sparklora.data;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * Puts a document in the train or validation split, and in one of {@code shards} shards, by a hash of its
 * content (and the seed): the same document always lands in the same place, whatever else the corpus
 * holds, so adding documents never moves old ones between splits, and duplicates never straddle them.
 *
 * <p>The hash is SHA-256 over the seed, the document kind, its text (or prompt and response) and its
 * label name. A document is in validation iff the first 53 bits, read as a fraction of 1, are below the
 * validation fraction; its shard is the next 64 bits modulo the shard count.
 */
public final class SplitAssignment implements Serializable {
    private static final long serialVersionUID = 1L;
    public static final int TRAIN = 0;
    public static final int VALIDATION = 1;

    private final double validationFraction;
    private final int shards;
    private final long seed;
    private final java.util.List<String> labels;

    public SplitAssignment(double validationFraction, int shards, long seed, java.util.List<String> labels) {
        if (!(validationFraction >= 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("validation fraction must be in [0, 1), got " + validationFraction);
        }
        if (shards < 1) throw new IllegalArgumentException("shard count must be positive, got " + shards);
        this.validationFraction = validationFraction;
        this.shards = shards;
        this.seed = seed;
        this.labels = java.util.List.copyOf(labels);
    }

    /** {@code split * shards + shard}: the index of the document's output partition. */
    public int partition(Document d) {
        return partition(hash(d));
    }

    /** {@link #partition(Document)} of the document whose {@link #hash} is {@code h}. */
    public int partition(byte[] h) {
        ByteBuffer b = ByteBuffer.wrap(h);
        double fraction = (b.getLong(0) >>> 11) * 0x1.0p-53;
        int split = fraction < validationFraction ? VALIDATION : TRAIN;
        int shard = (int) Long.remainderUnsigned(b.getLong(8), shards);
        return split * shards + shard;
    }

    public int shards() {
        return shards;
    }

    /** The document's 32-byte content hash (SHA-256 over the seed, kind, text or prompt and response, label name). */
    public byte[] hash(Document d) {
        MessageDigest md = CorpusReader.sha256();
        md.update(ByteBuffer.allocate(8).putLong(seed).array());
        if (d.isPromptResponse()) {
            md.update((byte) 'P');
            field(md, d.prompt());
            field(md, d.response());
        } else {
            md.update((byte) 'T');
            field(md, d.text());
            field(md, d.labelled() ? labels.get(d.label()) : "");
        }
        return md.digest();
    }

    /** Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently. */
    private static void field(MessageDigest md, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        md.update(ByteBuffer.allocate(4).putInt(b.length).array());
        md.update(b);
    }
}
