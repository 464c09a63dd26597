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
import java.util.Optional;
import java.util.TreeSet;

/**
 * Adapters in Hugging Face PEFT's layout, for every method:
 * <ul>
 *   <li>{@code adapter_config.json} with PEFT's keys for the method's {@code peft_type}, and only those
 *       (the shared ones here, the method's own from {@link AdapterMethod#writePeftConfig});</li>
 *   <li>{@code adapter_model.safetensors} (header metadata {@code {"format": "pt"}}) with each layer's tensors
 *       under {@code base_model.model.<module>.<key>} (the adapter name is not part of saved names: e.g.
 *       {@code lora_A.weight} [r, in], {@code lora_B.weight} [out, r], {@code lora_magnitude_vector} [out]),
 *       tensors shared by all layers under {@code base_model.<key>} (VeRA's {@code vera_A}, {@code vera_B}),
 *       trained biases under {@code base_model.model.<module>.bias}, and trainable token rows under
 *       {@code base_model.model.<embedding>.token_adapter.trainable_tokens_delta} [n, C] (the rows' new values,
 *       as PEFT stores them; the ids are the config's {@code trainable_token_indices});</li>
 *   <li>{@code spark_lora.json}, a sidecar with what PEFT has no key for: spark-lora's method name (LoRA-FA
 *       and LoRA+ are stored as plain LoRA), its settings, and provenance. PEFT ignores the file.</li>
 * </ul>
 */
public final class PeftAdapterFormat {
    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String SIDECAR_FILE = "spark_lora.json";
    public static final String PREFIX = "base_model.model.";
    public static final String SHARED_PREFIX = "base_model.";
    private static final ObjectMapper JSON = new ObjectMapper();

    private PeftAdapterFormat() {}

    /**
     * Reads a PEFT adapter_config.json (and the {@code spark_lora.json} beside it, if any) into our config;
     * unsupported settings are errors, not silently dropped.
     */
    public static AdapterConfig readConfig(Path file) {
        try {
            return parseConfig(file);
        } catch (IllegalArgumentException e) {
            // a method's reader or validation names the setting, not the file; the user needs both
            Path dir = file.toAbsolutePath().getParent();
            String m = e.getMessage();
            if (m != null && (m.contains(file.toString()) || (dir != null && m.contains(dir.toString())))) throw e;
            throw new IllegalArgumentException(file + ": " + m, e);
        }
    }

