package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.checkpoint.CheckpointException;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.SafetensorsReader;

import java.nio.file.Path;

/**
 * Fuzzes the safetensors reader (header length, JSON header, offsets, every dtype's conversion) and the sharded
 * checkpoint index {@code model.safetensors.index.json}. The only failure allowed is a {@link CheckpointException}
 * naming the file. Seeds: {@code src/test/resources/io/sparklora/fuzz/SafetensorsFuzzTestInputs/<method>/}.
 */
class SafetensorsFuzzTest {
    private static final Path DIR = FuzzChecks.scratchDirectory("safetensors");
    /** Two valid shards the fuzzed index can point at ({@link SeedCorpus#shardedModel}). */
    private static final Path SHARDED = SeedCorpus.shardedModel(DIR.resolve("sharded"));

    /** The bytes as one .safetensors file: open it, then read every tensor it declares as float32 and in its own type. */
    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void safetensorsFile(byte[] data) {
        Path file = DIR.resolve("fuzz.safetensors");
        FuzzChecks.write(file, data);
        try (SafetensorsReader reader = SafetensorsReader.open(file)) {
            reader.metadata().forEach((k, v) -> k.length());
            for (String name : reader.names()) {
                reader.shape(name);
                try {
                    CheckpointFiles.readAsFloat(reader, name);
                } catch (CheckpointException e) {
                    FuzzChecks.clearError(e, file.toString());
                }
                try {
                    reader.mapBytes(name);
                    reader.readRaw(name);
                } catch (CheckpointException e) {
                    FuzzChecks.clearError(e, file.toString());
                }
            }
        } catch (CheckpointException e) {
            FuzzChecks.clearError(e, file.toString());
        }
    }

    /** The bytes as model.safetensors.index.json beside two valid shards: visit every tensor the index lists. */
    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void shardedIndex(byte[] data) {
        FuzzChecks.write(SHARDED.resolve(CheckpointFiles.INDEX_FILE), data);
        try {
            CheckpointFiles.visitTensors(SHARDED, (name, reader) -> reader.shape(name));
        } catch (CheckpointException e) {
            FuzzChecks.clearError(e, SHARDED.toString());
        }
    }
}
