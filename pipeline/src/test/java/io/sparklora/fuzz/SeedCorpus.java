package io.sparklora.fuzz;

import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.SafetensorsWriter;
import io.sparklora.data.ArrowShardWriter;
import io.sparklora.data.ShardManifest;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Valid files for the fuzz targets: the fixtures some targets fuzz against (two checkpoint shards, two Arrow
 * shards), and the generated part of the checked-in seed corpus. The seeds that are plain text (config.json,
 * adapter_config.json, YAML, JSON Lines) are copies of the project's own examples; the binary ones are written
 * by {@link #main}:
 *
 * <pre>
 * java -cp ... io.sparklora.fuzz.SeedCorpus pipeline/src/test/resources/io/sparklora/fuzz
 * </pre>
 *
 * ({@code bench/run-fuzz.sh seeds} runs it.) {@link SeedCorpusTest} checks that every {@code valid-*} seed is read
 * without an error, so the corpus keeps reaching past the first check of each reader.
 */
public final class SeedCorpus {
    /** Sequence length of the Arrow block shards here (rows hold seqLen + 1 tokens). */
    static final int SEQ = 4;

    private SeedCorpus() {}

    /** A safetensors file: little-endian header length, the header, the data buffer. */
    static byte[] safetensors(String header, byte[] data) {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + json.length + data.length).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(json.length).put(json).put(data).array();
    }

    /** A file with a tensor of most dtypes, a scalar, an empty tensor and metadata (written by hand, not by our writer). */
    static byte[] mixedDtypes() {
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                + "\"f64\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[16,24]},"
                + "\"f32\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]},"
                + "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[28,32]},"
                + "\"f16\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[32,36]},"
                + "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[36,40]},"
                + "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[40,42]},"
                + "\"u8\":{\"dtype\":\"U8\",\"shape\":[2,1],\"data_offsets\":[42,44]},"
                + "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[44,45]},"
                + "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[45,46]},"
                + "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[46,48]},"
                + "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[48,48]}}";
        ByteBuffer data = ByteBuffer.allocate(48).order(ByteOrder.LITTLE_ENDIAN);
        data.putLong(7).putLong(-3).putDouble(2.5).putFloat(1.5f).putInt(9)
                .putShort((short) 0x3c00).putShort((short) 0xc000)      // F16 1.0, -2.0
                .putShort((short) 0x3f80).putShort((short) 0x4040)      // BF16 1.0, 3.0
                .putShort((short) -5).put((byte) 200).put((byte) 1).put((byte) 1).put((byte) -1)
                .put((byte) 0x38).put((byte) 0x40);
        return safetensors(header, data.array());
    }

    /** {@code dir} with the two shards of a tiny model and their index, as {@link CheckpointFiles#saveWeights} writes them. */
    static Path shardedModel(Path dir) {
        Map<String, org.nd4j.linalg.api.ndarray.INDArray> tensors = new LinkedHashMap<>();
        tensors.put("embed.weight", Nd4j.linspace(1, 12, 12, DataType.FLOAT).reshape(4, 3));
        tensors.put("norm.weight", Nd4j.ones(DataType.FLOAT, 3));
        tensors.put("head.weight", Nd4j.linspace(-1, 1, 6, DataType.FLOAT).reshape(2, 3));
        CheckpointFiles.saveWeights(dir, tensors, DataType.FLOAT, 56);
        return dir;
    }

    /** A block shard of {@code rows} rows of {@link #SEQ} + 1 tokens, in batches of two rows. */
    static byte[] blockShard(int rows) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ArrowShardWriter w = ArrowShardWriter.blocks(out, SEQ, 2)) {
            for (int r = 0; r < rows; r++) {
                int[] tokens = new int[SEQ + 1];
                boolean[] mask = new boolean[SEQ + 1];
                for (int i = 0; i <= SEQ; i++) {
                    tokens[i] = 10 * r + i;
                    mask[i] = i % 2 == 1;
                }
                w.writeBlock(tokens, mask);
            }
            w.finish();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** A validation-examples shard: prompts of 0, 1, 2 tokens and labels 0, 1, 0. */
    static byte[] examplesShard() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ArrowShardWriter w = ArrowShardWriter.validationExamples(out)) {
            w.writeExample(new int[0], 0);
            w.writeExample(new int[] {5}, 1);
            w.writeExample(new int[] {5, 6}, 0);
            w.finish();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** {@code dir} holding train/part-00000.arrow (3 rows) and validation-examples/part-00000.arrow; returns the manifest. */
    static ShardManifest shardDirectory(Path dir) {
        try {
            byte[] train = blockShard(3), examples = examplesShard();
            Files.createDirectories(dir.resolve("train"));
            Files.createDirectories(dir.resolve("validation-examples"));
            Files.write(dir.resolve("train/part-00000.arrow"), train);
            Files.write(dir.resolve("validation-examples/part-00000.arrow"), examples);
            ShardManifest.Shard t = new ShardManifest.Shard("train/part-00000.arrow", 3, 2, 12, 6, sha256(train));
            ShardManifest.Shard v = new ShardManifest.Shard("validation-examples/part-00000.arrow", 3, 3, 3, 3, sha256(examples));
            return new ShardManifest(1, "fuzz", "f00d", 64, 63, 63, SEQ, 0.5, 7, "\nLabel:",
                    List.of(new ShardManifest.Label("ham", new int[] {5}), new ShardManifest.Label("spam", new int[] {6, 7})),
                    Map.of(ShardManifest.TRAIN, List.of(t), ShardManifest.VALIDATION_EXAMPLES, List.of(v)),
                    List.of(new ShardManifest.SourceCounts("events", 3, 1, 0)), "label");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes the generated seeds under {@code args[0]} (the fuzz package's test resource directory). */
    public static void main(String[] args) throws IOException {
        Path root = Path.of(args[0]);
        Path st = root.resolve("SafetensorsFuzzTestInputs/safetensorsFile");
        Files.createDirectories(st);
        Map<String, org.nd4j.linalg.api.ndarray.INDArray> two = new LinkedHashMap<>();
        two.put("a.weight", Nd4j.linspace(1, 6, 6, DataType.FLOAT).reshape(2, 3));
        two.put("b.bias", Nd4j.scalar(DataType.FLOAT, 0.5f).reshape(1));
        SafetensorsWriter.write(st.resolve("valid-f32.safetensors"), two, Map.of("format", "pt"), DataType.FLOAT);
        SafetensorsWriter.write(st.resolve("valid-f16.safetensors"), two, Map.of(), DataType.HALF);
        SafetensorsWriter.write(st.resolve("valid-bf16.safetensors"), two, Map.of(), DataType.BFLOAT16);
        Files.write(st.resolve("valid-mixed-dtypes.safetensors"), mixedDtypes());
        Files.write(st.resolve("valid-empty.safetensors"), safetensors("{}", new byte[0]));

        Path index = root.resolve("SafetensorsFuzzTestInputs/shardedIndex");
        Files.createDirectories(index);
        Path model = Files.createTempDirectory("seed-model");
        shardedModel(model);
        Files.copy(model.resolve(CheckpointFiles.INDEX_FILE), index.resolve("valid-index.json"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);

        Path arrow = root.resolve("ArrowShardFuzzTestInputs");
        Files.createDirectories(arrow.resolve("blockShard"));
        Files.createDirectories(arrow.resolve("examplesShard"));
        Files.createDirectories(arrow.resolve("shardManifest"));
        Files.write(arrow.resolve("blockShard/valid-3-rows.arrow"), blockShard(3));
        Files.write(arrow.resolve("blockShard/valid-0-rows.arrow"), blockShard(0));
        Files.write(arrow.resolve("examplesShard/valid-3-examples.arrow"), examplesShard());
        Files.write(arrow.resolve("shardManifest/valid-manifest.json"), shardDirectory(Files.createTempDirectory("seed-shards")).toJson());

        // every method's adapter_config.json and sidecar as spark-lora writes them
        Path peft = root.resolve("PeftConfigFuzzTestInputs");
        Files.createDirectories(peft.resolve("adapterConfig"));
        Files.createDirectories(peft.resolve("sidecar"));
        com.fasterxml.jackson.databind.ObjectWriter pretty = new com.fasterxml.jackson.databind.ObjectMapper().writerWithDefaultPrettyPrinter();
        for (String method : io.sparklora.adapters.AdapterMethods.names()) {
            io.sparklora.adapters.AdapterConfig c = io.sparklora.adapters.AdapterConfig.of(method, 8, 16, List.of("q_proj", "v_proj"))
                    .withTrainableTokens(new int[] {3, 5});
            Files.writeString(peft.resolve("adapterConfig/valid-written-" + method + ".json"),
                    pretty.writeValueAsString(io.sparklora.adapters.PeftAdapterFormat.configJson(c, io.sparklora.model.Architecture.LLAMA, "base")));
            // the sidecar target's adapter_config.json says LORA: a sidecar of another PEFT type is a seed, but not a valid one
            String kind = io.sparklora.adapters.AdapterMethods.get(method).peftType().equals("LORA") ? "valid-written-" : "other-type-";
            Files.writeString(peft.resolve("sidecar/" + kind + method + ".json"),
                    pretty.writeValueAsString(io.sparklora.adapters.PeftAdapterFormat.sidecarJson(c, "base")));
        }
    }
}