    private static AdapterConfig parseConfig(Path file) {
        JsonNode root = readJson(file);
        String where = file.toString();
        String type = root.path("peft_type").asText("LORA");
        AdapterMethod reader = null;
        TreeSet<String> known = new TreeSet<>();
        for (String n : AdapterMethods.names()) {
            AdapterMethod m = AdapterMethods.get(n);
            known.add(m.peftType());
            if (reader == null && m.peftType().equalsIgnoreCase(type)) reader = m;
        }
        if (reader == null) throw new IllegalArgumentException(where + ": peft_type '" + type + "' is not supported (known: " + String.join(", ", known) + ")");
        // spark-lora's sidecar names the method; its own reader interprets the PEFT keys (Delta-LoRA's rank-2r file)
        Optional<JsonNode> side = readSidecar(file.resolveSibling(SIDECAR_FILE));
        if (side.isPresent() && side.get().hasNonNull("method") && AdapterMethods.names().contains(side.get().get("method").asText())) {
            AdapterMethod named = AdapterMethods.get(side.get().get("method").asText());
            if (named.peftType().equalsIgnoreCase(type)) reader = named;
        }
        if (root.hasNonNull("layers_to_transform")) throw new IllegalArgumentException(where + ": layers_to_transform is not supported yet");
        if (root.hasNonNull("modules_to_save") && root.get("modules_to_save").size() > 0) {
            throw new IllegalArgumentException(where + ": modules_to_save is not supported yet");
        }
        JsonNode tm = root.get("target_modules");
        List<String> targets = new ArrayList<>();
        if (tm == null || tm.isNull()) throw new IllegalArgumentException(where + ": target_modules is missing");
        if (tm.isTextual()) targets.add("re:" + tm.asText());          // PEFT: a string is a full-match regex
        else tm.forEach(n -> targets.add(n.asText()));
        AdapterConfig base = new AdapterConfig(reader.name(), 8, 8, 0, targets, false, root.path("bias").asText("none"), "kaiming");
        AdapterConfig config = reader.readPeftConfig(root, where, base);
        JsonNode tt = root.get(AdapterConfig.TRAINABLE_TOKENS);
        if (tt != null && !tt.isNull()) {
            if (!tt.isArray()) {
                throw new IllegalArgumentException(where + ": " + AdapterConfig.TRAINABLE_TOKENS + " per layer (a mapping) is not supported; "
                        + "give a list of token ids, which applies to the token embedding (and a tied head)");
            }
            int[] ids = new int[tt.size()];
            for (int i = 0; i < ids.length; i++) {
                if (!tt.get(i).isIntegralNumber()) throw new IllegalArgumentException(where + ": " + AdapterConfig.TRAINABLE_TOKENS + "[" + i + "] is not a token id");
                ids[i] = tt.get(i).asInt();
            }
            config = config.withTrainableTokens(ids);
            config.trainableTokenIndices();
        }
        Optional<JsonNode> sidecar = readSidecar(file.resolveSibling(SIDECAR_FILE));
        if (sidecar.isPresent()) {
            JsonNode s = sidecar.get();
            String method = s.path("method").asText(config.method());
            AdapterMethod m = AdapterMethods.get(method);
            if (!m.peftType().equalsIgnoreCase(type)) {
                throw new IllegalArgumentException(file.resolveSibling(SIDECAR_FILE) + ": method '" + method + "' is stored as peft_type "
                        + m.peftType() + ", but " + where + " says " + type);
            }
            // the sidecar holds the method's settings exactly as given (the PEFT file may state them in another form:
            // GLoRA's per-layer structures, for one); the token ids stay those of adapter_config.json
            java.util.TreeMap<String, String> options = new java.util.TreeMap<>();
            s.path("options").fields().forEachRemaining(e -> options.put(e.getKey(), e.getValue().asText()));
            String tokens = config.options().get(AdapterConfig.TRAINABLE_TOKENS);
            if (tokens != null) options.put(AdapterConfig.TRAINABLE_TOKENS, tokens);
            // a setting a run fills in (empty by default: AdaLoRA's rank pattern) is in adapter_config.json only
            config.filledIn().forEach(options::putIfAbsent);
            config = new AdapterConfig(method, config.r(), config.alpha(), config.dropout(), config.targetModules(), config.rslora(),
                    config.bias(), config.init(), options);
        }
        config.adapterMethod().validate(config);
        return config;
    }

