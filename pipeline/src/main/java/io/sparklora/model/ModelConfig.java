package io.sparklora.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * The shape of a decoder-only model, read from a Hugging Face {@code config.json}.
 *
 * <p>Field names are the architecture-neutral ones; {@link #fromJson} maps GPT-2's
 * ({@code n_embd}, {@code n_layer}, ...) and the Llama family's ({@code hidden_size}, ...) keys onto them.
 * {@code source} is the config.json as read (null for a model built here): {@link #toJson} writes it back
 * unchanged, so keys the engine does not model ({@code bos_token_id}, {@code rope_scaling}, ...) survive a
 * load and save.
 *
 * @param headDim          per-head width D; q_proj has heads·D outputs, k/v_proj kvHeads·D (may differ from hidden/heads)
 * @param qkvBias          q, k and v projections have biases (Llama's attention_bias, Qwen2)
 * @param outputBias       o_proj has a bias (Llama's attention_bias)
 * @param mlpBias          gate, up and down projections have biases (Llama's mlp_bias)
 * @param slidingWindow    attention window in positions, 0 when attention is full (Mistral, Qwen2, Phi-3)
 */
public record ModelConfig(
        Architecture architecture,
        int vocabSize,
        int hiddenSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int intermediateSize,
        int maxPositions,
        double normEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        boolean qkvBias,
        boolean outputBias,
        boolean mlpBias,
        int slidingWindow,
        String torchDtype,
        ObjectNode source) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public ModelConfig {
        if (vocabSize <= 0 || hiddenSize <= 0 || numLayers <= 0 || numHeads <= 0 || numKvHeads <= 0 || headDim <= 0
                || intermediateSize <= 0 || maxPositions <= 0) {
            throw new ModelConfigException("model config has a non-positive size: " + describe(architecture, vocabSize, hiddenSize,
                    numLayers, numHeads, numKvHeads, headDim, intermediateSize, maxPositions));
        }
        if (architecture == Architecture.GPT2 && hiddenSize != numHeads * headDim) {
            throw new ModelConfigException("hidden size " + hiddenSize + " is not divisible by the number of heads " + numHeads);
        }
        if (numHeads % numKvHeads != 0) {
            throw new ModelConfigException("attention heads " + numHeads + " are not a multiple of key/value heads " + numKvHeads);
        }
        if (ropeScaling == null) ropeScaling = RopeScaling.NONE;
        if (slidingWindow < 0) throw new ModelConfigException("sliding window must not be negative, got " + slidingWindow);
    }

    private static String describe(Architecture a, int... sizes) {
        return a + " vocab=" + sizes[0] + " hidden=" + sizes[1] + " layers=" + sizes[2] + " heads=" + sizes[3]
                + " kv_heads=" + sizes[4] + " head_dim=" + sizes[5] + " intermediate=" + sizes[6] + " positions=" + sizes[7];
    }

    /** Llama's {@code attention_bias}: every attention projection has a bias. */
    public boolean attentionBias() { return qkvBias && outputBias; }

    /** A GPT-2 shaped config (n_inner = 4·d), as Hugging Face's GPT2Config defaults describe it. */
    public static ModelConfig gpt2(int vocab, int dModel, int layers, int heads, int context) {
        if (heads <= 0 || dModel % heads != 0) {
            throw new ModelConfigException("hidden size " + dModel + " is not divisible by the number of heads " + heads);
        }
        return new ModelConfig(Architecture.GPT2, vocab, dModel, layers, heads, heads, dModel / heads, 4 * dModel, context,
                1e-5, 0, RopeScaling.NONE, true, true, true, false, 0, "float32", null);
    }

    /** A Llama shaped config. */
    public static ModelConfig llama(int vocab, int dModel, int layers, int heads, int kvHeads, int intermediate, int context) {
        if (heads <= 0 || dModel % heads != 0) {
            throw new ModelConfigException("hidden size " + dModel + " is not divisible by the number of heads " + heads);
        }
        return new ModelConfig(Architecture.LLAMA, vocab, dModel, layers, heads, kvHeads, dModel / heads, intermediate, context,
                1e-6, 10000.0, RopeScaling.NONE, false, false, false, false, 0, "float32", null);
    }

    /** The same shape under another family of the Llama block (Mistral, Qwen2, Qwen3, Phi-3), with that family's biases. */
    public ModelConfig as(Architecture arch) {
        boolean qkv = arch == Architecture.QWEN2 || (arch != Architecture.PHI3 && arch != Architecture.QWEN3 && qkvBias);
        return new ModelConfig(arch, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize,
                maxPositions, normEps, ropeTheta, ropeScaling, tieWordEmbeddings, qkv, arch == Architecture.LLAMA && outputBias, arch == Architecture.LLAMA && mlpBias,
                slidingWindow, torchDtype, null);
    }

    /** This config with another head width, scaling, tying or sliding window (for tests and built models). */
    public ModelConfig withHeadDim(int d) {
        return new ModelConfig(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, d, intermediateSize,
                maxPositions, normEps, ropeTheta, ropeScaling, tieWordEmbeddings, qkvBias, outputBias, mlpBias, slidingWindow, torchDtype, null);
    }

    public ModelConfig withRopeScaling(RopeScaling scaling) {
        return new ModelConfig(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize,
                maxPositions, normEps, ropeTheta, scaling, tieWordEmbeddings, qkvBias, outputBias, mlpBias, slidingWindow, torchDtype, null);
    }

    public ModelConfig withSlidingWindow(int window) {
        return new ModelConfig(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize,
                maxPositions, normEps, ropeTheta, ropeScaling, tieWordEmbeddings, qkvBias, outputBias, mlpBias, window, torchDtype, null);
    }

    public ModelConfig withTiedEmbeddings(boolean tied) {
        return new ModelConfig(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize,
                maxPositions, normEps, ropeTheta, ropeScaling, tied, qkvBias, outputBias, mlpBias, slidingWindow, torchDtype, null);
    }

    /**
     * This config with other bias flags (a merge that gave bias-free layers a bias: GLoRA's b'), the loaded
     * config.json's {@code attention_bias} and {@code mlp_bias} updated to match.
     */
    public ModelConfig withBiases(boolean qkv, boolean output, boolean mlp) {
        ObjectNode src = source == null ? null : source.deepCopy();
        if (src != null) {
            if (qkv != qkvBias || output != outputBias) src.put("attention_bias", qkv && output);
            if (mlp != mlpBias) src.put("mlp_bias", mlp);
        }
        return new ModelConfig(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize,
                maxPositions, normEps, ropeTheta, ropeScaling, tieWordEmbeddings, qkv, output, mlp, slidingWindow, torchDtype, src);
    }

    public static ModelConfig load(Path modelDir) {
        Path file = Files.isDirectory(modelDir) ? modelDir.resolve("config.json") : modelDir;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ModelConfigException(file + ": config.json not found (a Hugging Face model directory needs one)");
        } catch (IOException e) {
            throw new ModelConfigException(file + ": cannot read: " + e.getMessage(), e);
        }
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new ModelConfigException(file + ": malformed JSON: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " at line " + e.getLocation().getLineNr() : ""), e);
        } catch (IOException e) {
            throw new ModelConfigException(file + ": cannot parse: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelConfigException(file + ": expected a JSON object");
        }
        return fromJson(root, file.toString());
    }

    /** The config that {@code root} (a config.json) describes; every error names {@code where}. */
    public static ModelConfig fromJson(JsonNode root, String where) {
        try {
            return parse(root, where);
        } catch (ModelConfigException e) {
            // the record's own checks name the size, not the file
            if (e.getMessage() != null && e.getMessage().startsWith(where)) throw e;
            throw new ModelConfigException(where + ": " + e.getMessage(), e);
        }
    }

    private static ModelConfig parse(JsonNode root, String where) {
        String modelType = root.path("model_type").asText(null);
        if (modelType == null) {
            throw new ModelConfigException(where + ": missing 'model_type' (supported: " + Architecture.supported() + ")");
        }
        Architecture arch = Architecture.fromModelType(modelType, where);
        ObjectNode source = root.isObject() ? ((ObjectNode) root).deepCopy() : null;
        String dtype = root.path("torch_dtype").asText(root.path("dtype").asText("float32"));
        if (arch == Architecture.GPT2) {
            String act = root.path("activation_function").asText("gelu_new");
            if (!act.equals("gelu_new") && !act.equals("gelu_pytorch_tanh")) {
                throw new ModelConfigException(where + ": activation_function '" + act + "' is not supported (gelu_new only)");
            }
            int d = requireInt(root, "n_embd", where);
            JsonNode inner = root.get("n_inner");
            if (d <= 0 || d > Integer.MAX_VALUE / 4) throw new ModelConfigException(where + ": n_embd " + d + " is out of range");
            int ff = inner == null || inner.isNull() ? 4 * d : inner.asInt();
            int heads = requirePositiveInt(root, "n_head", where);
            if (d % heads != 0) {
                throw new ModelConfigException(where + ": n_embd " + d + " is not divisible by n_head " + heads);
            }
            return new ModelConfig(arch, requireInt(root, "vocab_size", where), d, requireInt(root, "n_layer", where),
                    heads, heads, d / heads, ff, requireInt(root, "n_positions", where),
                    root.path("layer_norm_epsilon").asDouble(1e-5), 0, RopeScaling.NONE, true, true, true, false, 0, dtype, source);
        }
        String act = root.path("hidden_act").asText("silu");
        if (!act.equals("silu")) {
            throw new ModelConfigException(where + ": hidden_act '" + act + "' is not supported (silu only)");
        }
        boolean mlpBias = root.path("mlp_bias").asBoolean(false);
        if (mlpBias && arch != Architecture.LLAMA) {
            throw new ModelConfigException(where + ": mlp_bias is a Llama setting; " + arch.modelType() + "'s MLP has no biases");
        }
        if (root.has("partial_rotary_factor") && root.get("partial_rotary_factor").asDouble() != 1.0) {
            throw new ModelConfigException(where + ": partial_rotary_factor " + root.get("partial_rotary_factor")
                    + " is not supported (rotary over the whole head only)");
        }
        int heads = requirePositiveInt(root, "num_attention_heads", where);
        int kv = root.hasNonNull("num_key_value_heads") ? root.get("num_key_value_heads").asInt() : heads;
        int d = requireInt(root, "hidden_size", where);
        int headDim;
        if (root.hasNonNull("head_dim")) {
            headDim = requireInt(root, "head_dim", where);
        } else {
            if (d % heads != 0) {
                throw new ModelConfigException(where + ": hidden_size " + d + " is not divisible by num_attention_heads "
                        + heads + " and no head_dim is given");
            }
            headDim = d / heads;
        }
        int positions = root.path("max_position_embeddings").asInt(2048);
        RopeScaling scaling = RopeScaling.fromJson(root.get("rope_scaling"), positions, where);
        boolean bias = root.path("attention_bias").asBoolean(false);
        boolean qkvBias = switch (arch) {
            case QWEN2 -> true;                  // Qwen2Attention: q/k/v with bias, o without
            case PHI3 -> false;
            default -> bias;
        };
        boolean outputBias = arch != Architecture.QWEN2 && arch != Architecture.PHI3 && bias;
        return new ModelConfig(arch, requireInt(root, "vocab_size", where), d,
                requireInt(root, "num_hidden_layers", where), heads, kv, headDim,
                requireInt(root, "intermediate_size", where),
                positions,
                root.path("rms_norm_eps").asDouble(1e-6),
                root.path("rope_theta").asDouble(10000.0),
                scaling,
                root.path("tie_word_embeddings").asBoolean(false),
                qkvBias, outputBias, mlpBias, slidingWindow(arch, root, where), dtype, source);
    }

    /** The attention window the config asks for, 0 for full attention. */
    private static int slidingWindow(Architecture arch, JsonNode root, String where) {
        JsonNode w = root.get("sliding_window");
        if (w == null || w.isNull()) return 0;
        // Qwen2/Qwen3 carry a window but use it only when use_sliding_window is true
        if ((arch == Architecture.QWEN2 || arch == Architecture.QWEN3) && !root.path("use_sliding_window").asBoolean(false)) return 0;
        if (!w.canConvertToInt() || w.asInt() <= 0) {
            throw new ModelConfigException(where + ": sliding_window must be a positive integer or null, got " + w);
        }
        return w.asInt();
    }

    /**
     * Refuses a sequence the model would attend to differently from full causal attention: one longer than
     * the sliding window (sliding-window attention is not implemented).
     */
    public void checkSequenceLength(int seq) {
        if (slidingWindow > 0 && seq > slidingWindow) {
            throw new ModelConfigException(architecture.modelType() + ": sliding_window " + slidingWindow
                    + " is shorter than the sequence length " + seq + " in use; sliding-window attention is not"
                    + " implemented, so use sequences of at most " + slidingWindow + " tokens");
        }
    }

    private static int requirePositiveInt(JsonNode root, String key, String where) {
        int n = requireInt(root, key, where);
        if (n <= 0) throw new ModelConfigException(where + ": '" + key + "' must be positive, got " + n);
        return n;
    }

    private static int requireInt(JsonNode root, String key, String where) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) throw new ModelConfigException(where + ": missing '" + key + "'");
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new ModelConfigException(where + ": '" + key + "' must be an integer, got " + n);
        }
        return n.asInt();
    }

    /**
     * The config.json to write for this model: the one it was loaded from, unchanged (callers update keys
     * whose meaning changed, such as torch_dtype), or, for a model built here, the one Hugging Face would write.
     */
    public ObjectNode toJson() {
        if (source != null) return source.deepCopy();
        ObjectNode o = JSON.createObjectNode();
        o.put("model_type", architecture.modelType());
        o.putArray("architectures").add(architecture.hfClass());
        o.put("vocab_size", vocabSize);
        o.put("torch_dtype", torchDtype);
        if (architecture == Architecture.GPT2) {
            o.put("n_embd", hiddenSize);
            o.put("n_layer", numLayers);
            o.put("n_head", numHeads);
            o.put("n_positions", maxPositions);
            o.put("n_ctx", maxPositions);
            if (intermediateSize != 4 * hiddenSize) o.put("n_inner", intermediateSize);
            else o.putNull("n_inner");
            o.put("activation_function", "gelu_new");
            o.put("layer_norm_epsilon", normEps);
            o.put("resid_pdrop", 0.0);
            o.put("embd_pdrop", 0.0);
            o.put("attn_pdrop", 0.0);
            o.put("tie_word_embeddings", true);
        } else {
            o.put("hidden_size", hiddenSize);
            o.put("intermediate_size", intermediateSize);
            o.put("num_hidden_layers", numLayers);
            o.put("num_attention_heads", numHeads);
            o.put("num_key_value_heads", numKvHeads);
            o.put("head_dim", headDim);
            o.put("max_position_embeddings", maxPositions);
            o.put("rms_norm_eps", normEps);
            o.put("rope_theta", ropeTheta);
            if (ropeScaling.isNone()) {
                o.putNull("rope_scaling");
            } else {
                ObjectNode rs = o.putObject("rope_scaling");
                rs.put("rope_type", ropeScaling.type());
                rs.put("factor", ropeScaling.factor());
                if (ropeScaling.type().equals("llama3")) {
                    rs.put("low_freq_factor", ropeScaling.lowFreqFactor());
                    rs.put("high_freq_factor", ropeScaling.highFreqFactor());
                    rs.put("original_max_position_embeddings", ropeScaling.originalMaxPositions());
                }
            }
            o.put("hidden_act", "silu");
            o.put("tie_word_embeddings", tieWordEmbeddings);
            if (architecture == Architecture.LLAMA || architecture == Architecture.QWEN3 || architecture == Architecture.MISTRAL) {
                o.put("attention_bias", attentionBias());
            }
            if (architecture == Architecture.LLAMA) o.put("mlp_bias", mlpBias);
            if (slidingWindow > 0) {
                o.put("sliding_window", slidingWindow);
                if (architecture == Architecture.QWEN2 || architecture == Architecture.QWEN3) o.put("use_sliding_window", true);
            } else if (architecture != Architecture.LLAMA) {
                o.putNull("sliding_window");
            }
        }
        return o;
    }
}
