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
import java.util.List;
import java.util.Map;

/**
 * A model in the Hugging Face directory layout: {@code config.json} plus {@code model.safetensors}
 * (or a sharded index), and the files that travel with it (tokenizer, generation config, chat template:
 * {@link #COMPANION_FILES}), which are copied along on save.
 *
 * <p>Saving keeps {@code config.json} as it was loaded: keys the engine does not model ({@code bos_token_id},
 * {@code rope_scaling}, ...) are written back unchanged; only {@code torch_dtype}, whose meaning the save
 * changes, is updated.
 */
public final class HfModelDirectory {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Shard size Hugging Face uses by default when saving. */
    public static final long DEFAULT_SHARD_BYTES = 5L * 1024 * 1024 * 1024;

    /** Files a model directory carries besides config and weights, copied along by {@link #save} when present. */
    public static final List<String> COMPANION_FILES = List.of(
            "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json");

    private HfModelDirectory() {}

    /**
     * Loads config and weights; every tensor is checked against the config by name and shape. A bitsandbytes 4-bit
     * directory (config with {@code quantization_config}) loads as an NF4 base.
     */
    public static TransformerLM load(Path dir) {
        if (io.sparklora.quant.QuantizedCheckpoints.isQuantized(dir)) return io.sparklora.quant.QuantizedCheckpoints.load(dir);
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
     * complete or not at all. The {@link #COMPANION_FILES} found in {@code companionsFrom} (may be null;
     * normally the directory the model was loaded from) are copied.
     */
    public static void save(TransformerLM model, Path dir, DataType storeAs, Path companionsFrom) {
        try {
            AtomicFiles.writeDirectory(dir, tmp -> {
                Files.writeString(tmp.resolve("config.json"),
                        JSON.writerWithDefaultPrettyPrinter().writeValueAsString(configFor(model, storeAs)));
                CheckpointFiles.saveWeights(tmp, model.stateDict(), storeAs, DEFAULT_SHARD_BYTES);
                if (companionsFrom != null) {
                    for (String f : COMPANION_FILES) {
                        Path src = companionsFrom.resolve(f);
                        if (Files.isRegularFile(src)) Files.copy(src, tmp.resolve(f));
                    }
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write model directory " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Copies the {@link #COMPANION_FILES} that the model directory at {@code modelUri} (any Hadoop URI) has into the
     * local directory {@code into}, for a later {@link #save} with {@code companionsFrom = into}.
     */
    public static void fetchCompanions(org.apache.hadoop.conf.Configuration conf, String modelUri, Path into) throws IOException {
        for (String f : COMPANION_FILES) {
            String src = io.sparklora.storage.HadoopFiles.resolve(modelUri, f);
            if (io.sparklora.storage.HadoopFiles.exists(conf, src)) {
                Files.write(into.resolve(f), io.sparklora.storage.HadoopFiles.readBytes(conf, src));
            }
        }
    }

    /** The config to write: the loaded one (or the generated one) with torch_dtype set to the stored type. */
    public static com.fasterxml.jackson.databind.node.ObjectNode configFor(TransformerLM model, DataType storeAs) {
        var json = model.checkpointConfig().toJson();   // with the bias flags a merge may have needed
        json.remove("quantization_config");             // what this writes is full precision, even from an NF4 base
        String dtype = switch (storeAs) {
            case HALF -> "float16";
            case BFLOAT16 -> "bfloat16";
            default -> "float32";
        };
        if (json.has("dtype") && !json.has("torch_dtype")) json.put("dtype", dtype);   // transformers ≥ 4.56 writes "dtype"
        else json.put("torch_dtype", dtype);
        return json;
    }
}
