package io.sparklora.adapters;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.checkpoint.SafetensorsWriter;
import io.sparklora.model.Architecture;

import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.util.AtomicFiles;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Adapters in Hugging Face PEFT's layout: {@code adapter_config.json} plus {@code adapter_model.safetensors}
 * whose tensors are named {@code base_model.model.<module>.lora_A.weight} (A [r, in]) and
 * {@code ...lora_B.weight} (B [out, r]) — the adapter name is not part of saved names — and, when
 * biases train, {@code base_model.model.<module>.bias}.
 */
public final class PeftAdapterFormat {
    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    private static final String PREFIX = "base_model.model.";
    private static final ObjectMapper JSON = new ObjectMapper();

    private PeftAdapterFormat() {}

    /** Reads a PEFT adapter_config.json into our config; unsupported settings are errors, not silently dropped. */
    public static AdapterConfig readConfig(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read adapter config: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + ": expected a JSON object");
        String type = root.path("peft_type").asText("LORA");
        if (!type.equalsIgnoreCase("LORA")) {
            throw new IllegalArgumentException(file + ": peft_type '" + type + "' is not supported (known: " + AdapterMethods.names() + ")");
        }
        if (root.path("use_dora").asBoolean(false)) throw new IllegalArgumentException(file + ": use_dora=true is not supported yet");
        for (String key : new String[]{"rank_pattern", "alpha_pattern"}) {
            if (root.has(key) && root.get(key).isObject() && root.get(key).size() > 0) {
                throw new IllegalArgumentException(file + ": " + key + " is not supported yet");
            }
        }
        if (root.hasNonNull("layers_to_transform")) throw new IllegalArgumentException(file + ": layers_to_transform is not supported yet");
        JsonNode tm = root.get("target_modules");
        List<String> targets = new ArrayList<>();
        if (tm == null || tm.isNull()) throw new IllegalArgumentException(file + ": target_modules is missing");
        if (tm.isTextual()) targets.add("re:" + tm.asText());          // PEFT: a string is a full-match regex
        else tm.forEach(n -> targets.add(n.asText()));
        JsonNode init = root.get("init_lora_weights");
        String initMode = init != null && init.isTextual() && init.asText().equals("gaussian") ? "gaussian" : "kaiming";
        return new AdapterConfig("lora", root.path("r").asInt(8), root.path("lora_alpha").asDouble(8),
                root.path("lora_dropout").asDouble(0.0), targets, root.path("use_rslora").asBoolean(false),
                root.path("bias").asText("none"), initMode);
    }

    public static ObjectNode configJson(AdapterConfig c, Architecture arch, String baseModel) {
        ObjectNode o = JSON.createObjectNode();
        o.put("peft_type", "LORA");
        o.put("task_type", "CAUSAL_LM");
        o.put("base_model_name_or_path", baseModel);
        o.put("r", c.r());
        o.put("lora_alpha", c.alpha());
        o.put("lora_dropout", c.dropout());
        if (c.targetModules().size() == 1 && c.targetModules().get(0).startsWith("re:")) {
            o.put("target_modules", c.targetModules().get(0).substring(3));
        } else {
            ArrayNode t = o.putArray("target_modules");
            c.targetModules().forEach(t::add);
        }
        o.put("bias", c.bias());
        o.put("use_rslora", c.rslora());
        o.put("use_dora", false);
        o.put("fan_in_fan_out", arch == Architecture.GPT2);   // GPT-2's Conv1D stores W as [in, out]
        if (c.init().equals("gaussian")) o.put("init_lora_weights", "gaussian");
        else o.put("init_lora_weights", true);
        o.put("inference_mode", true);
        o.putNull("modules_to_save");
        o.putNull("layers_to_transform");
        o.putNull("layers_pattern");
        o.putObject("rank_pattern");
        o.putObject("alpha_pattern");
        return o;
    }

    /** The adapter's tensors under PEFT's names. */
    public static Map<String, INDArray> tensors(AttachedAdapter adapter) {
        Map<String, INDArray> t = new LinkedHashMap<>();
        adapter.layers().forEach((module, a) -> a.stateDict().forEach((k, v) -> t.put(PREFIX + module + "." + k, v)));
        for (Parameter b : adapter.trainableBiases()) t.put(PREFIX + b.name(), b.value());
        return t;
    }

    /** Writes the adapter directory atomically (it appears complete or not at all). */
    public static void save(AttachedAdapter adapter, Path dir, String baseModel) {
        try {
            AtomicFiles.writeDirectory(dir, tmp -> {
                Files.writeString(tmp.resolve(CONFIG_FILE), JSON.writerWithDefaultPrettyPrinter()
                        .writeValueAsString(configJson(adapter.config(), adapter.model().config().architecture(), baseModel)));
                SafetensorsWriter.write(tmp.resolve(WEIGHTS_FILE), tensors(adapter), Map.of("format", "pt"), DataType.FLOAT);
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter to " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Attaches the adapter saved in {@code dir} to the model under {@code adapterName}. Every tensor must
     * match a targeted layer by name and shape, and every targeted layer must have its tensors.
     * On any error the model is left without the adapter.
     */
    public static AttachedAdapter load(TransformerLM model, Path dir, String adapterName) {
        Path configFile = dir.resolve(CONFIG_FILE), weightsFile = dir.resolve(WEIGHTS_FILE);
        if (!Files.exists(configFile)) throw new IllegalArgumentException(dir + ": no " + CONFIG_FILE + " (not a PEFT adapter directory)");
        if (!Files.exists(weightsFile)) {
            if (Files.exists(dir.resolve("adapter_model.bin"))) {
                throw new IllegalArgumentException(dir + ": only adapter_model.bin (a pickle) is present; spark-lora never unpickles — "
                        + "save the adapter with safe_serialization=True to get " + WEIGHTS_FILE);
            }
            throw new IllegalArgumentException(dir + ": no " + WEIGHTS_FILE);
        }
        AdapterConfig config = readConfig(configFile);
        AttachedAdapter attached = AttachedAdapter.attach(model, adapterName, config, 0);
        try (SafetensorsReader reader = SafetensorsReader.open(weightsFile)) {
            TreeSet<String> unused = new TreeSet<>(reader.names());
            String where = weightsFile.toString();
            for (Map.Entry<String, Adapter> e : attached.layers().entrySet()) {
                Map<String, INDArray> mine = new LinkedHashMap<>();
                for (String key : e.getValue().stateDict().keySet()) {
                    String name = PREFIX + e.getKey() + "." + key;
                    if (reader.contains(name)) {
                        mine.put(key, reader.read(name));
                        unused.remove(name);
                    }
                }
                e.getValue().loadStateDict(mine, where);
            }
            for (Parameter b : attached.trainableBiases()) {
                String name = PREFIX + b.name();
                if (!reader.contains(name)) throw new IllegalArgumentException(where + ": bias=" + config.bias() + " but tensor " + name + " is missing");
                b.set(reader.read(name));
                unused.remove(name);
            }
            if (!unused.isEmpty()) {
                throw new IllegalArgumentException(where + ": tensors that match no targeted layer of this model: "
                        + String.join(", ", unused.stream().limit(8).toList()) + (unused.size() > 8 ? ", ..." : ""));
            }
        } catch (RuntimeException e) {
            attached.detach();
            throw e;
        }
        return attached;
    }

}
