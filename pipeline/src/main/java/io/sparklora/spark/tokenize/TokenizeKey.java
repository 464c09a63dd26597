package io.sparklora.spark.tokenize;

import java.io.Serializable;

/**
 * Shuffle key of a tokenized document: its output partition ({@code split}, {@code shard}) and its place
 * in the input ({@code source}, {@code file}, {@code record}), which fixes the order of documents in a
 * shard whatever the order tasks ran in. A document of a Spark source (a DataFrame, whose row order
 * depends on how Spark split the files) has no stable place; its key is ({@code source}, content hash)
 * instead ({@link #ofContent}), with {@code file} and {@code record} 0. Documents with equal keys have
 * equal content, so their relative order does not change the shard's bytes.
 *
 * <p>A plain class, not a record, because Spark's Kryo serializer cannot create records.
 */
public final class TokenizeKey implements Comparable<TokenizeKey>, Serializable {
    private static final long serialVersionUID = 1L;

    private int split;
    private int shard;
    private int source;
    private int file;
    private long record;
    private long hashHigh;
    private long hashLow;

    private TokenizeKey() {
        // for Kryo
    }

    public TokenizeKey(int split, int shard, int source, int file, long record) {
        this.split = split;
        this.shard = shard;
        this.source = source;
        this.file = file;
        this.record = record;
    }

    /** Key of a Spark-source document: ordered by source, then by the first 16 bytes of its content hash. */
    public static TokenizeKey ofContent(int split, int shard, int source, byte[] hash) {
        TokenizeKey k = new TokenizeKey(split, shard, source, 0, 0);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(hash);
        k.hashHigh = b.getLong(0);
        k.hashLow = b.getLong(8);
        return k;
    }

    public int split() { return split; }
    public int shard() { return shard; }

    @Override
    public int compareTo(TokenizeKey o) {
        int c = Integer.compare(split, o.split);
        if (c == 0) c = Integer.compare(shard, o.shard);
        if (c == 0) c = Integer.compare(source, o.source);
        if (c == 0) c = Integer.compare(file, o.file);
        if (c == 0) c = Long.compare(record, o.record);
        if (c == 0) c = Long.compare(hashHigh, o.hashHigh);
        if (c == 0) c = Long.compare(hashLow, o.hashLow);
        return c;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizeKey k && compareTo(k) == 0;
    }

    @Override
    public int hashCode() {
        return ((split * 31 + shard) * 31 + source) * 31 + file + Long.hashCode(record) * 17 + Long.hashCode(hashHigh ^ hashLow) * 13;
    }

    @Override
    public String toString() {
        return "TokenizeKey[" + split + "," + shard + "," + source + "," + file + "," + record
                + (hashHigh == 0 && hashLow == 0 ? "" : "," + Long.toHexString(hashHigh) + Long.toHexString(hashLow)) + "]";
    }
}
