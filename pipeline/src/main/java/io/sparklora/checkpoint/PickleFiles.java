package io.sparklora.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.Locale;

/**
 * Pickle-based PyTorch files ({@code pytorch_model.bin}, {@code adapter_model.bin}, {@code *.pt}, {@code *.pth},
 * {@code *.ckpt}, {@code *.pkl}, {@code *.pickle}), which spark-lora never opens: unpickling can run arbitrary code.
 * Files are recognised by name, so a refusal never has to read one. A model or adapter directory that holds
 * safetensors weights loads those and ignores any pickle beside them; one whose only weights are pickles, or whose
 * sharded index lists a pickle shard, is refused with an error that names the file.
 */
public final class PickleFiles {
    /** Name endings of pickle-based checkpoints. */
    public static final List<String> SUFFIXES = List.of(".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle");

    private static final ObjectMapper JSON = new ObjectMapper();

    private PickleFiles() {}

    /** Whether a file of this name is a pickle-based checkpoint. */
    public static boolean isPickle(String fileName) {
        String lower = fileName.toLowerCase(Locale.ROOT);
        for (String suffix : SUFFIXES) if (lower.endsWith(suffix)) return true;
        return false;
    }

    /** The first pickle among {@code names} (in their order), or null. */
    public static String firstPickle(Collection<String> names) {
        for (String n : names) if (isPickle(n)) return n;
        return null;
    }

    /**
     * The refusal of the pickle {@code fileName} at {@code where}: it names the file, says that pickles are never
     * loaded, and how to get safetensors instead ({@code howToConvert}).
     */
    public static CheckpointException refusal(String where, String fileName, String howToConvert) {
        return new CheckpointException(where + ": " + fileName + " is a pickle-based PyTorch checkpoint, and spark-lora never"
                + " unpickles files (loading a pickle can run arbitrary code). " + howToConvert);
    }

    /** How to convert a model directory, for {@link #refusal}. */
    public static String convertModel(String modelDir) {
        return "Convert the model to safetensors first, e.g. in Python: AutoModelForCausalLM.from_pretrained(\"" + modelDir
                + "\").save_pretrained(OUT_DIR, safe_serialization=True)";
    }

    /** How to convert an adapter directory, for {@link #refusal}. */
    public static String convertAdapter() {
        return "Save the adapter with safe_serialization=True (PEFT's default) to get adapter_model.safetensors";
    }

    /**
     * Checks a model directory by its file names (any file system), before anything is read: with
     * {@code model.safetensors} it passes (the single file wins, as in transformers); with
     * {@code model.safetensors.index.json} ({@code indexJson} its bytes) every shard the index lists must not be a
     * pickle; otherwise the directory must hold no pickle (it would be the weights the user meant).
     */
    public static void checkModelDirectory(String dirUri, Collection<String> names, IndexBytes indexJson) {
        if (names.contains(CheckpointFiles.SINGLE_FILE)) return;
        if (names.contains(CheckpointFiles.INDEX_FILE)) {
            JsonNode map;
            try {
                map = JSON.readTree(indexJson.read()).path("weight_map");
            } catch (IOException | RuntimeException e) {
                return;      // a malformed index is reported, with its details, where the weights are read
            }
            for (JsonNode shard : map) {
                if (shard.isTextual() && isPickle(shard.textValue())) {
                    throw refusal(dirUri + "/" + CheckpointFiles.INDEX_FILE, "the shard it lists, " + shard.textValue() + ",",
                            convertModel(dirUri));
                }
            }
            return;
        }
        String pickle = firstPickle(names);
        if (pickle != null) throw refusal(dirUri, pickle + " (there is no " + CheckpointFiles.SINGLE_FILE + ")", convertModel(dirUri));
    }

    /** Reads the index file's bytes when {@link #checkModelDirectory} needs them. */
    @FunctionalInterface
    public interface IndexBytes {
        byte[] read() throws IOException;
    }
}
