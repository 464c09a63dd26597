package io.sparklora.spark;

import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;

import java.util.ArrayList;
import java.util.List;

/**
 * Shards held in the task closure itself: for notebooks and tests with small data. Production runs read
 * Arrow shards ({@link ArrowShards}), which keeps the closure a few bytes long.
 */
public final class InMemoryShards implements ShardSource {
    private static final long serialVersionUID = 1L;
    private final int seqLen;
    private final List<List<int[]>> tokens = new ArrayList<>();
    private final List<List<boolean[]>> masks = new ArrayList<>();

    public InMemoryShards(List<TokenBlocks> shards) {
        if (shards.isEmpty()) throw new IllegalArgumentException("no shards");
        seqLen = shards.get(0).seqLen();
        for (TokenBlocks s : shards) {
            List<int[]> t = new ArrayList<>();
            List<boolean[]> m = new ArrayList<>();
            for (int i = 0; i < s.size(); i++) {
                t.add(s.block(i));
                m.add(s.mask(i));
            }
            tokens.add(t);
            masks.add(m);
        }
    }

    @Override public int partitions() { return tokens.size(); }

    @Override
    public TokenBlocks load(int partition, Configuration conf) {
        TokenBlocks b = new TokenBlocks(seqLen);
        for (int i = 0; i < tokens.get(partition).size(); i++) b.add(tokens.get(partition).get(i), masks.get(partition).get(i));
        return b;
    }
}
