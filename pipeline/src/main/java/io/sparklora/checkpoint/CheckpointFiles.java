package io.sparklora.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.util.AtomicFiles;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The weights of a Hugging Face model directory: a single {@code model.safetensors}, or shards
 * listed by {@code model.safetensors.index.json}. Pickle-based checkpoints ({@code pytorch_model.bin},
 * {@code *.pt}, ...) are refused outright: unpickling can execute arbitrary code, so we never do it.
 */
public final class CheckpointFiles {

    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    /** Shard names written by Hugging Face and by {@link #saveWeights}. */
    private static final Pattern SHARD_NAME = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");

    /** Metadata Hugging Face writes and transformers checks when loading a safetensors checkpoint. */
    private static final Map<String, String> HF_METADATA = Map.of("format", "pt");

    private CheckpointFiles() {
    }

    /**
     * Loads every tensor as float32 (integer and bool buffers converted too), in file order, shard by
     * shard. {@code modelDir} is normally a model directory; a path to a .safetensors file is accepted too.
     */
    public static Map<String, INDArray> loadWeights(Path modelDir) {
        Map<String, INDArray> weights = new LinkedHashMap<>();
        visitTensors(modelDir, (name, reader) -> weights.put(name, readAsFloat(reader, name)));
        return weights;
    }

    /** Called once per tensor, in file order, with the open file that holds it (read it, or parts of it, there). */
    @FunctionalInterface
    public interface TensorVisitor {
        void visit(String name, SafetensorsReader reader);
    }

    /**
     * Visits every tensor of a model directory (or one .safetensors file) without loading any: the caller reads what
     * it needs, one tensor at a time (quantize-on-load keeps a single full-precision tensor alive at once).
     */
    public static void visitTensors(Path modelDir, TensorVisitor visitor) {
        if (Files.isRegularFile(modelDir)) {
            refuseIfPickle(modelDir, modelDir);
            if (!modelDir.getFileName().toString().endsWith(".safetensors")) {
                throw CheckpointException.inFile(modelDir, "not a .safetensors file or a model directory");
            }
            visitSingle(modelDir, visitor);
            return;
        }
        if (!Files.isDirectory(modelDir)) {
            throw CheckpointException.inFile(modelDir, "model directory does not exist");
        }
        // Same preference as transformers: the single file wins over an index.
        Path single = modelDir.resolve(SINGLE_FILE);
        if (Files.isRegularFile(single)) {
            visitSingle(single, visitor);
            return;
        }
        Path index = modelDir.resolve(INDEX_FILE);
        if (Files.isRegularFile(index)) {
            visitSharded(modelDir, index, visitor);
            return;
        }
        List<String> found = listNames(modelDir);
        for (String name : found) {
            refuseIfPickle(modelDir.resolve(name), modelDir);
        }
        throw CheckpointException.inFile(modelDir, "no model weights: expected " + SINGLE_FILE + " or " + INDEX_FILE
                + "; the directory contains " + (found.isEmpty() ? "nothing" : found));
    }

    /**
     * Saves the tensors into {@code modelDir} as Hugging Face does: {@code model.safetensors} when they
     * fit in {@code maxShardBytes}, otherwise {@code model-0000i-of-0000N.safetensors} shards (filled in
     * the map's order) plus {@code model.safetensors.index.json}. Weight files of the other layout, and
     * leftover shards of an earlier save, are removed so a later load cannot pick up stale weights.
     * Each file is replaced atomically; a whole save is not, so use a fresh directory (or
     * {@link AtomicFiles#writeDirectory}) when a crash mid-save must leave the old checkpoint intact.
     */
    public static void saveWeights(Path modelDir, Map<String, INDArray> tensors, DataType storeAs, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        try {
            Files.createDirectories(modelDir);
        } catch (IOException e) {
            throw CheckpointException.inFile(modelDir, "cannot create directory: " + e, e);
        }
        List<Map<String, INDArray>> shards = new ArrayList<>();
        Map<String, INDArray> current = new LinkedHashMap<>();
        long currentBytes = 0;
        long totalBytes = 0;
        for (Map.Entry<String, INDArray> t : tensors.entrySet()) {
            long bytes = SafetensorsWriter.storedBytes(t.getValue(), storeAs);
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                currentBytes = 0;
            }
            current.put(t.getKey(), t.getValue());
            currentBytes += bytes;
            totalBytes += bytes;
        }
        shards.add(current);

