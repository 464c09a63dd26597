package io.sparklora.fuzz;

import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.CorpusReader;
import io.sparklora.data.DatasetManifest;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.SourceFile;
import io.sparklora.model.ModelConfig;
import io.sparklora.runner.PipelineConfig;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every seed named {@code valid-*} in the fuzz corpus is read without an error, so fuzzing starts from inputs that
 * pass each reader's first checks and its mutations reach the deeper ones.
 */
class SeedCorpusTest {
    private static final Configuration CONF = new Configuration();

    @TempDir
    Path dir;

    static List<Path> validSeeds(String inputs) throws IOException, URISyntaxException {
        URL url = SeedCorpusTest.class.getResource(inputs);
        assertTrue(url != null, "seed directory " + inputs + " is on the test class path");
        try (Stream<Path> files = Files.list(Path.of(url.toURI()))) {
            List<Path> valid = files.filter(p -> p.getFileName().toString().startsWith("valid-")).sorted().toList();
            assertFalse(valid.isEmpty(), inputs + " has valid seeds");
            return valid;
        }
    }

    @Test
    void safetensorsSeedsOpenAndEveryFloatTensorReads() throws Exception {
        int tensors = 0;
        for (Path seed : validSeeds("SafetensorsFuzzTestInputs/safetensorsFile")) {
            try (SafetensorsReader r = SafetensorsReader.open(seed)) {
                for (String name : r.names()) {
                    if (r.dtype(name).nd4jType().isPresent()) {
                        CheckpointFiles.readAsFloat(r, name);
                        tensors++;
                    }
                }
            }
        }
        assertTrue(tensors >= 15, "the seeds hold tensors of many dtypes, read " + tensors);
    }

    @Test
    void shardedIndexSeedsListEveryTensorOfTheShards() throws Exception {
        Path model = SeedCorpus.shardedModel(dir.resolve("model"));
        for (Path seed : validSeeds("SafetensorsFuzzTestInputs/shardedIndex")) {
            Files.copy(seed, model.resolve(CheckpointFiles.INDEX_FILE), StandardCopyOption.REPLACE_EXISTING);
            assertEquals(3, CheckpointFiles.loadWeights(model).size(), seed.toString());
        }
    }

    @Test
    void configSeedsLoad() throws Exception {
        for (Path seed : validSeeds("ModelConfigFuzzTestInputs/configJson")) ModelConfig.load(seed);
    }

    @Test
    void adapterConfigSeedsRead() throws Exception {
        for (Path seed : validSeeds("PeftConfigFuzzTestInputs/adapterConfig")) {
            Path d = Files.createDirectories(dir.resolve(seed.getFileName().toString()));
            Files.copy(seed, d.resolve(PeftAdapterFormat.CONFIG_FILE));
            PeftAdapterFormat.readConfig(d.resolve(PeftAdapterFormat.CONFIG_FILE));
        }
        for (Path seed : validSeeds("PeftConfigFuzzTestInputs/sidecar")) {
            Path d = Files.createDirectories(dir.resolve("sidecar-" + seed.getFileName()));
            Files.writeString(d.resolve(PeftAdapterFormat.CONFIG_FILE), "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8,"
                    + " \"target_modules\": [\"q_proj\"]}");
            Files.copy(seed, d.resolve(PeftAdapterFormat.SIDECAR_FILE));
            PeftAdapterFormat.readConfig(d.resolve(PeftAdapterFormat.CONFIG_FILE));
        }
    }

    @Test
    void arrowSeedsDecode() throws Exception {
        ShardManifest valid = SeedCorpus.shardDirectory(dir);
        for (Path seed : validSeeds("ArrowShardFuzzTestInputs/blockShard")) {
            byte[] bytes = Files.readAllBytes(seed);
            Files.write(dir.resolve("b.arrow"), bytes);
            ShardManifest.Shard s = new ShardManifest.Shard("b.arrow", seed.toString().contains("-3-") ? 3 : 0, 0, 0, 0, SeedCorpus.sha256(bytes));
            ArrowShardReader.readBlocks(CONF, dir.toString(), valid, s);
        }
        for (Path seed : validSeeds("ArrowShardFuzzTestInputs/shardManifest")) {
            Files.copy(seed, dir.resolve(ShardManifest.FILE_NAME), StandardCopyOption.REPLACE_EXISTING);
            ShardManifest m = ShardManifest.read(CONF, dir.toString());
            assertEquals(3, ArrowShardReader.readSplit(CONF, dir.toString(), m, ShardManifest.TRAIN).size());
            assertEquals(3, ArrowShardReader.readValidationExamples(CONF, dir.toString(), m).size());
        }
        assertEquals(1, validSeeds("ArrowShardFuzzTestInputs/examplesShard").size());
    }

    @Test
    void yamlSeedsParse() throws Exception {
        for (Path seed : validSeeds("YamlFuzzTestInputs/datasetManifest")) DatasetManifest.read(CONF, seed.toString());
        for (Path seed : validSeeds("YamlFuzzTestInputs/pipelineConfig")) PipelineConfig.parse(Files.readString(seed), seed.toString());
    }

    @Test
    void jsonLinesSeedsGiveDocuments() throws Exception {
        assertEquals(5, documents("JsonLinesFuzzTestInputs/jsonLines", "sources: [{name: d, uri: d.jsonl, format: jsonl}]"));
        assertEquals(3, documents("JsonLinesFuzzTestInputs/labelledJsonLines",
                "labels: [ham, spam]\nsources: [{name: d, uri: d.jsonl, format: jsonl, label_field: label}]"));
    }

    private int documents(String inputs, String sources) throws Exception {
        Files.writeString(dir.resolve("m.yaml"), "name: seeds\n" + sources + "\n");
        DatasetManifest manifest = DatasetManifest.read(CONF, dir.resolve("m.yaml").toString());
        int n = 0;
        for (Path seed : validSeeds(inputs)) {
            Files.copy(seed, dir.resolve("d.jsonl"), StandardCopyOption.REPLACE_EXISTING);
            try (CorpusReader r = CorpusReader.open(CONF, manifest, SourceFile.list(CONF, manifest).get(0), 4096)) {
                while (r.hasNext()) {
                    r.next();
                    n++;
                }
            }
        }
        return n;
    }
}
