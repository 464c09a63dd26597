package io.sparklora.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.checkpoint.CheckpointException;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.checkpoint.SafetensorsDType;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.model.Architecture;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Tensors;
import io.sparklora.model.TransformerLM;
import io.sparklora.util.AtomicFiles;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * NF4 bases in and out of Hugging Face model directories.
 *
 * <p><b>Quantize on load</b> ({@link #loadQuantizing}): an fp32, fp16 or bf16 checkpoint is read one tensor at a time
 * and every linear weight of the blocks is quantized as it arrives, so at most one full-precision weight exists at once.
 *
 * <p><b>The serialized layout</b> is bitsandbytes' ({@code Linear4bit} state dict, as transformers saves and loads a
 * 4-bit model), for a weight {@code W} of shape [out, in] with n = out·in and blocks = ⌈n/64⌉:
 * <ul>
 *   <li>{@code W}: U8 [⌈n/2⌉, 1], the codes, two per byte, the first in the high nibble;</li>
 *   <li>{@code W.absmax}: F32 [blocks], or with double quantization U8 [blocks] (the 8-bit codes);</li>
 *   <li>{@code W.quant_map}: F32 [16], the NF4 values;</li>
 *   <li>with double quantization, {@code W.nested_absmax}: F32 [⌈blocks/256⌉] and {@code W.nested_quant_map}: F32 [256];</li>
 *   <li>{@code W.quant_state.bitsandbytes__nf4}: U8, the UTF-8 bytes of a JSON object with {@code quant_type},
 *       {@code blocksize}, {@code dtype}, {@code shape} and, when nested, {@code nested_blocksize},
 *       {@code nested_dtype} and {@code nested_offset}.</li>
 * </ul>
 * GPT-2's Conv1D weights are quantized transposed, [out, in], as transformers' loader does before quantizing. The
 * config carries {@code quantization_config} ({@code quant_method: bitsandbytes}, {@code load_in_4bit},
 * {@code bnb_4bit_quant_type: nf4}, {@code bnb_4bit_use_double_quant}); every other tensor is written in fp32.
 * Loading such a directory ({@link #load}) memory-maps the codes rather than copying them.
 */
public final class QuantizedCheckpoints {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The quant-state key suffix bitsandbytes packs its non-tensor items under, for NF4. */
    public static final String QUANT_STATE = ".quant_state.bitsandbytes__nf4";
    private static final List<String> COMPONENTS = List.of(".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", QUANT_STATE);

    private QuantizedCheckpoints() {}

    /** Whether {@code dir}'s config declares a bitsandbytes 4-bit checkpoint. */
    public static boolean isQuantized(Path dir) {
        JsonNode q = quantizationConfig(dir);
        return q != null && "bitsandbytes".equals(q.path("quant_method").asText()) && q.path("load_in_4bit").asBoolean(false);
    }

    private static JsonNode quantizationConfig(Path dir) {
        Path cfg = dir.resolve("config.json");
        if (!Files.isRegularFile(cfg)) return null;
        try {
            JsonNode root = JSON.readTree(cfg.toFile());
            JsonNode q = root == null ? null : root.get("quantization_config");
            return q == null || !q.isObject() ? null : q;
        } catch (IOException e) {
            throw CheckpointException.inFile(cfg, "not valid JSON: " + e.getMessage(), e);
        }
    }

    /** Loads a model directory with its base held as {@code q} says (a bitsandbytes directory is NF4 whatever {@code q}). */
    public static TransformerLM load(Path dir, BaseQuantization q) {
        if (isQuantized(dir)) return load(dir);
        if (q.nf4()) return loadQuantizing(dir, q.doubleQuant());
        return HfModelDirectory.load(dir);
    }

    /** Reads a full-precision checkpoint, quantizing each linear weight of the blocks to NF4 as it is read. */
    public static TransformerLM loadQuantizing(Path dir, boolean doubleQuant) {
        ModelConfig config = ModelConfig.load(dir);
        Set<String> quantize = new HashSet<>(TransformerLM.quantizableWeights(config));
        boolean conv1d = config.architecture() == Architecture.GPT2;
        Map<String, INDArray> weights = new LinkedHashMap<>();
        Map<String, Nf4Tensor> quantized = new LinkedHashMap<>();
        CheckpointFiles.visitTensors(dir, (name, reader) -> {
            INDArray w = CheckpointFiles.readAsFloat(reader, name);
            if (!quantize.contains(name) || w.rank() != 2) {
                weights.put(name, w);
                return;
            }
            INDArray outIn = conv1d ? w.transpose().dup('c') : w;          // Conv1D [in, out] → [out, in]
            quantized.put(name, Nf4Tensor.quantize(outIn, doubleQuant, dtypeName(reader.dtype(name))));
            Tensors.release(w, outIn);
        });
        try {
            return TransformerLM.fromWeights(config, weights, quantized);
        } catch (RuntimeException e) {
            throw new CheckpointException(dir + ": " + e.getMessage(), e);
        }
    }

    /** An NF4 copy of a full-precision model (its linear weights quantized; the other tensors shared with it). */
    public static TransformerLM quantize(TransformerLM model, boolean doubleQuant) {
        if (model.quantizedBase()) throw new IllegalArgumentException("the model is quantized already");
        ModelConfig config = model.config();
        boolean conv1d = config.architecture() == Architecture.GPT2;
        Set<String> names = new HashSet<>(TransformerLM.quantizableWeights(config));
        Map<String, INDArray> weights = new LinkedHashMap<>();
        Map<String, Nf4Tensor> quantized = new LinkedHashMap<>();
        for (Map.Entry<String, INDArray> e : model.stateDict().entrySet()) {
            if (!names.contains(e.getKey())) {
                weights.put(e.getKey(), e.getValue());
                continue;
            }
            INDArray outIn = conv1d ? e.getValue().transpose() : e.getValue();
            quantized.put(e.getKey(), Nf4Tensor.quantize(outIn, doubleQuant, "float32"));
        }
        return TransformerLM.fromWeights(config, weights, quantized);
    }

    private static String dtypeName(SafetensorsDType t) {
        return switch (t) {
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> "float32";
        };
    }

    /** The pieces of one quantized weight as found in the files, checked when all are in. */
    private static final class Found {
        ByteBuffer codes;
        long[] codesShape;
        SafetensorsDType codesType;
        INDArray absmax;
        SafetensorsDType absmaxType;
        INDArray quantMap;
        INDArray nestedAbsmax;
        INDArray nestedQuantMap;
        JsonNode state;
        Path file;
    }

    /**
     * Loads a bitsandbytes 4-bit checkpoint as an NF4 base, the codes memory-mapped. Anything missing, truncated or
     * inconsistent (a shape that disagrees with the config, a block size other than 64, a quant map that is not NF4's)
     * is refused with an error naming the file and the tensor.
     */
    public static TransformerLM load(Path dir) {
        ModelConfig config = ModelConfig.load(dir);
        JsonNode qc = quantizationConfig(dir);
        String type = qc.path("bnb_4bit_quant_type").asText("fp4");
        if (!"nf4".equals(type)) {
            throw CheckpointException.inFile(dir.resolve("config.json"), "quantization_config.bnb_4bit_quant_type is '" + type
                    + "'; spark-lora reads NF4 checkpoints only");
        }
        List<String> names = TransformerLM.quantizableWeights(config);
        Map<String, Found> found = new LinkedHashMap<>();
        for (String n : names) found.put(n, new Found());
        Map<String, INDArray> weights = new LinkedHashMap<>();
        CheckpointFiles.visitTensors(dir, (name, reader) -> {
            String owner = ownerOf(name, found);
            if (owner == null) {
                weights.put(name, CheckpointFiles.readAsFloat(reader, name));
                return;
            }
            Found f = found.get(owner);
            f.file = reader.file();
            String part = name.substring(owner.length());
            switch (part) {
                case "" -> {
                    f.codes = reader.mapBytes(name);
                    f.codesShape = reader.shape(name);
                    f.codesType = reader.dtype(name);
                }
                case ".absmax" -> {
                    f.absmaxType = reader.dtype(name);
                    f.absmax = f.absmaxType == SafetensorsDType.U8 ? reader.readRaw(name) : CheckpointFiles.readAsFloat(reader, name);
                }
                case ".quant_map" -> f.quantMap = CheckpointFiles.readAsFloat(reader, name);
                case ".nested_absmax" -> f.nestedAbsmax = CheckpointFiles.readAsFloat(reader, name);
                case ".nested_quant_map" -> f.nestedQuantMap = CheckpointFiles.readAsFloat(reader, name);
                case QUANT_STATE -> {
                    INDArray raw = reader.readRaw(name);
                    byte[] bytes = new byte[(int) raw.length()];
                    for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) raw.getInt(i);
                    try {
                        f.state = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
                    } catch (IOException e) {
                        throw CheckpointException.inTensor(reader.file(), name, "is not the UTF-8 bytes of a JSON object: " + e.getMessage(), e);
                    }
                }
                default -> throw CheckpointException.inTensor(reader.file(), name, "is not part of a bitsandbytes 4-bit weight");
            }
        });
        Map<String, Nf4Tensor> quantized = new LinkedHashMap<>();
        for (Map.Entry<String, Found> e : found.entrySet()) quantized.put(e.getKey(), assemble(dir, config, e.getKey(), e.getValue()));
        try {
            return TransformerLM.fromWeights(config, weights, quantized);
        } catch (RuntimeException e) {
            throw new CheckpointException(dir + ": " + e.getMessage(), e);
        }
    }

    /** The quantized weight a tensor name belongs to ({@code W} itself or one of its components), or null. */
    private static String ownerOf(String name, Map<String, Found> found) {
        if (found.containsKey(name)) return name;
        for (String c : COMPONENTS) {
            if (name.endsWith(c)) {
                String owner = name.substring(0, name.length() - c.length());
                if (found.containsKey(owner)) return owner;
            }
        }
        return null;
    }

    private static Nf4Tensor assemble(Path dir, ModelConfig config, String name, Found f) {
        Path file = f.file != null ? f.file : dir;
        if (f.codes == null) {
            throw CheckpointException.inTensor(file, name, f.file == null ? "is missing: a 4-bit checkpoint holds every linear weight of the blocks quantized"
                    : "is missing, though its quantization state is there");
        }
        if (f.codesType != SafetensorsDType.U8) throw CheckpointException.inTensor(file, name, "has dtype " + f.codesType + ", expected U8 (packed 4-bit codes)");
        if (f.state == null) throw CheckpointException.inTensor(file, name + QUANT_STATE, "is missing (the quant state: shape, block size, dtype)");
        if (f.absmax == null) throw CheckpointException.inTensor(file, name + ".absmax", "is missing");
        if (f.quantMap == null) throw CheckpointException.inTensor(file, name + ".quant_map", "is missing");
        JsonNode s = f.state;
        String qs = name + QUANT_STATE;
        if (!"nf4".equals(s.path("quant_type").asText())) throw CheckpointException.inTensor(file, qs, "has quant_type '" + s.path("quant_type").asText() + "', expected nf4");
        if (s.path("blocksize").asInt(-1) != Nf4.BLOCK) throw CheckpointException.inTensor(file, qs, "has blocksize " + s.path("blocksize") + ", expected " + Nf4.BLOCK);
        long[] expected = outIn(config, name);
        JsonNode shape = s.path("shape");
        if (!shape.isArray() || shape.size() != 2 || shape.get(0).asLong() != expected[0] || shape.get(1).asLong() != expected[1]) {
            throw CheckpointException.inTensor(file, qs, "has shape " + shape + " but the config implies [" + expected[0] + ", " + expected[1] + "] ([out, in])");
        }
        int rows = (int) expected[0], cols = (int) expected[1];
        long n = (long) rows * cols;
        int blocks = Nf4.blocks(n);
        if (f.codes.remaining() != (n + 1) / 2) {
            throw CheckpointException.inTensor(file, name, "holds " + f.codes.remaining() + " bytes of codes, a [" + rows + ", " + cols + "] weight needs " + (n + 1) / 2);
        }
        float[] map = floats(f.quantMap);
        if (map.length != 16) throw CheckpointException.inTensor(file, name + ".quant_map", "has " + map.length + " values, expected 16");
        for (int i = 0; i < 16; i++) {
            if (map[i] != Nf4.CODE[i]) {
                throw CheckpointException.inTensor(file, name + ".quant_map", "value " + i + " is " + map[i] + ", NF4's is " + Nf4.CODE[i] + " (not an NF4 map)");
            }
        }
        if (f.absmax.length() != blocks) throw CheckpointException.inTensor(file, name + ".absmax", "has " + f.absmax.length() + " values, expected " + blocks + " (one per 64 elements)");
        String dtype = s.path("dtype").asText("float32");
        boolean nested = s.has("nested_offset") || f.nestedAbsmax != null;
        if (!nested) {
            if (f.absmaxType == SafetensorsDType.U8) throw CheckpointException.inTensor(file, name + ".absmax", "is 8-bit but the quant state has no nested_offset");
            return new Nf4Tensor(rows, cols, f.codes, floats(f.absmax), null, dtype);
        }
        if (f.absmaxType != SafetensorsDType.U8) throw CheckpointException.inTensor(file, name + ".absmax", "has dtype " + f.absmaxType + ", expected U8 under double quantization");
        if (f.nestedAbsmax == null) throw CheckpointException.inTensor(file, name + ".nested_absmax", "is missing");
        if (f.nestedQuantMap == null) throw CheckpointException.inTensor(file, name + ".nested_quant_map", "is missing");
        if (!s.has("nested_offset")) throw CheckpointException.inTensor(file, qs, "has no nested_offset");
        if (s.path("nested_blocksize").asInt(-1) != DoubleQuant.BLOCK) {
            throw CheckpointException.inTensor(file, qs, "has nested_blocksize " + s.path("nested_blocksize") + ", expected " + DoubleQuant.BLOCK);
        }
        int nestedBlocks = (blocks + DoubleQuant.BLOCK - 1) / DoubleQuant.BLOCK;
        if (f.nestedAbsmax.length() != nestedBlocks) {
            throw CheckpointException.inTensor(file, name + ".nested_absmax", "has " + f.nestedAbsmax.length() + " values, expected " + nestedBlocks);
        }
        float[] nestedMap = floats(f.nestedQuantMap);
        if (nestedMap.length != 256) throw CheckpointException.inTensor(file, name + ".nested_quant_map", "has " + nestedMap.length + " values, expected 256");
        byte[] codes = new byte[blocks];
        for (int i = 0; i < blocks; i++) codes[i] = (byte) f.absmax.getInt(i);
        DoubleQuant dq = new DoubleQuant(codes, floats(f.nestedAbsmax), (float) s.path("nested_offset").asDouble(), nestedMap);
        return new Nf4Tensor(rows, cols, f.codes, null, dq, dtype);
    }

    private static float[] floats(INDArray a) { return a.reshape(a.length()).castTo(DataType.FLOAT).toFloatVector(); }

    /** [out, in] of a linear weight from the config's expected (checkpoint-layout) shape. */
    private static long[] outIn(ModelConfig config, String name) {
        long[] s = TransformerLM.expectedShapes(config).get(name);
        return config.architecture() == Architecture.GPT2 ? new long[]{s[1], s[0]} : s;
    }

    /**
     * Writes an NF4 model in bitsandbytes' serialized layout (see the class comment), atomically: the directory
     * appears complete or not at all. {@code companionsFrom} (may be null) supplies tokenizer files to copy along.
     */
    public static void write(TransformerLM model, Path out, Path companionsFrom) {
        if (!model.quantizedBase()) throw new IllegalArgumentException("the model holds no NF4 weights; quantize it on load first");
        Map<String, INDArray> tensors = new LinkedHashMap<>(model.fullPrecisionTensors());
        boolean doubleQuant = false;
        for (Map.Entry<String, Nf4Tensor> e : model.quantizedWeights().entrySet()) {
            tensors.putAll(serialize(e.getKey(), e.getValue()));
            doubleQuant |= e.getValue().doubleQuantized();
        }
        ObjectNode config = HfModelDirectory.configFor(model, DataType.FLOAT);
        ObjectNode qc = config.putObject("quantization_config");
        qc.put("quant_method", "bitsandbytes");
        qc.put("load_in_4bit", true);
        qc.put("load_in_8bit", false);
        qc.put("bnb_4bit_quant_type", "nf4");
        qc.put("bnb_4bit_use_double_quant", doubleQuant);
        qc.put("bnb_4bit_compute_dtype", "float32");
        qc.put("bnb_4bit_quant_storage", "uint8");
        qc.put("llm_int8_threshold", 6.0);
        qc.put("llm_int8_has_fp16_weight", false);
        qc.putNull("llm_int8_skip_modules");
        qc.put("llm_int8_enable_fp32_cpu_offload", false);
        try {
            AtomicFiles.writeDirectory(out, tmp -> {
                Files.writeString(tmp.resolve("config.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(config));
                CheckpointFiles.saveWeights(tmp, tensors, DataType.FLOAT, HfModelDirectory.DEFAULT_SHARD_BYTES);
                if (companionsFrom != null) {
                    for (String f : HfModelDirectory.COMPANION_FILES) {
                        Path src = companionsFrom.resolve(f);
                        if (Files.isRegularFile(src)) Files.copy(src, tmp.resolve(f));
                    }
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write quantized model directory " + out + ": " + e.getMessage(), e);
        }
    }

    /** One NF4 weight as bitsandbytes' state-dict tensors. */
    static Map<String, INDArray> serialize(String name, Nf4Tensor q) {
        Map<String, INDArray> t = new LinkedHashMap<>();
        byte[] bytes = q.packedBytes();
        t.put(name, ubytes(bytes).reshape(bytes.length, 1));
        ObjectNode state = JSON.createObjectNode();
        state.put("quant_type", "nf4");
        state.put("blocksize", Nf4.BLOCK);
        state.put("dtype", q.sourceDtype());
        state.putArray("shape").add(q.rows()).add(q.cols());
        if (q.doubleQuantized()) {
            DoubleQuant dq = q.doubleQuant();
            t.put(name + ".absmax", ubytes(dq.codes()));
            t.put(name + ".quant_map", Nd4j.createFromArray(Nf4.CODE.clone()));
            t.put(name + ".nested_absmax", Nd4j.createFromArray(dq.nestedAbsmax().clone()));
            t.put(name + ".nested_quant_map", Nd4j.createFromArray(dq.map().clone()));
            state.put("nested_blocksize", DoubleQuant.BLOCK);
            state.put("nested_dtype", "float32");
            state.put("nested_offset", (double) dq.offset());
        } else {
            t.put(name + ".absmax", Nd4j.createFromArray(q.absmaxFp32()));
            t.put(name + ".quant_map", Nd4j.createFromArray(Nf4.CODE.clone()));
        }
        t.put(name + QUANT_STATE, ubytes(state.toString().getBytes(StandardCharsets.UTF_8)));
        return t;
    }

    /** A UBYTE vector with these bytes. */
    private static INDArray ubytes(byte[] b) {
        INDArray a = Nd4j.create(DataType.UBYTE, b.length);
        a.data().asNio().order(ByteOrder.nativeOrder()).put(0, b);
        return a;
    }
}
