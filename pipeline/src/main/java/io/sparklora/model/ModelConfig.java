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
 * ({@code n_embd}, {@code n_layer}, ...) and Llama's ({@code hidden_size}, ...) keys onto them.
 */
public record ModelConfig(
        Architecture architecture,
        int vocabSize,
        int hiddenSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int intermediateSize,
        int maxPositions,
        double normEps,
        double ropeTheta,
        boolean tieWordEmbeddings,
        boolean attentionBias,
        String torchDtype) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public ModelConfig {
        if (vocabSize <= 0 || hiddenSize <= 0 || numLayers <= 0 || numHeads <= 0 || numKvHeads <= 0
                || intermediateSize <= 0 || maxPositions <= 0) {
            throw new ModelConfigException("model config has a non-positive size: " + this);
        }
        if (hiddenSize % numHeads != 0) {
            throw new ModelConfigException("hidden size " + hiddenSize + " is not divisible by the number of heads " + numHeads);
        }
        if (numHeads % numKvHeads != 0) {
            throw new ModelConfigException("attention heads " + numHeads + " are not a multiple of key/value heads " + numKvHeads);
        }
    }

    public int headDim() { return hiddenSize / numHeads; }

    /** A GPT-2 shaped config (n_inner = 4·d), as Hugging Face's GPT2Config defaults describe it. */
    public static ModelConfig gpt2(int vocab, int dModel, int layers, int heads, int context) {
        return new ModelConfig(Architecture.GPT2, vocab, dModel, layers, heads, heads, 4 * dModel, context,
                1e-5, 0, true, true, "float32");
    }

    /** A Llama shaped config. */
    public static ModelConfig llama(int vocab, int dModel, int layers, int heads, int kvHeads, int intermediate, int context) {
        return new ModelConfig(Architecture.LLAMA, vocab, dModel, layers, heads, kvHeads, intermediate, context,
                1e-6, 10000.0, false, false, "float32");
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

    public static ModelConfig fromJson(JsonNode root, String where) {
        String modelType = root.path("model_type").asText(null);
        if (modelType == null) {
            throw new ModelConfigException(where + ": missing 'model_type' (expected \"gpt2\" or \"llama\")");
        }
        Architecture arch = Architecture.fromModelType(modelType, where);
        String dtype = root.path("torch_dtype").asText("float32");
        if (arch == Architecture.GPT2) {
            String act = root.path("activation_function").asText("gelu_new");
            if (!act.equals("gelu_new") && !act.equals("gelu_pytorch_tanh")) {
                throw new ModelConfigException(where + ": activation_function '" + act + "' is not supported (gelu_new only)");
            }
            int d = requireInt(root, "n_embd", where);
            JsonNode inner = root.get("n_inner");
            int ff = inner == null || inner.isNull() ? 4 * d : inner.asInt();
            int heads = requireInt(root, "n_head", where);
            return new ModelConfig(arch, requireInt(root, "vocab_size", where), d, requireInt(root, "n_layer", where),
                    heads, heads, ff, requireInt(root, "n_positions", where),
                    root.path("layer_norm_epsilon").asDouble(1e-5), 0, true, true, dtype);
        }
        String act = root.path("hidden_act").asText("silu");
        if (!act.equals("silu")) {
            throw new ModelConfigException(where + ": hidden_act '" + act + "' is not supported (silu only)");
        }
        if (root.hasNonNull("rope_scaling")) {
            throw new ModelConfigException(where + ": rope_scaling is not supported yet");
        }
        int heads = requireInt(root, "num_attention_heads", where);
        int kv = root.hasNonNull("num_key_value_heads") ? root.get("num_key_value_heads").asInt() : heads;
        int d = requireInt(root, "hidden_size", where);
        if (root.hasNonNull("head_dim") && root.get("head_dim").asInt() != d / heads) {
            throw new ModelConfigException(where + ": head_dim " + root.get("head_dim").asInt()
                    + " differs from hidden_size/num_attention_heads; not supported");
        }
        return new ModelConfig(arch, requireInt(root, "vocab_size", where), d,
                requireInt(root, "num_hidden_layers", where), heads, kv,
                requireInt(root, "intermediate_size", where),
                root.path("max_position_embeddings").asInt(2048),
                root.path("rms_norm_eps").asDouble(1e-6),
                root.path("rope_theta").asDouble(10000.0),
                root.path("tie_word_embeddings").asBoolean(false),
                root.path("attention_bias").asBoolean(false), dtype);
    }

    private static int requireInt(JsonNode root, String key, String where) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) throw new ModelConfigException(where + ": missing '" + key + "'");
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new ModelConfigException(where + ": '" + key + "' must be an integer, got " + n);
        }
        return n.asInt();
    }

    /** The config.json Hugging Face would write for this model, so saved checkpoints load there. */
    public ObjectNode toJson() {
        ObjectNode o = JSON.createObjectNode();
        o.put("model_type", architecture.modelType());
        o.put("vocab_size", vocabSize);
        o.put("torch_dtype", torchDtype);
        if (architecture == Architecture.GPT2) {
            o.putArray("architectures").add("GPT2LMHeadModel");
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
            o.putArray("architectures").add("LlamaForCausalLM");
            o.put("hidden_size", hiddenSize);
            o.put("intermediate_size", intermediateSize);
            o.put("num_hidden_layers", numLayers);
            o.put("num_attention_heads", numHeads);
            o.put("num_key_value_heads", numKvHeads);
            o.put("max_position_embeddings", maxPositions);
            o.put("rms_norm_eps", normEps);
            o.put("rope_theta", ropeTheta);
            o.put("hidden_act", "silu");
            o.put("tie_word_embeddings", tieWordEmbeddings);
            o.put("attention_bias", attentionBias);
            o.put("mlp_bias", false);
        }
        return o;
    }
}
