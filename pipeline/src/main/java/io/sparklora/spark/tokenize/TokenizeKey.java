package io.sparklora.spark.tokenize;

import java.io.Serializable;

/**
 * Shuffle key of a tokenized document: its output partition ({@code split}, {@code shard}) and its place
 * in the input ({@code source}, {@code file}, {@code record}), which fixes the order of documents in a
 * shard whatever the order tasks ran in.
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

    public int split() { return split; }
    public int shard() { return shard; }

    @Override
    public int compareTo(TokenizeKey o) {
        int c = Integer.compare(split, o.split);
        if (c == 0) c = Integer.compare(shard, o.shard);
        if (c == 0) c = Integer.compare(source, o.source);
        if (c == 0) c = Integer.compare(file, o.file);
        if (c == 0) c = Long.compare(record, o.record);
        return c;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizeKey k && compareTo(k) == 0;
    }

    @Override
    public int hashCode() {
        return ((split * 31 + shard) * 31 + source) * 31 + file + Long.hashCode(record) * 17;
    }

    @Override
    public String toString() {
        return "TokenizeKey[" + split + "," + shard + "," + source + "," + file + "," + record + "]";
    }
}