    private static JsonNode readJson(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read adapter config: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + ": expected a JSON object");
        return root;
    }

    private static Optional<JsonNode> readSidecar(Path file) {
        return Files.exists(file) ? Optional.of(readJson(file)) : Optional.empty();
    }

    /** PEFT's adapter_config.json for {@code c}: the keys of its peft_type and no others. */
    public static ObjectNode configJson(AdapterConfig c, Architecture arch, String baseModel) {
        AdapterMethod m = c.adapterMethod();
        ObjectNode o = JSON.createObjectNode();
        o.put("peft_type", m.peftType());
        o.put("task_type", "CAUSAL_LM");
        o.put("base_model_name_or_path", baseModel);
        if (c.targetModules().size() == 1 && c.targetModules().get(0).startsWith("re:")) {
            o.put("target_modules", c.targetModules().get(0).substring(3));
        } else {
            ArrayNode t = o.putArray("target_modules");
            c.targetModules().forEach(t::add);
        }
        o.put("bias", c.bias());
        o.put("fan_in_fan_out", arch == Architecture.GPT2);   // GPT-2's Conv1D stores W as [in, out]
        o.put("inference_mode", true);
        o.putNull("modules_to_save");
        o.putNull("layers_to_transform");
        o.putNull("layers_pattern");
        int[] tokens = c.trainableTokenIndices();
        // only when set: PEFT's LoraConfig has the key, VeraConfig (for one) does not
        if (tokens.length > 0) {
            ArrayNode ids = o.putArray(AdapterConfig.TRAINABLE_TOKENS);
            for (int id : tokens) ids.add(id);
        }
        m.writePeftConfig(o, c);
        return o;
    }

    /** The sidecar: spark-lora's method, its settings and where the adapter came from. */
    public static ObjectNode sidecarJson(AdapterConfig c, String baseModel) {
        return sidecarJson(c, baseModel, null);
    }

    /** The sidecar, with {@code peft_caveat} when PEFT cannot load this method on the model's family. */
    public static ObjectNode sidecarJson(AdapterConfig c, String baseModel, Architecture arch) {
        ObjectNode o = JSON.createObjectNode();
        o.put("format_version", 1);
        o.put("written_by", "spark-lora");
        o.put("method", c.method());
        String caveat = arch == null ? null : c.adapterMethod().peftCaveat(arch);
        if (caveat != null) o.put("peft_caveat", caveat);
        ObjectNode opts = o.putObject("options");
        // the token ids are in adapter_config.json already, as PEFT spells them
        // empty values (a setting a run fills in, such as AdaLoRA's rank pattern) are left to adapter_config.json
        c.options().forEach((k, v) -> { if (!k.equals(AdapterConfig.TRAINABLE_TOKENS) && !v.isEmpty()) opts.put(k, v); });
        o.put("base_model", baseModel);
        return o;
    }

    /** The adapter's tensors under PEFT's names. */
    public static Map<String, INDArray> tensors(AttachedAdapter adapter) {
        Map<String, INDArray> t = new LinkedHashMap<>();
        if (adapter.method().savesSharedTensors(adapter.config())) {
            adapter.shared().forEach((k, p) -> t.put(SHARED_PREFIX + k, p.value()));
        }
        adapter.layers().forEach((module, a) -> a.stateDict().forEach((k, v) -> t.put(PREFIX + module + "." + k, v)));
        for (Parameter b : adapter.trainableBiases()) t.put(PREFIX + b.name(), b.value());
        if (adapter.tokenRows() != null) t.put(tokenRowsKey(adapter), adapter.tokenRows().rows().value());
        return t;
    }

    /** PEFT's name of the trainable token rows: under the token embedding module. */
    static String tokenRowsKey(AttachedAdapter adapter) {
        String emb = adapter.model().tokenEmbedding().name();
        return PREFIX + emb.substring(0, emb.length() - ".weight".length()) + "." + AttachedAdapter.TOKEN_ROWS_KEY;
    }

    /** Writes the adapter directory atomically (it appears complete or not at all), as PEFT reads it. */
    public static void save(AttachedAdapter adapter, Path dir, String baseModel) {
        save(adapter, dir, baseModel, true);
    }

    /**
     * Writes the adapter directory atomically. {@code asPeftFile}: the tensors as the method gives them to PEFT
     * ({@link AdapterMethod#peftFile}: AdaLoRA's sliced to its rank pattern); false (checkpoints): every tensor in full.
     */
    public static void save(AttachedAdapter adapter, Path dir, String baseModel, boolean asPeftFile) {
        try {
            ObjectNode config = configJson(adapter.config(), adapter.model().config().architecture(), baseModel);
            Map<String, INDArray> tensors = tensors(adapter);
            if (asPeftFile) tensors = adapter.method().peftFile(adapter, tensors, config, PREFIX);
            for (Map.Entry<String, INDArray> t : tensors.entrySet()) {
                INDArray v = t.getValue();
                if (v.length() > 0 && (v.isNaN().any() || v.isInfinite().any())) {
                    throw new IllegalStateException("refusing to write adapter " + dir + ": tensor " + t.getKey() + " holds NaN or infinite values");
                }
            }
            Map<String, INDArray> written = tensors;
            AtomicFiles.writeDirectory(dir, tmp -> {
                Files.writeString(tmp.resolve(CONFIG_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(config));
                Architecture arch = adapter.model().config().architecture();
                Files.writeString(tmp.resolve(SIDECAR_FILE), JSON.writerWithDefaultPrettyPrinter()
                        .writeValueAsString(sidecarJson(adapter.config(), baseModel, arch)));
                String caveat = adapter.method().peftCaveat(arch);
                if (caveat != null) System.err.println("note: " + dir + ": " + caveat);
                SafetensorsWriter.write(tmp.resolve(WEIGHTS_FILE), written, Map.of("format", "pt"), DataType.FLOAT);
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
            String pickle = io.sparklora.checkpoint.PickleFiles.firstPickle(fileNames(dir));
            if (pickle != null) {
                throw io.sparklora.checkpoint.PickleFiles.refusal(dir.toString(), pickle + " (there is no " + WEIGHTS_FILE + ")",
                        io.sparklora.checkpoint.PickleFiles.convertAdapter());
            }
            throw new IllegalArgumentException(dir + ": no " + WEIGHTS_FILE);
        }
        AdapterConfig config = readConfig(configFile);
        boolean ours = Files.exists(dir.resolve(SIDECAR_FILE));
        AttachedAdapter attached = AttachedAdapter.attach(model, adapterName, config, 0);
        try (SafetensorsReader reader = SafetensorsReader.open(weightsFile)) {
            Map<String, INDArray> all = new LinkedHashMap<>();
            for (String n : reader.names()) all.put(n, reader.read(n));
            TreeSet<String> unused = new TreeSet<>(all.keySet());
            unused.removeAll(loadTensors(attached, all, weightsFile.toString(), !ours));
            if (!unused.isEmpty()) {
                throw new IllegalArgumentException(weightsFile + ": tensors that match no targeted layer of this model: "
                        + String.join(", ", unused.stream().limit(8).toList()) + (unused.size() > 8 ? ", ..." : ""));
            }
        } catch (RuntimeException e) {
            attached.detach();
            throw e;
        }
        return attached;
    }

    /** The names of the files in {@code dir}, sorted (adapter_model.bin first among the pickles a PEFT save leaves). */
    private static List<String> fileNames(Path dir) {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted(java.util.Comparator
                    .comparing((String n) -> !n.startsWith("adapter_model")).thenComparing(n -> n)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list adapter directory " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Loads tensors in PEFT naming (as {@link #tensors} names them) into an attached adapter: every layer's,
     * the trained biases, and the shared ones that are present. Returns the names it used.
     *
     * @param requireShared whether a missing shared tensor is an error (it is for a file spark-lora did not
     *                      write: the pair cannot be regenerated from the key as another library drew it)
     */
    public static java.util.Set<String> loadTensors(AttachedAdapter adapter, Map<String, INDArray> peft, String where, boolean requireShared) {
        java.util.Set<String> used = new java.util.HashSet<>();
        for (Map.Entry<String, Parameter> e : adapter.shared().entrySet()) {
            String name = SHARED_PREFIX + e.getKey();
            INDArray t = peft.get(name);
            if (t == null) {
                if (requireShared) throw new IllegalArgumentException(where + ": tensor " + name + " is missing (save it with save_projection=true)");
                continue;
            }
            Adapter.load(e.getValue(), t, "base_model", e.getKey(), where);
            used.add(name);
        }
        for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
            Map<String, INDArray> mine = new LinkedHashMap<>();
            for (String key : e.getValue().stateDict().keySet()) {
                String name = PREFIX + e.getKey() + "." + key;
                if (peft.containsKey(name)) {
                    mine.put(key, peft.get(name));
                    used.add(name);
                }
            }
            e.getValue().loadStateDict(mine, where);
        }
        for (Parameter b : adapter.trainableBiases()) {
            String name = PREFIX + b.name();
            if (!peft.containsKey(name)) throw new IllegalArgumentException(where + ": bias=" + adapter.config().bias() + " but tensor " + name + " is missing");
            b.set(peft.get(name).castTo(b.value().dataType()));
            used.add(name);
        }
        if (adapter.tokenRows() != null) {
            String name = tokenRowsKey(adapter);
            if (!peft.containsKey(name)) {
                throw new IllegalArgumentException(where + ": " + AdapterConfig.TRAINABLE_TOKENS + " is set but tensor " + name + " is missing");
            }
            Adapter.load(adapter.tokenRows().rows(), peft.get(name), "token embedding", AttachedAdapter.TOKEN_ROWS_KEY, where);
            used.add(name);
        }
        return used;
    }
}
