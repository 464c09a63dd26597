package io.sparklora.spark.tokenize;

import org.apache.spark.Partitioner;

/** Sends a document to partition {@code split * shards + shard}: train shards first, then validation shards. */
public final class TokenizePartitioner extends Partitioner {
    private static final long serialVersionUID = 1L;
    private final int shards;

    public TokenizePartitioner(int shards) {
        this.shards = shards;
    }

    @Override
    public int numPartitions() {
        return 2 * shards;
    }

    @Override
    public int getPartition(Object key) {
        TokenizeKey k = (TokenizeKey) key;
        return k.split() * shards + k.shard();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizePartitioner p && p.shards == shards;
    }

    @Override
    public int hashCode() {
        return shards;
    }
}
