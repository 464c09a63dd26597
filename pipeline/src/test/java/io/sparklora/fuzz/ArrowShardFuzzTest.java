package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Fuzzes the token shards: an Arrow IPC file read as a block shard and as a validation-examples shard
 * ({@link ArrowShardReader}; the manifest gives the fuzzed file's own SHA-256, so the decoder, not the checksum,
 * meets the bytes), and {@code manifest.json} ({@link ShardManifest#read}) beside two valid shards, which are then
 * read as the manifest describes them. The only failure allowed is an {@link IOException} naming the shard or
 * manifest. Seeds: shards and a manifest written by {@link SeedCorpus#main}.
 */
class ArrowShardFuzzTest {
    private static final Configuration CONF = new Configuration();
    private static final Path DIR = FuzzChecks.scratchDirectory("arrow");
    private static final Path SHARDS = DIR.resolve("shards");
    private static final ShardManifest VALID = SeedCorpus.shardDirectory(SHARDS);

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void blockShard(byte[] data) {
        Path file = DIR.resolve("blocks.arrow");
        FuzzChecks.write(file, data);
        ShardManifest.Shard shard = new ShardManifest.Shard("blocks.arrow", 3, 1, 1, 1, SeedCorpus.sha256(data));
        try {
            ArrowShardReader.readBlocks(CONF, DIR.toString(), manifest(ShardManifest.TRAIN, shard), shard);
        } catch (IOException e) {
            FuzzChecks.clearError(e, file.toString());
        }
    }

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void examplesShard(byte[] data) {
        Path file = DIR.resolve("examples.arrow");
        FuzzChecks.write(file, data);
        ShardManifest.Shard shard = new ShardManifest.Shard("examples.arrow", 3, 1, 1, 1, SeedCorpus.sha256(data));
        try {
            ArrowShardReader.readValidationExamples(CONF, DIR.toString(), manifest(ShardManifest.VALIDATION_EXAMPLES, shard));
        } catch (IOException e) {
            FuzzChecks.clearError(e, file.toString());
        }
    }

    /** The bytes as manifest.json of the valid shard directory: read it, then every shard it lists. */
    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void shardManifest(byte[] data) {
        FuzzChecks.write(SHARDS.resolve(ShardManifest.FILE_NAME), data);
        try {
            ShardManifest m = ShardManifest.read(CONF, SHARDS.toString());
            ArrowShardReader.readSplit(CONF, SHARDS.toString(), m, ShardManifest.TRAIN);
            ArrowShardReader.readSplit(CONF, SHARDS.toString(), m, ShardManifest.VALIDATION);
            ArrowShardReader.readValidationExamples(CONF, SHARDS.toString(), m);
        } catch (IOException e) {
            FuzzChecks.clearError(e, SHARDS.toString());
        }
    }

    private static ShardManifest manifest(String split, ShardManifest.Shard shard) {
        return new ShardManifest(1, VALID.dataset(), VALID.tokenizerFingerprint(), VALID.vocabSize(), VALID.eosTokenId(),
                VALID.padTokenId(), SeedCorpus.SEQ, 0.5, 7, VALID.labelPrompt(), VALID.labels(), Map.of(split, List.of(shard)),
                List.of(), VALID.objective());
    }
}
