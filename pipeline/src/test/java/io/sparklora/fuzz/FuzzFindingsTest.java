package io.sparklora.fuzz;

import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import org.apache.hadoop.conf.Configuration;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.ModelConfigException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One test per finding of the fuzz targets (docs/RELIABILITY.md, Fuzzing, lists them with the run that found each):
 * the smallest input that showed it, and the clear error it now gets.
 */
class FuzzFindingsTest {
    @TempDir
    Path dir;

    private Path write(String name, String content) throws Exception {
        Path f = dir.resolve(name);
        Files.writeString(f, content);
        return f;
    }

    /** ModelConfigFuzzTest#configJson: the record's size checks said what was wrong but not in which file. */
    @Test
    void aConfigWithZeroLayersNamesTheFile() throws Exception {
        Path f = write("config.json", "{\"model_type\": \"llama\", \"vocab_size\": 60, \"hidden_size\": 16, \"intermediate_size\": 24,"
                + " \"num_hidden_layers\": 0, \"num_attention_heads\": 4}");
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().startsWith(f + ": ") && e.getMessage().contains("layers=0"), e.getMessage());
    }

    /** Zero attention heads divided the hidden size by zero (an ArithmeticException) in both families. */
    @Test
    void zeroHeadsAreAClearErrorNotADivisionByZero() throws Exception {
        Path f = write("config.json", "{\"model_type\": \"gpt2\", \"vocab_size\": 60, \"n_embd\": 16, \"n_layer\": 1,"
                + " \"n_head\": 0, \"n_positions\": 32}");
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().startsWith(f + ": 'n_head' must be positive"), e.getMessage());
        write("config.json", "{\"model_type\": \"llama\", \"vocab_size\": 60, \"hidden_size\": 16, \"intermediate_size\": 24,"
                + " \"num_hidden_layers\": 1, \"num_attention_heads\": 0}");
        e = assertThrows(ModelConfigException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().startsWith(f + ": 'num_attention_heads' must be positive"), e.getMessage());
    }

    /** GPT-2's default n_inner, 4 * n_embd, overflowed int for n_embd over 2^29 and could come out positive. */
    @Test
    void anEmbeddingWidthWhoseFourfoldOverflowsIsRefused() throws Exception {
        write("config.json", "{\"model_type\": \"gpt2\", \"vocab_size\": 60, \"n_embd\": 1073741825, \"n_layer\": 1,"
                + " \"n_head\": 1, \"n_positions\": 32}");
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("n_embd 1073741825 is out of range"), e.getMessage());
    }

    /** The seed corpus's own AdaLoRA config (r below target_r): a method's validation named the setting, not the file. */
    @Test
    void anAdapterConfigThatAMethodRefusesNamesTheFile() throws Exception {
        Path f = write("adapter_config.json", "{\"peft_type\": \"ADALORA\", \"r\": 4, \"init_r\": 4, \"target_r\": 8,"
                + " \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftAdapterFormat.readConfig(f));
        assertTrue(e.getMessage().startsWith(f + ": ") && e.getMessage().contains("target_r"), e.getMessage());
    }

    private static byte[] finding(String resource) throws Exception {
        try (InputStream in = FuzzFindingsTest.class.getResourceAsStream(resource)) {
            return in.readAllBytes();
        }
    }

    /** Reads the finding {@code resource} as the one shard {@code name} of a split, as the fuzz target did; the error it gets. */
    private IOException readShardFinding(String resource, String name) throws Exception {
        byte[] shard = finding(resource);
        Files.write(dir.resolve(name), shard);
        ShardManifest.Shard s = new ShardManifest.Shard(name, 3, 1, 1, 1, SeedCorpus.sha256(shard));
        ShardManifest m = new ShardManifest(1, "t", "f", 64, 63, 63, SeedCorpus.SEQ, 0.5, 7, null, java.util.List.of(),
                java.util.Map.of(ShardManifest.TRAIN, java.util.List.of(s)));
        return assertThrows(IOException.class, () -> ArrowShardReader.readBlocks(new Configuration(), dir.toString(), m, s));
    }

    /**
     * ArrowShardFuzzTest#blockShard: a record batch declaring an 8e18-byte body made Arrow ask for that much native
     * memory (an OutOfMemoryError). The allocator is now bounded by the shard's size.
     */
    @Test
    void anArrowBodyLengthBeyondTheFileIsAClearErrorNotAnOutOfMemoryError() throws Exception {
        IOException e = readShardFinding("ArrowShardFuzzTestInputs/blockShard/finding-body-length-8e18-oom.arrow", "b.arrow");
        assertTrue(e.getMessage().contains("b.arrow") && e.getMessage().contains("memory limit"), e.getMessage());
    }

    /**
     * ArrowShardFuzzTest#blockShard, after the fix above: a message declaring 2 GB of metadata made Arrow allocate
     * a heap buffer of that size (an OutOfMemoryError: Java heap space). The declared length is now checked
     * against the bytes left in the file first.
     */
    @Test
    void anArrowMetadataLengthBeyondTheFileIsAClearErrorNotAnOutOfMemoryError() throws Exception {
        IOException e = readShardFinding("ArrowShardFuzzTestInputs/blockShard/finding-metadata-length-heap-oom.arrow", "m.arrow");
        assertTrue(e.getMessage().contains("m.arrow") && e.getMessage().contains("bytes of metadata at byte 8"), e.getMessage());
    }

    /**
     * ArrowShardFuzzTest#shardManifest: bytes Jackson took for UTF-32 failed with a CharConversionException, an
     * IOException that did not name the manifest.
     */
    @Test
    void aManifestInAnUnreadableEncodingNamesTheFile() throws Exception {
        Files.write(dir.resolve(ShardManifest.FILE_NAME), finding("ArrowShardFuzzTestInputs/shardManifest/finding-utf32-char-conversion.json"));
        IOException e = assertThrows(IOException.class, () -> ShardManifest.read(new Configuration(), dir.toString()));
        assertTrue(e.getMessage().startsWith("shard manifest ") && e.getMessage().contains(ShardManifest.FILE_NAME)
                && e.getMessage().contains("not JSON text"), e.getMessage());
    }
}
