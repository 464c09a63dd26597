package io.sparklora.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.checkpoint.SafetensorsWriter;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * A training checkpoint: {@code <out>/checkpoints/round-NNNNNN/} holding the adapter (PEFT layout), the
 * optimizer state ({@code optimizer.safetensors}), the method's per-round state when it has any
 * ({@code method_state.safetensors}) and {@code state.json} (completed rounds, global step,
 * data position, RNG scheme, and a fingerprint of the settings). Each checkpoint directory is written
 * atomically (filled under a hidden temporary name, then renamed), then {@code checkpoints/LATEST} is replaced to
 * name it. Resume takes the newest {@code round-*} directory, so a crash at any moment leaves the newest complete
 * checkpoint to resume from and never a partial one (DriverKillIT). The two newest are kept.
 */
public final class TrainCheckpoint {
    private static final ObjectMapper JSON = new ObjectMapper();
    public static final String LATEST = "LATEST";

    /** A loaded checkpoint. */
    public record Loaded(int roundsDone, long globalStep, Map<String, INDArray> adapter, Map<String, INDArray> optimizer,
                         Map<String, INDArray> methodState, JsonNode state) {}

    private static final String METHOD_STATE_FILE = "method_state.safetensors";

    private TrainCheckpoint() {}

    public static String dir(String outputUri) { return HadoopFiles.resolve(outputUri, "checkpoints"); }

    public static void write(Configuration conf, String outputUri, AttachedAdapter adapter, Map<String, INDArray> optimizerState,
                             Map<String, INDArray> methodState, ObjectNode state, int roundsDone, String baseModel) throws IOException {
        String name = String.format(Locale.ROOT, "round-%06d", roundsDone);
        String target = HadoopFiles.resolve(dir(outputUri), name);
        String previous = latestName(conf, outputUri).orElse(null);
        HadoopFiles.writeDirectoryFromLocal(conf, target, local -> {
            PeftAdapterFormat.save(adapter, local, baseModel, false);      // full tensors: resume needs everything
            Map<String, INDArray> opt = new LinkedHashMap<>(optimizerState);
            SafetensorsWriter.write(local.resolve("optimizer.safetensors"), opt, Map.of("format", "spark-lora-adamw"), DataType.FLOAT);
            if (!methodState.isEmpty()) {
                SafetensorsWriter.write(local.resolve(METHOD_STATE_FILE), methodState, Map.of("format", "spark-lora-method-state"), DataType.FLOAT);
            }
            Files.writeString(local.resolve("state.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(state));
        });
        HadoopFiles.writeString(conf, HadoopFiles.resolve(dir(outputUri), LATEST), name + "\n");   // for people and tools
        // keep this one and the one before it
        for (String f : listCheckpointDirs(conf, outputUri)) {
            String n = f.substring(f.lastIndexOf('/') + 1);
            if (!n.equals(name) && !n.equals(previous)) HadoopFiles.delete(conf, f);
        }
    }

    /** The newest complete checkpoint of the run at {@code outputUri}, if any. */
    public static Optional<Loaded> latest(Configuration conf, String outputUri) throws IOException {
        Optional<String> name = latestName(conf, outputUri);
        if (name.isEmpty()) return Optional.empty();
        String uri = HadoopFiles.resolve(dir(outputUri), name.get());
        Path local = HadoopFiles.copyToLocal(conf, uri);
        try {
            JsonNode state = JSON.readTree(Files.readString(local.resolve("state.json")));
            return Optional.of(new Loaded(state.path("rounds_done").asInt(), state.path("global_step").asLong(),
                    readAll(local.resolve(PeftAdapterFormat.WEIGHTS_FILE)), readAll(local.resolve("optimizer.safetensors")),
                    Files.exists(local.resolve(METHOD_STATE_FILE)) ? readAll(local.resolve(METHOD_STATE_FILE)) : Map.of(), state));
        } catch (IOException | RuntimeException e) {
            throw new IOException("checkpoint " + uri + " is unreadable (" + e.getMessage() + "); delete it to start over", e);
        } finally {
            HadoopFiles.deleteLocalTree(local);
        }
    }

    /**
     * The newest checkpoint directory. A {@code round-*} directory appears under its name only once it is complete (it
     * is renamed into place), so the newest one is the one to resume from, whatever {@code LATEST} says: a kill between
     * removing the old {@code LATEST} and renaming the new one into place leaves no {@code LATEST} at all, and a kill
     * after the directory's rename and before {@code LATEST}'s leaves it one checkpoint behind. Hidden temporary
     * siblings ({@code .round-*.tmp-*}) of an interrupted write are never taken.
     */
    private static Optional<String> latestName(Configuration conf, String outputUri) throws IOException {
        if (!HadoopFiles.exists(conf, dir(outputUri))) return Optional.empty();
        return listCheckpointDirs(conf, outputUri).stream().map(f -> f.substring(f.lastIndexOf('/') + 1))
                .filter(n -> n.matches("round-\\d{6,}")).max(java.util.Comparator.comparingLong(n -> Long.parseLong(n.substring(6))));
    }

    private static java.util.List<String> listCheckpointDirs(Configuration conf, String outputUri) throws IOException {
        var p = HadoopFiles.path(dir(outputUri));
        var fs = HadoopFiles.fs(p, conf);
        java.util.List<String> out = new java.util.ArrayList<>();
        for (var st : fs.listStatus(p)) {
            if (st.isDirectory() && st.getPath().getName().startsWith("round-")) out.add(st.getPath().toString());
        }
        return out;
    }

    /** Every tensor of a local safetensors file (integer tensors, such as step counters, as integers). */
    public static Map<String, INDArray> readAll(Path file) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            for (String n : r.names()) {
                // step counters are integers; everything else is float
                boolean integer = r.dtype(n).name().startsWith("I") || r.dtype(n).name().startsWith("U");
                m.put(n, (integer ? r.readRaw(n) : r.read(n)).dup());
            }
        }
        return m;
    }
}
