package io.sparklora.spark;

import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One split of a tokenized dataset (Arrow shards plus manifest) as the distributed stages see it: shard i
 * is partition i. Executors read a shard once (schema and sha256 checked against the manifest) and keep
 * it in memory by checksum (softly: the GC may drop it under memory pressure, and the next round reads it
 * again), so later rounds cost no I/O.
 */
public final class ArrowShards implements ShardSource {
    private static final long serialVersionUID = 1L;
    // soft references: a long-lived JVM (a notebook, an executor serving many runs) gives memory back under pressure
    private static final Map<String, java.lang.ref.SoftReference<TokenBlocks>> CACHE = new ConcurrentHashMap<>();
    private final String dirUri;
    private final ShardManifest manifest;
    private final String split;

    public ArrowShards(String dirUri, ShardManifest manifest, String split) {
        this.dirUri = dirUri;
        this.manifest = manifest;
        this.split = split;
    }

    public ShardManifest manifest() { return manifest; }

    public String dirUri() { return dirUri; }

    @Override public int partitions() { return manifest.split(split).size(); }

    @Override
    public TokenBlocks load(int partition, Configuration conf) {
        ShardManifest.Shard shard = manifest.split(split).get(partition);
        java.lang.ref.SoftReference<TokenBlocks> ref = CACHE.get(shard.sha256());
        TokenBlocks blocks = ref == null ? null : ref.get();
        if (blocks == null) {
            try {
                blocks = ArrowShardReader.readBlocks(conf, dirUri, manifest, shard);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            CACHE.put(shard.sha256(), new java.lang.ref.SoftReference<>(blocks));
        }
        return blocks;
    }
}
