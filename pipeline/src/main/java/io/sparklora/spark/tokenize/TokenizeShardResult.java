package io.sparklora.spark.tokenize;

import io.sparklora.data.ShardManifest;

import java.io.Serializable;

/**
 * What a writing task reports to the driver about one shard file it wrote: counts and checksum.
 * A plain class, not a record, because task results travel through Kryo.
 */
public final class TokenizeShardResult implements Serializable {
    private static final long serialVersionUID = 1L;

    private String split;
    private int part;
    private String file;
    private long rows;
    private long documents;
    private long tokens;
    private long targets;
    private String sha256;

    private TokenizeShardResult() {
        // for Kryo
    }

    public TokenizeShardResult(String split, int part, String file, long rows, long documents, long tokens, long targets, String sha256) {
        this.split = split;
        this.part = part;
        this.file = file;
        this.rows = rows;
        this.documents = documents;
        this.tokens = tokens;
        this.targets = targets;
        this.sha256 = sha256;
    }

    public String split() { return split; }
    public int part() { return part; }

    public ShardManifest.Shard toShard() {
        return new ShardManifest.Shard(file, rows, documents, tokens, targets, sha256);
    }
}
