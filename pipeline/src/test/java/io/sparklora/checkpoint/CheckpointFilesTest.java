package io.sparklora.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

class CheckpointFilesTest {

    @TempDir
    Path dir;

    /** Five tensors of 64 fp32 values each: 256 bytes apiece, 1280 in all. */
    private static Map<String, INDArray> weights() {
        Map<String, INDArray> w = new LinkedHashMap<>();
        for (int i = 0; i < 5; i++) {
            w.put("layers." + i + ".weight", Nd4j.linspace(i, i + 1, 64, DataType.FLOAT).reshape(8, 8));
        }
        return w;
    }

    private Set<String> listing() throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toCollection(TreeSet::new));
        }
    }

    @Test
    void singleFileRoundTrip() throws Exception {
        Map<String, INDArray> w = weights();
        CheckpointFiles.saveWeights(dir, w, DataType.FLOAT, 1 << 20);
        assertEquals(Set.of("model.safetensors"), listing());
        Map<String, INDArray> back = CheckpointFiles.loadWeights(dir);
        assertEquals(w, back);
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("model.safetensors"))) {
            assertEquals(Map.of("format", "pt"), r.metadata()); // what transformers checks for
        }
        assertEquals(w, CheckpointFiles.loadWeights(dir.resolve("model.safetensors"))); // a file path works too
    }

    @Test
    void shardedRoundTripWithIndex() throws Exception {
        Map<String, INDArray> w = weights();
        CheckpointFiles.saveWeights(dir, w, DataType.FLOAT, 600); // two tensors (512 bytes) per shard
        assertEquals(new TreeSet<>(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json")), listing());

        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        assertEquals(1280, index.get("metadata").get("total_size").asLong());
        assertEquals("model-00001-of-00003.safetensors", index.get("weight_map").get("layers.0.weight").asText());
        assertEquals("model-00001-of-00003.safetensors", index.get("weight_map").get("layers.1.weight").asText());
        assertEquals("model-00003-of-00003.safetensors", index.get("weight_map").get("layers.4.weight").asText());
        assertEquals(5, index.get("weight_map").size());

        Map<String, INDArray> back = CheckpointFiles.loadWeights(dir);
        assertEquals(w, back);
        assertEquals(new ArrayList<>(w.keySet()), new ArrayList<>(back.keySet()));
    }

    @Test
    void shardedHalfPrecisionUsesStoredSizes() throws Exception {
        CheckpointFiles.saveWeights(dir, weights(), DataType.BFLOAT16, 300); // 128 bytes per tensor stored
        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        assertEquals(640, index.get("metadata").get("total_size").asLong());
        assertTrue(Files.exists(dir.resolve("model-00003-of-00003.safetensors")));
        Map<String, INDArray> back = CheckpointFiles.loadWeights(dir);
        assertEquals(Nd4j.linspace(2, 3, 64, DataType.FLOAT).reshape(8, 8)
                        .castTo(DataType.BFLOAT16).castTo(DataType.FLOAT),
                back.get("layers.2.weight"));
    }

    @Test
    void resavingInTheOtherLayoutRemovesStaleWeightFiles() throws Exception {
        Files.writeString(dir.resolve("config.json"), "{}");
        CheckpointFiles.saveWeights(dir, weights(), DataType.FLOAT, 600);
        Map<String, INDArray> small = Map.of("only", Nd4j.scalar(2f));
        CheckpointFiles.saveWeights(dir, small, DataType.FLOAT, 600);
        assertEquals(Set.of("config.json", "model.safetensors"), listing());
        assertEquals(small, CheckpointFiles.loadWeights(dir));

        CheckpointFiles.saveWeights(dir, weights(), DataType.FLOAT, 1000); // two shards now
        assertEquals(Set.of("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"), listing());
        assertEquals(weights(), CheckpointFiles.loadWeights(dir));
    }

    @Test
    void integerBuffersAreLoadedAsFloat() {
        Map<String, INDArray> w = new LinkedHashMap<>();
        w.put("weight", Nd4j.createFromArray(1.5f));
        w.put("position_ids", Nd4j.createFromArray(0L, 1L, 2L));
        CheckpointFiles.saveWeights(dir, w, DataType.FLOAT, 1 << 20);
        INDArray ids = CheckpointFiles.loadWeights(dir).get("position_ids");
        assertEquals(Nd4j.createFromArray(0f, 1f, 2f), ids);
    }

    @Test
    void missingShardIsNamed() throws Exception {
        CheckpointFiles.saveWeights(dir, weights(), DataType.FLOAT, 600);
        Files.delete(dir.resolve("model-00002-of-00003.safetensors"));
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains("model-00002-of-00003.safetensors"), e.getMessage());
        assertTrue(e.getMessage().contains("model.safetensors.index.json"), e.getMessage());
    }

    @Test
    void tensorListedInIndexButAbsentFromShardIsNamed() throws Exception {
        CheckpointFiles.saveWeights(dir, weights(), DataType.FLOAT, 600);
        Path index = dir.resolve("model.safetensors.index.json");
        Files.writeString(index, Files.readString(index).replace("\"layers.4.weight\"", "\"layers.9.weight\""));
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains("layers.9.weight"), e.getMessage());
        assertTrue(e.getMessage().contains("model-00003-of-00003.safetensors"), e.getMessage());
    }

    @Test
    void indexMayNotPointOutsideTheModelDirectory() throws Exception {
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\":{},\"weight_map\":{\"w\":\"../elsewhere.safetensors\"}}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains("model.safetensors.index.json") && e.getMessage().contains("'w'"),
                e.getMessage());
    }

    @Test
    void malformedIndexIsNamed() throws Exception {
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\":{}}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains("model.safetensors.index.json") && e.getMessage().contains("weight_map"),
                e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt"})
    void pickleCheckpointsAreRefused(String pickleName) throws Exception {
        Files.write(dir.resolve(pickleName), new byte[] {(byte) 0x80, 2, '.'}); // a pickle protocol-2 stub
        Files.writeString(dir.resolve("config.json"), "{}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains(pickleName), e.getMessage());
        assertTrue(e.getMessage().contains("safetensors"), e.getMessage());
        assertTrue(e.getMessage().contains("never unpickle"), e.getMessage());

        CheckpointException direct = assertThrows(CheckpointException.class,
                () -> CheckpointFiles.loadWeights(dir.resolve(pickleName)));
        assertTrue(direct.getMessage().contains("safetensors"), direct.getMessage());
    }

    @Test
    void safetensorsWinsOverAPickleAlongsideIt() throws Exception {
        Map<String, INDArray> w = weights();
        CheckpointFiles.saveWeights(dir, w, DataType.FLOAT, 1 << 20);
        Files.write(dir.resolve("pytorch_model.bin"), new byte[] {(byte) 0x80, 2, '.'}); // a pickle protocol-2 stub
        assertEquals(w, CheckpointFiles.loadWeights(dir));
        // sharded too: the index's shards are read, the pickle beside them is not
        Path sharded = dir.resolve("sharded");
        CheckpointFiles.saveWeights(sharded, w, DataType.FLOAT, 600);
        Files.write(sharded.resolve("pytorch_model.bin"), new byte[] {(byte) 0x80, 2, '.'});
        assertEquals(w, CheckpointFiles.loadWeights(sharded));
    }

    @Test
    void directoryWithoutWeightsListsWhatItHas() throws Exception {
        Files.writeString(dir.resolve("config.json"), "{}");
        Files.writeString(dir.resolve("tokenizer.json"), "{}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointFiles.loadWeights(dir));
        assertTrue(e.getMessage().contains("no model weights"), e.getMessage());
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("tokenizer.json"), e.getMessage());

        CheckpointException missing = assertThrows(CheckpointException.class,
                () -> CheckpointFiles.loadWeights(dir.resolve("nowhere")));
        assertTrue(missing.getMessage().contains("nowhere"), missing.getMessage());
    }

    @Test
    void rejectsNonPositiveShardSize() {
        assertThrows(IllegalArgumentException.class, () -> CheckpointFiles.saveWeights(dir, weights(), DataType.FLOAT, 0));
    }
}
