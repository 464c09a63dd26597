package io.sparklora.spark;

import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;

import java.io.Serializable;

/**
 * Training data as the distributed trainer sees it: one shard per Spark partition. Implementations are
 * small serializable descriptions; {@link #load} runs on the executor and may cache what it reads.
 */
public interface ShardSource extends Serializable {
    int partitions();

    /** The blocks of shard {@code partition} (possibly empty). */
    TokenBlocks load(int partition, Configuration conf);
}