        if (shards.size() == 1) {
            SafetensorsWriter.write(modelDir.resolve(SINGLE_FILE), tensors, HF_METADATA, storeAs);
            deleteStale(modelDir, Set.of(SINGLE_FILE));
            return;
        }
        Set<String> written = new LinkedHashSet<>();
        Map<String, String> weightMap = new TreeMap<>(); // sorted, like transformers' index files
        for (int i = 0; i < shards.size(); i++) {
            String shardName = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", i + 1, shards.size());
            SafetensorsWriter.write(modelDir.resolve(shardName), shards.get(i), HF_METADATA, storeAs);
            shards.get(i).keySet().forEach(name -> weightMap.put(name, shardName));
            written.add(shardName);
        }
        writeIndex(modelDir.resolve(INDEX_FILE), totalBytes, weightMap);
        written.add(INDEX_FILE);
        deleteStale(modelDir, written);
    }

    private static void visitSingle(Path file, TensorVisitor visitor) {
        try (SafetensorsReader reader = SafetensorsReader.open(file)) {
            for (String name : reader.names()) {
                visitor.visit(name, reader);
            }
        }
    }

    /**
     * Some checkpoints carry integer or bool buffers (position_ids, attention masks); they are
     * converted too, so the map is uniformly float32 and loading never fails on a buffer the model ignores.
     */
    public static INDArray readAsFloat(SafetensorsReader reader, String name) {
        if (reader.dtype(name).isFloatingPoint()) {
            return reader.read(name);
        }
        return reader.readRaw(name).castTo(DataType.FLOAT);
    }

    private static void visitSharded(Path modelDir, Path index, TensorVisitor visitor) {
        Map<String, List<String>> tensorsByShard = readWeightMap(index);
        // Check every shard before reading any, so a missing one fails in milliseconds, not after gigabytes.
        for (String shard : tensorsByShard.keySet()) {
            Path shardPath = modelDir.resolve(shard);
            refuseIfPickle(shardPath, modelDir);
            if (!Files.isRegularFile(shardPath)) {
                throw CheckpointException.inFile(index, "lists shard " + shard + ", which is missing from " + modelDir);
            }
        }
        for (Map.Entry<String, List<String>> shard : tensorsByShard.entrySet()) {
            Path shardPath = modelDir.resolve(shard.getKey());
            try (SafetensorsReader reader = SafetensorsReader.open(shardPath)) {
                for (String name : shard.getValue()) {
                    if (!reader.contains(name)) {
                        throw CheckpointException.inTensor(shardPath, name, INDEX_FILE
                                + " places it in this shard, but the shard does not contain it");
                    }
                }
                // Read in file order for sequential I/O; tensors the index does not list are ignored, as transformers does.
                Set<String> wanted = new LinkedHashSet<>(shard.getValue());
                for (String name : reader.names()) {
                    if (wanted.contains(name)) {
                        visitor.visit(name, reader);
                    }
                }
            }
        }
    }

    /** weight_map inverted: shard file name → tensor names, shards in order of first mention. */
    private static Map<String, List<String>> readWeightMap(Path index) {
        JsonNode root;
        try {
            root = SafetensorsHeader.JSON.readTree(index.toFile());
        } catch (IOException e) {
            throw CheckpointException.inFile(index, "not valid JSON: " + e.getMessage(), e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw CheckpointException.inFile(index, "has no \"weight_map\" object");
        }
        Map<String, List<String>> byShard = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode shard = e.getValue();
            if (!shard.isTextual() || !isPlainFileName(shard.textValue())) {
                throw CheckpointException.inFile(index, "weight_map entry for tensor '" + e.getKey()
                        + "' is not a file name in the model directory: " + shard);
            }
            byShard.computeIfAbsent(shard.textValue(), s -> new ArrayList<>()).add(e.getKey());
        }
        return byShard;
    }

    /** Refuses names that could point outside the model directory ("../x", "/etc/x", "a/b"). */
    private static boolean isPlainFileName(String name) {
        return !name.isEmpty() && !name.equals(".") && !name.equals("..")
                && name.indexOf('/') < 0 && name.indexOf('\\') < 0 && name.indexOf('\0') < 0;
    }

    private static void writeIndex(Path index, long totalBytes, Map<String, String> weightMap) {
        ObjectNode root = SafetensorsHeader.JSON.createObjectNode();
        root.putObject("metadata").put("total_size", totalBytes);
        ObjectNode map = root.putObject("weight_map");
        weightMap.forEach(map::put);
        try {
            AtomicFiles.writeString(index, SafetensorsHeader.JSON.writerWithDefaultPrettyPrinter()
                    .writeValueAsString(root) + "\n");
        } catch (IOException e) {
            throw CheckpointException.inFile(index, "cannot write: " + e, e);
        }
    }

    /** Removes weight files of an earlier save that the new one did not write. */
    private static void deleteStale(Path modelDir, Set<String> keep) {
        for (String name : listNames(modelDir)) {
            boolean weightFile = name.equals(SINGLE_FILE) || name.equals(INDEX_FILE) || SHARD_NAME.matcher(name).matches();
            if (weightFile && !keep.contains(name)) {
                try {
                    Files.deleteIfExists(modelDir.resolve(name));
                } catch (IOException e) {
                    throw CheckpointException.inFile(modelDir.resolve(name), "cannot delete stale weight file: " + e, e);
                }
            }
        }
    }

    private static void refuseIfPickle(Path file, Path modelDir) {
        String name = file.getFileName().toString();
        if (PickleFiles.isPickle(name)) throw PickleFiles.refusal(file.toString(), name, PickleFiles.convertModel(modelDir.toString()));
    }

    private static List<String> listNames(Path dir) {
        Set<String> names = new TreeSet<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
            for (Path p : entries) {
                names.add(p.getFileName().toString());
            }
        } catch (IOException e) {
            throw CheckpointException.inFile(dir, "cannot list directory: " + e, e);
        }
        return new ArrayList<>(names);
    }
}
