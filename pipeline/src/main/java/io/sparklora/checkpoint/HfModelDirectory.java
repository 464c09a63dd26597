package io.sparklora.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.util.AtomicFiles;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A model in the Hugging Face directory layout: {@code config.json} plus {@code model.safetensors}
 * (or a sharded index), and optionally the tokenizer files, which are copied along on save.
 */
public final class HfModelDirectory {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Shard size Hugging Face uses by default when saving. */
    public static final long DEFAULT_SHARD_BYTES = 5L * 1024 * 1024 * 1024;

    private HfModelDirectory() {}

    /** Loads config and weights; every tensor is checked against the config by name and shape. */
    public static TransformerLM load(Path dir) {
        ModelConfig config = ModelConfig.load(dir);
        Map<String, INDArray> weights = CheckpointFiles.loadWeights(dir);
        try {
            return TransformerLM.fromWeights(config, weights);
        } catch (RuntimeException e) {
            throw new CheckpointException(dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes the model as a Hugging Face checkpoint directory, atomically: the directory appears
     * complete or not at all. Tokenizer files from {@code tokenizerFrom} (may be null) are copied.
     */
    public static void save(TransformerLM model, Path dir, DataType storeAs, Path tokenizerFrom) {
        try {
            AtomicFiles.writeDirectory(dir, tmp -> {
                Files.writeString(tmp.resolve("config.json"),
                        JSON.writerWithDefaultPrettyPrinter().writeValueAsString(configFor(model, storeAs)));
                CheckpointFiles.saveWeights(tmp, model.stateDict(), storeAs, DEFAULT_SHARD_BYTES);
                if (tokenizerFrom != null) {
                    for (String f : new String[]{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
                        Path src = tokenizerFrom.resolve(f);
                        if (Files.exists(src)) Files.copy(src, tmp.resolve(f));
                    }
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write model directory " + dir + ": " + e.getMessage(), e);
        }
    }

    private static com.fasterxml.jackson.databind.node.ObjectNode configFor(TransformerLM model, DataType storeAs) {
        var json = model.config().toJson();
        json.put("torch_dtype", switch (storeAs) {
            case HALF -> "float16";
            case BFLOAT16 -> "bfloat16";
            default -> "float32";
        });
        return json;
    }
}
