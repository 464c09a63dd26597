package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.factory.ops.NDBase;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import io.sparklora.quant.Nf4Tensor;
import io.sparklora.quant.Nf4Weight;

/**
 * A decoder-only language model (GPT-2, or the Llama family: Llama, Mistral, Qwen2, Qwen3, Phi-3) with a hand-written backward pass.
 *
 * <p>Forward: ids [B, T] → embeddings h0 [N, C] (N = B·T) → L blocks → final norm → logits [N, V].
 * Every tensor has the Hugging Face name of the checkpoint it loads from, so checkpoints and PEFT
 * adapters round-trip by name.
 */
public final class TransformerLM {
    private static final NDBase OPS = new NDBase();
    /** Buffers some checkpoints carry that are not parameters (causal masks, rotary tables). */
    private static final List<String> IGNORED_SUFFIXES = List.of(".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq");

    private final ModelConfig config;
    private final Parameter tokenEmbedding;       // [V, C]
    private final Parameter positionEmbedding;    // [P, C] (GPT-2) or null
    private final List<TransformerBlock> blocks;
    private final Norm finalNorm;
    private final Linear head;                    // [V, C] stored, read transposed
    private final Map<String, Parameter> parameters;   // unique, by name, in checkpoint order
    private final Map<String, Linear> linears;         // by module name, e.g. transformer.h.0.attn.c_attn
    private final Map<String, Nf4Tensor> quantized;    // linear weights held in NF4, by checkpoint name (empty: none)
    private final List<String> tensorOrder;            // every checkpoint tensor name, in checkpoint order
    private boolean activationCheckpointing;
    private boolean halfActivations;
    private int lossChunkRows;                         // 0: pick from the vocabulary size
    private TokenRows tokenRows;                       // trainable replacements of some embedding rows, or null

    /** Everything forward saved for backward. */
    /**
     * Everything forward saved for backward. Under activation checkpointing {@code blocks} holds nulls and
     * {@code blockInputs} each block's input, from which backward recomputes the block.
     */
    public record Forward(TokenBatch batch, ForwardContext ctx, long[] dropoutSeeds, List<TransformerBlock.Cache> blocks,
                          List<INDArray> blockInputs, Norm.Cache finalNorm, Linear.Cache head) {
        public INDArray logits() { return head.out(); }

        /** Frees every saved activation, logits included. */
        public void release() {
            blocks.forEach(c -> { if (c != null) c.release(); });
            // block 0's input is the caller's embeddings, not ours to free
            if (blockInputs != null) blockInputs.subList(1, blockInputs.size()).forEach(Tensors::release);
            finalNorm.release();
            if (head != null) head.release();
        }
    }

    /**
     * With checkpointing on, forward keeps only each block's input and backward recomputes the block:
     * about one more forward pass of compute for far less activation memory. Results are identical.
     */
    public void setActivationCheckpointing(boolean on) { this.activationCheckpointing = on; }

    public boolean activationCheckpointing() { return activationCheckpointing; }

    /**
     * With half activations on, each block's saved activations that only its backward reads are held in bfloat16 from
     * the end of its forward to its backward ({@link SavedActivations}, {@link TransformerBlock.Cache#halfPrecision}):
     * about 45% of a GPT-2 block's saved bytes in LoRA mode, for two casts per tensor. Gradients are no longer exact:
     * they carry the rounding of 8-bit mantissas (docs/BENCHMARKS.md, "Half-precision saved activations", gives the
     * measured error). fp32 models only; off by default. Under activation checkpointing it has nothing to do.
     */
    public void setHalfActivations(boolean on) { this.halfActivations = on; }

    public boolean halfActivations() { return halfActivations; }

    /**
     * Selective recomputation: every layer's attention drops its probabilities in forward and recomputes them in
     * backward ({@link CausalSelfAttention#setRecomputeProbs}). Results are identical; it costs one q·kᵀ matmul and
     * softmax per layer in backward and saves B·H·T² floats per layer. On by default; off keeps them.
     */
    public void setRecomputeAttention(boolean on) { blocks.forEach(b -> b.attention().setRecomputeProbs(on)); }

    private TransformerLM(ModelConfig config, Map<String, INDArray> weights, Map<String, Nf4Tensor> quantized) {
        NativeHeap.tune();      // every model in this JVM trains and infers with the engine's malloc settings
        this.config = config;
        this.parameters = new LinkedHashMap<>();
        this.linears = new LinkedHashMap<>();
        this.quantized = new LinkedHashMap<>();
        this.tensorOrder = new ArrayList<>();
        boolean gpt2 = config.architecture() == Architecture.GPT2;
        int c = config.hiddenSize(), f = config.intermediateSize(), v = config.vocabSize();
        int d = config.headDim(), h = config.numHeads(), kv = config.numKvHeads();
        WeightSource w = new WeightSource(weights, quantized);
        List<TransformerBlock> bl = new ArrayList<>();
        if (gpt2) {
            tokenEmbedding = param(w, "transformer.wte.weight", "base", v, c);
            positionEmbedding = param(w, "transformer.wpe.weight", "base", config.maxPositions(), c);
            for (int i = 0; i < config.numLayers(); i++) {
                String p = "transformer.h." + i + ".";
                Norm ln1 = new LayerNorm(param(w, p + "ln_1.weight", "base", c), param(w, p + "ln_1.bias", "bias", c), config.normEps());
                Linear cAttn = linear(w, p + "attn.c_attn", false, true, c, 3 * c);
                Linear cProj = linear(w, p + "attn.c_proj", false, true, c, c);
                Norm ln2 = new LayerNorm(param(w, p + "ln_2.weight", "base", c), param(w, p + "ln_2.bias", "bias", c), config.normEps());
                Linear fc = linear(w, p + "mlp.c_fc", false, true, c, f);
                Linear proj = linear(w, p + "mlp.c_proj", false, true, f, c);
                bl.add(new TransformerBlock(ln1, CausalSelfAttention.fused(cAttn, cProj, h), ln2, new GeluMlp(fc, proj)));
            }
            finalNorm = new LayerNorm(param(w, "transformer.ln_f.weight", "base", c), param(w, "transformer.ln_f.bias", "bias", c), config.normEps());
            head = new Linear("lm_head", tokenEmbedding, null, true);   // tied
        } else {
            tokenEmbedding = param(w, "model.embed_tokens.weight", "base", v, c);
            positionEmbedding = null;
            RotaryEmbedding rope = new RotaryEmbedding(d, config.ropeTheta(), config.ropeScaling());
            Architecture arch = config.architecture();
            boolean qb = config.qkvBias(), ob = config.outputBias();
            for (int i = 0; i < config.numLayers(); i++) {
                String p = "model.layers." + i + ".";
                Norm n1 = new RmsNorm(param(w, p + "input_layernorm.weight", "base", c), config.normEps());
                CausalSelfAttention attn;
                Linear o;
                if (arch.fusedProjections()) {
                    Linear qkv = linear(w, p + "self_attn.qkv_proj", true, false, c, (h + 2 * kv) * d);
                    o = linear(w, p + "self_attn.o_proj", true, false, h * d, c);
                    attn = CausalSelfAttention.fusedRows(qkv, o, rope, h, kv);
                } else {
                    Linear q = linear(w, p + "self_attn.q_proj", true, qb, c, h * d);
                    Linear k = linear(w, p + "self_attn.k_proj", true, qb, c, kv * d);
                    Linear vv = linear(w, p + "self_attn.v_proj", true, qb, c, kv * d);
                    o = linear(w, p + "self_attn.o_proj", true, ob, h * d, c);
                    Norm qn = null, kn = null;
                    if (arch.qkNorm()) {
                        qn = new RmsNorm(param(w, p + "self_attn.q_norm.weight", "base", d), config.normEps());
                        kn = new RmsNorm(param(w, p + "self_attn.k_norm.weight", "base", d), config.normEps());
                    }
                    attn = CausalSelfAttention.separate(q, k, vv, o, qn, kn, rope, h, kv);
                }
                Norm n2 = new RmsNorm(param(w, p + "post_attention_layernorm.weight", "base", c), config.normEps());
                FeedForward mlp;
                if (arch.fusedProjections()) {
                    mlp = SwiGluMlp.fused(linear(w, p + "mlp.gate_up_proj", true, false, c, 2 * f),
                            linear(w, p + "mlp.down_proj", true, false, f, c));
                } else {
                    boolean mb = config.mlpBias();
                    Linear gate = linear(w, p + "mlp.gate_proj", true, mb, c, f);
                    Linear up = linear(w, p + "mlp.up_proj", true, mb, c, f);
                    Linear down = linear(w, p + "mlp.down_proj", true, mb, f, c);
                    mlp = new SwiGluMlp(gate, up, down);
                }
                bl.add(new TransformerBlock(n1, attn, n2, mlp));
            }
            finalNorm = new RmsNorm(param(w, "model.norm.weight", "base", c), config.normEps());
            if (config.tieWordEmbeddings()) {
                head = new Linear("lm_head", tokenEmbedding, null, true);
            } else {
                head = new Linear("lm_head", param(w, "lm_head.weight", "base", v, c), null, true);
                linears.put("lm_head", head);
            }
        }
        this.blocks = List.copyOf(bl);
        w.checkAllUsed();
    }

    // ---- construction ---------------------------------------------------------------------------

    /** Builds the model over checkpoint tensors (fp32, Hugging Face names); checks every name and shape. */
    public static TransformerLM fromWeights(ModelConfig config, Map<String, INDArray> weights) {
        return new TransformerLM(config, weights, Map.of());
    }

    /**
     * Builds the model with the linear weights named in {@code quantized} held in NF4 (QLoRA's base): each is
     * [out, in] whatever the checkpoint layout, and its name must be one of {@link #quantizableWeights}; the other
     * tensors (embeddings, norms, biases, an untied head) come from {@code weights} in full precision.
     */
    public static TransformerLM fromWeights(ModelConfig config, Map<String, INDArray> weights, Map<String, Nf4Tensor> quantized) {
        return new TransformerLM(config, weights, quantized);
    }

    /**
     * The checkpoint names of the weights a quantised base holds in NF4: every linear layer's weight in the blocks
     * (targeted by an adapter or not), in checkpoint order. Embeddings, norms and biases stay in full precision, and
     * so does the output head, as bitsandbytes' loader in transformers keeps it.
     */
    public static List<String> quantizableWeights(ModelConfig config) {
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, long[]> e : expectedShapes(config).entrySet()) {
            String n = e.getKey();
            if (e.getValue().length != 2 || !n.endsWith(".weight")) continue;
            if (n.equals("transformer.wte.weight") || n.equals("transformer.wpe.weight") || n.equals("model.embed_tokens.weight")
                    || n.equals("lm_head.weight")) continue;
            names.add(n);
        }
        return names;
    }

    /**
     * A freshly initialised model (GPT-2's scheme: N(0, 0.02), residual projections scaled by 1/√(2L),
     * norms at 1, biases at 0), seeded and reproducible.
     */
    public static TransformerLM randomInit(ModelConfig config, long seed) {
        return randomInit(config, seed, DataType.FLOAT);
    }

    public static TransformerLM randomInit(ModelConfig config, long seed, DataType dtype) {
        Random rng = Seeds.rng(seed);
        double std = 0.02, residStd = 0.02 / Math.sqrt(2.0 * config.numLayers());
        Map<String, INDArray> w = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : expectedShapes(config).entrySet()) {
            String n = e.getKey();
            long[] s = e.getValue();
            INDArray t;
            if (n.endsWith(".bias")) t = Nd4j.zeros(dtype, s);
            else if (s.length == 1) t = Nd4j.ones(dtype, s);
            else {
                boolean resid = n.endsWith("c_proj.weight") || n.endsWith("o_proj.weight") || n.endsWith("down_proj.weight");
                t = Nd4j.randn(rng, s).castTo(dtype).muli(resid ? residStd : std);
            }
            w.put(n, t);
        }
        return new TransformerLM(config, w, Map.of());
    }

    /** The tensors a checkpoint of this config holds, with their shapes in Hugging Face layout. */
    public static Map<String, long[]> expectedShapes(ModelConfig config) {
        Map<String, long[]> s = new LinkedHashMap<>();
        long c = config.hiddenSize(), f = config.intermediateSize(), v = config.vocabSize();
        long hd = (long) config.numHeads() * config.headDim(), kvd = (long) config.numKvHeads() * config.headDim();
        if (config.architecture() == Architecture.GPT2) {
            s.put("transformer.wte.weight", new long[]{v, c});
            s.put("transformer.wpe.weight", new long[]{config.maxPositions(), c});
            for (int i = 0; i < config.numLayers(); i++) {
                String p = "transformer.h." + i + ".";
                s.put(p + "ln_1.weight", new long[]{c});
                s.put(p + "ln_1.bias", new long[]{c});
                s.put(p + "attn.c_attn.weight", new long[]{c, 3 * c});
                s.put(p + "attn.c_attn.bias", new long[]{3 * c});
                s.put(p + "attn.c_proj.weight", new long[]{c, c});
                s.put(p + "attn.c_proj.bias", new long[]{c});
                s.put(p + "ln_2.weight", new long[]{c});
                s.put(p + "ln_2.bias", new long[]{c});
                s.put(p + "mlp.c_fc.weight", new long[]{c, f});
                s.put(p + "mlp.c_fc.bias", new long[]{f});
                s.put(p + "mlp.c_proj.weight", new long[]{f, c});
                s.put(p + "mlp.c_proj.bias", new long[]{c});
            }
            s.put("transformer.ln_f.weight", new long[]{c});
            s.put("transformer.ln_f.bias", new long[]{c});
        } else {
            s.put("model.embed_tokens.weight", new long[]{v, c});
            Architecture arch = config.architecture();
            boolean qb = config.qkvBias(), ob = config.outputBias();
            long d = config.headDim();
            for (int i = 0; i < config.numLayers(); i++) {
                String p = "model.layers." + i + ".";
                s.put(p + "input_layernorm.weight", new long[]{c});
                if (arch.fusedProjections()) {
                    s.put(p + "self_attn.qkv_proj.weight", new long[]{hd + 2 * kvd, c});
                } else {
                    s.put(p + "self_attn.q_proj.weight", new long[]{hd, c});
                    if (qb) s.put(p + "self_attn.q_proj.bias", new long[]{hd});
                    s.put(p + "self_attn.k_proj.weight", new long[]{kvd, c});
                    if (qb) s.put(p + "self_attn.k_proj.bias", new long[]{kvd});
                    s.put(p + "self_attn.v_proj.weight", new long[]{kvd, c});
                    if (qb) s.put(p + "self_attn.v_proj.bias", new long[]{kvd});
                }
                s.put(p + "self_attn.o_proj.weight", new long[]{c, hd});
                if (ob) s.put(p + "self_attn.o_proj.bias", new long[]{c});
                if (arch.qkNorm()) {
                    s.put(p + "self_attn.q_norm.weight", new long[]{d});
                    s.put(p + "self_attn.k_norm.weight", new long[]{d});
                }
                s.put(p + "post_attention_layernorm.weight", new long[]{c});
                if (arch.fusedProjections()) {
                    s.put(p + "mlp.gate_up_proj.weight", new long[]{2 * f, c});
                } else {
                    s.put(p + "mlp.gate_proj.weight", new long[]{f, c});
                    if (config.mlpBias()) s.put(p + "mlp.gate_proj.bias", new long[]{f});
                    s.put(p + "mlp.up_proj.weight", new long[]{f, c});
                    if (config.mlpBias()) s.put(p + "mlp.up_proj.bias", new long[]{f});
                }
                s.put(p + "mlp.down_proj.weight", new long[]{c, f});
                if (config.mlpBias()) s.put(p + "mlp.down_proj.bias", new long[]{c});
            }
            s.put("model.norm.weight", new long[]{c});
            if (!config.tieWordEmbeddings()) s.put("lm_head.weight", new long[]{v, c});
        }
        return s;
    }

    /**
     * The bytes a base of this config holds when built as {@code q} says, from the shapes alone: fp32 tensors at 4
     * bytes, NF4 weights as codes and scales ({@link Nf4Tensor#bytesFor}). Equal to {@link #baseBytesHeld()} of such a model.
     */
    public static long baseBytes(ModelConfig config, io.sparklora.quant.BaseQuantization q) {
        Set<String> nf4 = q.nf4() ? new java.util.HashSet<>(quantizableWeights(config)) : Set.of();
        long b = 0;
        for (Map.Entry<String, long[]> e : expectedShapes(config).entrySet()) {
            long n = Arrays.stream(e.getValue()).reduce(1, (x, y) -> x * y);
            b += nf4.contains(e.getKey()) ? Nf4Tensor.bytesFor(n, q.doubleQuant()) : 4 * n;
        }
        return b;
    }

    /** Parameter count of a config without building it (tied embeddings counted once). */
    public static long parameterCount(ModelConfig config) {
        return expectedShapes(config).values().stream().mapToLong(s -> Arrays.stream(s).reduce(1, (a, b) -> a * b)).sum();
    }

    private Parameter param(WeightSource w, String name, String group, long... shape) {
        Parameter p = new Parameter(name, w.take(name, shape), true, group);
        parameters.put(name, p);
        tensorOrder.add(name);
        return p;
    }

    private Linear linear(WeightSource w, String module, boolean transposed, boolean hasBias, int in, int out) {
        String wn = module + ".weight";
        Nf4Tensor q = w.quantized(wn, out, in);
        BaseWeight weight;
        if (q != null) {
            weight = new Nf4Weight(module, q, transposed);
            quantized.put(wn, q);
            tensorOrder.add(wn);
        } else {
            Parameter p = transposed ? param(w, wn, "base", out, in) : param(w, wn, "base", in, out);
            weight = new DenseWeight(p, transposed, module);
        }
        Parameter bias = hasBias ? param(w, module + ".bias", "bias", out) : null;
        Linear l = new Linear(module, weight, bias);
        linears.put(module, l);
        return l;
    }

    /** Hands out checkpoint tensors by name, checking shapes, and reports missing or unexpected ones. */
    private static final class WeightSource {
        private final Map<String, INDArray> weights;
        private final Map<String, Nf4Tensor> quantized;
        private final Set<String> used = new LinkedHashSet<>();

        WeightSource(Map<String, INDArray> weights, Map<String, Nf4Tensor> quantized) {
            this.weights = weights;
            this.quantized = quantized;
        }

        /** The NF4 form of a linear weight, [out, in], or null when it is held in full precision. */
        Nf4Tensor quantized(String name, int out, int in) {
            Nf4Tensor q = quantized.get(name);
            if (q == null) return null;
            if (weights.containsKey(name)) throw new ModelConfigException("checkpoint holds '" + name + "' both quantized and in full precision");
            if (q.rows() != out || q.cols() != in) {
                throw new ModelConfigException("quantized tensor '" + name + "' has shape [" + q.rows() + ", " + q.cols()
                        + "] but the config implies [" + out + ", " + in + "] (NF4 weights are held [out, in])");
            }
            used.add(name);
            return q;
        }

        INDArray take(String name, long... shape) {
            INDArray t = weights.get(name);
            if (t == null) throw new ModelConfigException("checkpoint is missing tensor '" + name + "' (shape " + Arrays.toString(shape) + ")");
            if (!Arrays.equals(t.shape(), shape)) {
                throw new ModelConfigException("checkpoint tensor '" + name + "' has shape " + Arrays.toString(t.shape())
                        + " but the config implies " + Arrays.toString(shape));
            }
            used.add(name);
            return t.dataType() == DataType.FLOAT || t.dataType() == DataType.DOUBLE ? t : t.castTo(DataType.FLOAT);
        }

        void checkAllUsed() {
            Set<String> unexpected = new TreeSet<>();
            for (String n : quantized.keySet()) {
                if (!used.contains(n)) {
                    throw new ModelConfigException("quantized tensor '" + n + "' is not a linear layer weight of this model"
                            + (n.equals("lm_head.weight") ? " (the head stays in full precision)" : ""));
                }
            }
            for (String n : weights.keySet()) {
                if (used.contains(n)) continue;
                if (n.equals("lm_head.weight")) continue;   // tied checkpoints sometimes save the head too
                if (IGNORED_SUFFIXES.stream().anyMatch(n::endsWith)) continue;
                unexpected.add(n);
            }
            if (!unexpected.isEmpty()) {
                throw new ModelConfigException("checkpoint has tensors the config does not describe: "
                        + String.join(", ", unexpected.stream().limit(10).toList()) + (unexpected.size() > 10 ? ", ..." : ""));
            }
        }
    }

    // ---- accessors ------------------------------------------------------------------------------

    public ModelConfig config() { return config; }

    /** Unique base parameters by Hugging Face name (the tied head is the token embedding). */
    public Map<String, Parameter> parameters() { return parameters; }

    /** Adaptable linear layers by module name (GPT-2's tied head is not one). */
    public Map<String, Linear> linears() { return linears; }

    public List<TransformerBlock> blocks() { return blocks; }

    public long baseParameterCount() {
        return parameters.values().stream().mapToLong(Parameter::size).sum() + quantized.values().stream().mapToLong(Nf4Tensor::length).sum();
    }

    /** The linear weights held in NF4, by checkpoint name ([out, in]; empty for a full-precision base). */
    public Map<String, Nf4Tensor> quantizedWeights() { return java.util.Collections.unmodifiableMap(quantized); }

    /** Whether some base weights are held in NF4. */
    public boolean quantizedBase() { return !quantized.isEmpty(); }

    /** The full-precision base tensors as held (no dequantised copies): with {@link #quantizedWeights()}, the whole base. */
    public Map<String, INDArray> fullPrecisionTensors() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (Parameter p : parameters.values()) m.put(p.name(), p.value());
        return m;
    }

    /** Bytes the base holds in memory: full-precision tensors at their width, NF4 weights as codes and scales. */
    public long baseBytesHeld() {
        long b = 0;
        for (Parameter p : parameters.values()) b += p.value().length() * p.value().dataType().width();
        for (Nf4Tensor q : quantized.values()) b += q.bytesHeld();
        for (TransformerBlock blk : blocks) {
            for (Linear l : blk.linears()) if (l.baseWeight() instanceof Nf4Weight w && !w.quantized()) b += w.bytesHeld();   // merged: dense too
        }
        return b;
    }

    /** Freezes (or unfreezes, for full fine-tuning) every base parameter. */
    public void setBaseTrainable(boolean trainable) {
        for (Parameter p : parameters.values()) p.setTrainable(trainable);
    }

    /**
     * The checkpoint tensors by Hugging Face name (views of the live weights). When a merge gave bias-free layers a
     * bias (GLoRA's b'), those biases are included, with zero biases for the other layers that the
     * {@link #checkpointConfig()} flag then covers (Hugging Face's {@code attention_bias} gives q, k, v and o one each).
     */
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (String n : tensorOrder) {
            Parameter p = parameters.get(n);
            // an NF4 weight is written dequantised (or as merged, once a merge made it dense): a full-precision checkpoint
            m.put(n, p != null ? p.value() : linears.get(n.substring(0, n.length() - ".weight".length())).baseWeight().dense());
        }
        ModelConfig saved = checkpointConfig();
        if (saved == config) return m;
        Map<String, long[]> shapes = expectedShapes(saved);
        for (Linear l : linears.values()) {
            String bias = l.name() + ".bias";
            if (m.containsKey(bias) || !shapes.containsKey(bias)) continue;
            m.put(bias, l.bias() != null ? l.bias().value() : Nd4j.zeros(l.baseWeight().dataType(), l.outFeatures()));
        }
        return m;
    }

    /**
     * The config to save this model under: its own, or, when a merge gave bias-free layers a bias, the same with the
     * bias flags that make Hugging Face build those biases ({@code attention_bias}, {@code mlp_bias}). A family whose
     * transformers class cannot hold such a bias is an error naming the layer.
     */
    public ModelConfig checkpointConfig() {
        boolean attn = false, mlp = false;
        for (Linear l : linears.values()) {
            if (!l.hasMergeAddedBias()) continue;
            Architecture arch = config.architecture();
            boolean isAttn = l.name().contains(".self_attn."), isMlp = l.name().contains(".mlp.");
            boolean holds = switch (arch) {
                case LLAMA -> isAttn || isMlp;
                case QWEN3 -> isAttn;
                default -> false;
            };
            if (!holds) {
                throw new ModelConfigException(l.name() + ": the merged adapter gave this layer a bias, which a " + arch.modelType()
                        + " checkpoint cannot hold (transformers' " + arch.hfClass() + " has no bias setting for it); keep the adapter"
                        + " unmerged, or train it without bias terms on this layer (GLoRA: C and E none)");
            }
            attn |= isAttn;
            mlp |= isMlp;
        }
        if (!attn && !mlp) return config;
        return config.withBiases(config.qkvBias() || attn, config.outputBias() || attn, config.mlpBias() || mlp);
    }

    // ---- forward / backward ---------------------------------------------------------------------

    /** Embeds token ids: [B, T] → [N, C] (plus learned positions for GPT-2). */
    public INDArray embed(TokenBatch batch) {
        int b = batch.batch(), t = batch.seq();
        if (t > config.maxPositions() && positionEmbedding != null) {
            throw new IllegalArgumentException("sequence length " + t + " exceeds the model's context " + config.maxPositions());
        }
        INDArray h = embedTokens(batch.inputs().reshape((long) b * t).castTo(DataType.INT));
        if (positionEmbedding != null) {
            INDArray pos = positionEmbedding.value().get(NDArrayIndex.interval(0, t), NDArrayIndex.all());
            h.reshape(b, t, config.hiddenSize()).addi(pos);                                  // broadcast over B
        }
        return h;
    }

    /** Token embeddings of ids [N] (INT), trainable token rows read in place of theirs: [N, C]. */
    private INDArray embedTokens(INDArray ids) {
        INDArray h = OPS.gather(tokenEmbedding.value(), ids, 0);                         // [N,C]
        if (tokenRows != null) {
            int[][] at = replacedPositions(ids);
            if (at[0].length > 0) {
                // h[p] = rows[slot] at every position p holding a replaced token
                INDArray upd = OPS.gather(tokenRows.rows().value(), Nd4j.createFromArray(at[1]), 0);
                Nd4j.exec(org.nd4j.linalg.api.ops.DynamicCustomOp.builder("scatter_upd")
                        .addInputs(h, Nd4j.createFromArray(at[0]), upd).addOutputs(h).build());
                Tensors.release(upd);
            }
        }
        return h;
    }

    // ---- inference with a KV cache ---------------------------------------------------------------

    /**
     * An empty KV cache for rows of the given prompt lengths, each left-padded to the longest, with room for
     * {@code capacity} slots in all (the longest prompt plus the tokens to generate; at most the context for
     * GPT-2's learned positions).
     */
    public KvCache newKvCache(int[] promptLengths, int capacity) {
        int longest = 0;
        for (int i = 0; i < promptLengths.length; i++) {
            if (promptLengths[i] <= 0) throw new IllegalArgumentException("KV cache: prompt " + i + " is empty");
            longest = Math.max(longest, promptLengths[i]);
        }
        if (capacity < longest) throw new IllegalArgumentException("KV cache: capacity " + capacity + " is below the longest prompt, " + longest);
        if (positionEmbedding != null && capacity > config.maxPositions()) {
            throw new IllegalArgumentException("KV cache: capacity " + capacity + " exceeds the model's context " + config.maxPositions());
        }
        int[] pad = new int[promptLengths.length];
        for (int i = 0; i < pad.length; i++) pad[i] = longest - promptLengths[i];
        return new KvCache(blocks.size(), promptLengths.length, config.numKvHeads(), config.headDim(), capacity, pad,
                tokenEmbedding.value().dataType());
    }

    /**
     * Runs the prompts through the model into an empty {@code cache} made by {@link #newKvCache} for their
     * lengths, and returns the logits of each prompt's last token [B, V]: row b equals the last row of
     * {@link #logits} over prompt b alone, to float rounding.
     */
    public INDArray prefill(KvCache cache, int[][] prompts) {
        return prefill(cache, prompts, ForwardContext.inference());
    }

    private INDArray prefill(KvCache cache, int[][] prompts, ForwardContext ctx) {
        if (cache.length() != 0) throw new IllegalStateException("prefill needs an empty KV cache; it holds " + cache.length() + " slots");
        if (prompts.length != cache.batch()) throw new IllegalArgumentException("prefill: " + prompts.length + " prompts for a cache of " + cache.batch() + " rows");
        int t = 0;
        for (int[] p : prompts) t = Math.max(t, p.length);
        int[] ids = new int[prompts.length * t];
        for (int b = 0; b < prompts.length; b++) {
            if (prompts[b].length + cache.pad(b) != t) {
                throw new IllegalArgumentException("prefill: prompt " + b + " has " + prompts[b].length + " tokens; the cache was made for " + (t - cache.pad(b)));
            }
            // padding slots repeat the row's first token: any id would do, attention never reads them
            for (int i = 0; i < t; i++) ids[b * t + i] = prompts[b][Math.max(0, i - cache.pad(b))];
        }
        return forwardCached(cache, ids, t, ctx);
    }

    /** Appends one token per row ({@code next} [B]) to {@code cache} and returns each row's next-token logits [B, V]. */
    public INDArray decodeStep(KvCache cache, int[] next) {
        return decodeStep(cache, next, ForwardContext.inference());
    }

    private INDArray decodeStep(KvCache cache, int[] next, ForwardContext ctx) {
        if (next.length != cache.batch()) throw new IllegalArgumentException("decode step: " + next.length + " tokens for a cache of " + cache.batch() + " rows");
        return forwardCached(cache, next.clone(), 1, ctx);
    }

    /** ids [B·t] (row-major, t tokens per row) → the logits of each row's last token [B, V]; fills t cache slots. */
    private INDArray forwardCached(KvCache cache, int[] ids, int t, ForwardContext ctx) {
        int b = cache.batch();
        if (cache.length() + t > cache.capacity()) {
            throw new IllegalStateException("KV cache is full: " + cache.length() + " + " + t + " slots exceed its capacity " + cache.capacity());
        }
        config.checkSequenceLength(cache.length() + t);
        for (int id : ids) {
            if (id < 0 || id >= config.vocabSize()) throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
        }
        int[] positions = cache.positions(t);
        INDArray h = embedTokens(Nd4j.createFromArray(ids));                             // [B·t, C]
        if (positionEmbedding != null) {
            INDArray pos = Nd4j.pullRows(positionEmbedding.value(), 1, positions);
            h.addi(pos);
            Tensors.release(pos);
        }
        for (int i = 0; i < blocks.size(); i++) {
            INDArray next = blocks.get(i).forwardCached(h, b, t, cache, i, positions, ctx);
            Tensors.release(h);
            h = next;
        }
        cache.advance(t);
        INDArray last = t == 1 ? h : h.reshape('c', b, t, config.hiddenSize()).get(NDArrayIndex.all(), NDArrayIndex.point(t - 1), NDArrayIndex.all()).dup('c');
        if (last != h) Tensors.release(h);
        Norm.Cache fn = finalNorm.forward(last);
        Tensors.release(last, fn.xhat(), fn.rstd());
        Linear.Cache logits = head.forward(fn.out(), ctx);
        if (headUsesTokenRows()) replaceRowLogits(fn.out(), logits.out());
        for (io.sparklora.adapters.Adapter.Activation a : logits.adapterActivations()) a.release();
        Tensors.release(fn.out());
        return logits.out();
    }

    public Forward forward(TokenBatch batch, ForwardContext ctx) {
        return forwardEmbedded(embed(batch), batch, ctx);
    }

    /** Forward from embeddings h0 [N, C]; lets gradient checks differentiate w.r.t. the model input. */
    public Forward forwardEmbedded(INDArray h0, TokenBatch batch, ForwardContext ctx) {
        return forwardEmbedded(h0, batch, ctx, true);
    }

    /** With {@code withHead} false, stops at the final norm: the caller runs the head in row chunks. */
    private Forward forwardEmbedded(INDArray h0, TokenBatch batch, ForwardContext ctx, boolean withHead) {
        config.checkSequenceLength(batch.seq());
        boolean recompute = activationCheckpointing;
        // each block draws its dropout masks from its own seed (one per stream), so a recomputed block sees the same masks
        long[] dropoutSeeds = ctx.drawSeeds();
        List<TransformerBlock.Cache> caches = new ArrayList<>(blocks.size());
        List<INDArray> inputs = recompute ? new ArrayList<>(blocks.size()) : null;
        INDArray h = h0;
        for (int i = 0; i < blocks.size(); i++) {
            TransformerBlock.Cache c = blocks.get(i).forward(h, batch.batch(), batch.seq(), blockContext(ctx, dropoutSeeds, i));
            if (recompute) {
                inputs.add(h);
                INDArray out = c.out();
                c.release(out);            // keep only the block's output, the next block's input
                caches.add(null);
                h = out;
            } else {
                caches.add(halfActivations && ctx.training() ? c.halfPrecision() : c);
                if (h != h0) Tensors.release(h);   // the residual stream is not needed by backward
                h = c.out();
            }
        }
        Norm.Cache fn = finalNorm.forward(h);
        if (h != h0) Tensors.release(h);
        Linear.Cache logits = null;
        if (withHead) {
            logits = head.forward(fn.out(), ctx);
            if (headUsesTokenRows()) replaceRowLogits(fn.out(), logits.out());
            else if (!head.needsInput()) Tensors.release(fn.out());
        }
        ctx.resume(dropoutSeeds);    // each stream ends where it would without per-block reseeding
        return new Forward(batch, ctx, dropoutSeeds, caches, inputs, fn, logits);
    }

    private static ForwardContext blockContext(ForwardContext ctx, long[] seeds, int block) {
        ctx.seedBlock(seeds, block);
        return ctx;
    }

    /** Backward from dL/dlogits; accumulates gradients into trainable parameters and returns dL/dh0 [N, C]. */
    public INDArray backward(Forward f, INDArray dLogits) {
        return backwardFromHidden(f, headBackward(f.head(), f.finalNorm().out(), dLogits));
    }

    /** The head's backward, plus the replaced rows' share when the tied head reads them. */
    private INDArray headBackward(Linear.Cache c, INDArray x, INDArray dLogits) {
        INDArray dx = head.backward(c, dLogits);
        if (!headUsesTokenRows()) return dx;
        // logits[:, idx_j] = x · rows_j: dRows = dL[:, idx]ᵀ · x, and dx swaps the frozen rows' share for the replacements'
        INDArray idx = tokenRows.indexArray();
        INDArray g = OPS.gather(dLogits, idx, 1);                                         // [N,n]
        Parameter rows = tokenRows.rows();
        if (rows.trainable()) {
            INDArray dRows = g.transpose().mmul(x);                                       // [n,C]
            rows.accumulate(dRows);
            Tensors.release(dRows);
        }
        INDArray frozen = OPS.gather(tokenEmbedding.value(), idx, 0);                     // [n,C]
        INDArray diff = rows.value().sub(frozen);
        INDArray corr = g.mmul(diff);                                                     // [N,C]
        dx.addi(corr);
        Tensors.release(idx, g, frozen, diff, corr);
        return dx;
    }

    /** Overwrites the replaced tokens' columns of {@code logits} [N, V] with {@code x · rows_jᵀ} (x [N, C]). */
    private void replaceRowLogits(INDArray x, INDArray logits) {
        INDArray s = x.mmul(tokenRows.rows().value().transpose());                        // [N,n]
        int[] idx = tokenRows.indices();
        for (int j = 0; j < idx.length; j++) logits.getColumn(idx[j]).assign(s.getColumn(j));
        Tensors.release(s);
    }

    /** Positions (in the flattened batch) holding a replaced token, and each one's row: {positions, slots}. */
    private int[][] replacedPositions(INDArray ids) {
        int[] all = ids.toIntVector();
        int k = 0;
        for (int id : all) if (tokenRows.slot(id) >= 0) k++;
        int[] pos = new int[k], slot = new int[k];
        k = 0;
        for (int p = 0; p < all.length; p++) {
            int s = tokenRows.slot(all[p]);
            if (s >= 0) {
                pos[k] = p;
                slot[k++] = s;
            }
        }
        return new int[][]{pos, slot};
    }

    private boolean headUsesTokenRows() {
        return tokenRows != null && head.weight() == tokenEmbedding;
    }

    /**
     * Reads {@code rows} in place of the frozen embedding rows of their tokens (and in the tied head). The
     * token embedding itself must not be training: full fine-tuning trains every row already.
     */
    public void attachTokenRows(TokenRows rows) {
        if (tokenRows != null) throw new IllegalStateException("the model already has trainable token rows");
        if (tokenEmbedding.trainable()) throw new IllegalStateException("the token embedding trains whole; trainable token rows would be ignored");
        long c = config.hiddenSize();
        if (rows.rows().value().size(1) != c) {
            throw new IllegalArgumentException("trainable tokens: rows have " + rows.rows().value().size(1) + " columns, the model's hidden size is " + c);
        }
        for (int id : rows.indices()) {
            if (id >= config.vocabSize()) {
                throw new IllegalArgumentException("trainable tokens: token index " + id + " is outside the vocabulary of " + config.vocabSize());
            }
        }
        tokenRows = rows;
    }

    /** Goes back to the frozen rows. */
    public void detachTokenRows() { tokenRows = null; }

    /** The attached trainable token rows, or null. */
    public TokenRows tokenRows() { return tokenRows; }

    /** The token embedding [V, C] (the tied head's weight too, for GPT-2 and tied Llama). */
    public Parameter tokenEmbedding() { return tokenEmbedding; }

    /** Backward from dL/d(final hidden state) [N, C], the head's input; frees it. */
    private INDArray backwardFromHidden(Forward f, INDArray dHead) {
        INDArray dh = finalNorm.backward(f.finalNorm(), dHead);
        Tensors.release(dHead);
        for (int i = blocks.size() - 1; i >= 0; i--) {
            TransformerBlock.Cache c = f.blocks().get(i);
            if (c == null) {   // checkpointed: recompute this block from its input, with the same dropout seed
                c = blocks.get(i).forward(f.blockInputs().get(i), f.batch().batch(), f.batch().seq(),
                        blockContext(f.ctx(), f.dropoutSeeds(), i));
            }
            INDArray next = blocks.get(i).backward(c, dh);
            if (f.blocks().get(i) == null) {
                c.release();
                if (i > 0) Tensors.release(f.blockInputs().get(i));   // block 0's input is the caller's h0
            }
            Tensors.release(dh);
            dh = next;
        }
        f.ctx().resume(f.dropoutSeeds());   // the same streams afterwards whether blocks were recomputed or not
        return dh;
    }

    /** Accumulates embedding gradients from dL/dh0 (only when the embeddings train). */
    public void backwardEmbedding(TokenBatch batch, INDArray dh0) {
        int b = batch.batch(), t = batch.seq();
        if (tokenEmbedding.trainable()) {
            // add the rows of dh0 into the gradient rows of their tokens (repeated ids accumulate)
            scatterAddRows(tokenEmbedding.grad(), batch.inputs().reshape((long) b * t).castTo(DataType.INT).toIntVector(), dh0);
        }
        if (tokenRows != null && tokenRows.rows().trainable()) {
            int[][] at = replacedPositions(batch.inputs().reshape((long) b * t).castTo(DataType.INT));
            if (at[0].length > 0) {
                INDArray g = OPS.gather(dh0, Nd4j.createFromArray(at[0]), 0);                // [k,C]
                scatterAddRows(tokenRows.rows().grad(), at[1], g);
                Tensors.release(g);
            }
        }
        if (positionEmbedding != null && positionEmbedding.trainable()) {
            INDArray dPos = dh0.reshape(b, t, config.hiddenSize()).sum(0);                 // [T,C]
            positionEmbedding.grad().get(NDArrayIndex.interval(0, t), NDArrayIndex.all()).addi(dPos);
        }
    }

    /**
     * target[ids[i]] += rows[i] for every i, in place; rows [n, C]. Rows of a repeated id are summed first
     * (unsorted_segment_sum) and the sums added once per id: libnd4j's scatter_add splits its work over threads
     * and loses updates when two threads add into the same row, which made the embedding gradient differ between
     * identical runs under load.
     */
    private static void scatterAddRows(INDArray target, int[] ids, INDArray rows) {
        int[] unique = Arrays.stream(ids).distinct().sorted().toArray();
        INDArray sums = rows;
        if (unique.length < ids.length) {
            int[] segment = new int[ids.length];
            for (int i = 0; i < ids.length; i++) segment[i] = Arrays.binarySearch(unique, ids[i]);
            sums = Nd4j.exec(org.nd4j.linalg.api.ops.DynamicCustomOp.builder("unsorted_segment_sum")
                    .addInputs(rows, Nd4j.createFromArray(segment)).addIntegerArguments(unique.length).build())[0];
        } else {
            unique = ids;
        }
        Nd4j.exec(org.nd4j.linalg.api.ops.DynamicCustomOp.builder("scatter_add")
                .addInputs(target, Nd4j.createFromArray(unique), sums).addOutputs(target).build());
        if (sums != rows) Tensors.release(sums);
    }

    /**
     * As {@link #forwardBackward} with the summed token loss (gradScale = the batch's target count), and also each
     * example's adapter gradients (of its own summed token loss) into {@code perExample}: the base runs forward and
     * backward once ({@link PerExampleGradients}).
     */
    public CrossEntropyLoss.Result forwardBackwardPerExample(TokenBatch batch, ForwardContext ctx, PerExampleGradients perExample) {
        if (perExample.examples() != batch.batch()) {
            throw new IllegalArgumentException("per-example gradients for " + perExample.examples() + " examples, batch has " + batch.batch());
        }
        Collection<Linear> layers = allLinears();
        for (Linear l : layers) l.collectPerExample(perExample);
        try {
            return forwardBackward(batch, ctx, batch.targetCount());
        } finally {
            for (Linear l : layers) l.collectPerExample(null);
        }
    }

    /**
     * One training micro-step: forward, mean token loss, backward. Gradients are scaled by
     * {@code gradScale} (1/micro-batches under accumulation) and added to the trainable parameters.
     */
    public CrossEntropyLoss.Result forwardBackward(TokenBatch batch, ForwardContext ctx, double gradScale) {
        return trainingPass(batch, ctx, (hidden, dHidden) -> chunkedHeadLoss(hidden, batch, ctx, dHidden, gradScale));
    }

    /**
     * The skeleton of a training pass: embed, the blocks and the final norm forward, then {@code headLoss} on the final
     * hidden state [N, C], which fills dL/dhidden [N, C] (zeros to start with), then backward through the blocks and
     * the embeddings; every activation is freed before returning headLoss's result.
     */
    private <R> R trainingPass(TokenBatch batch, ForwardContext ctx, java.util.function.BiFunction<INDArray, INDArray, R> headLoss) {
        INDArray h0 = embed(batch);
        Forward f = forwardEmbedded(h0, batch, ctx, false);
        INDArray dHidden = Nd4j.create(h0.dataType(), h0.shape());
        R r = headLoss.apply(f.finalNorm().out(), dHidden);
        INDArray dh0 = backwardFromHidden(f, dHidden);
        backwardEmbedding(batch, dh0);
        f.release();
        Tensors.release(h0, dh0);
        return r;
    }

    /**
     * The head and the loss in row chunks, so the [N, V] logits never exist whole. With {@code dHidden}
     * given, each chunk's logits become their own gradient in place and go straight back through the head
     * into the matching rows of {@code dHidden} ([N, C]); with null, only the loss is computed.
     */
    private CrossEntropyLoss.Result chunkedHeadLoss(INDArray hidden, TokenBatch batch, ForwardContext ctx,
                                                    INDArray dHidden, double gradScale) {
        long total = batch.targetCount();
        return headLossRows(hidden, batch.targets().reshape(hidden.size(0)), 0, hidden.size(0), total, ctx, dHidden, total / gradScale);
    }

    /**
     * {@link #chunkedHeadLoss} over rows [from, to) only, whose {@code count} targets count; the gradient of each
     * token's loss is divided by {@code gradDenominator}. Chunks start at {@code from}.
     */
    private CrossEntropyLoss.Result headLossRows(INDArray hidden, INDArray flatTargets, long from, long to, long count,
                                                 ForwardContext ctx, INDArray dHidden, double gradDenominator) {
        int rows = headChunkRows();
        double sum = 0;
        for (long r0 = from; r0 < to; r0 += rows) {
            long r1 = Math.min(to, r0 + rows);
            INDArray x = hidden.get(NDArrayIndex.interval(r0, r1), NDArrayIndex.all()).dup('c');
            Linear.Cache c = head.forward(x, ctx);
            if (headUsesTokenRows()) replaceRowLogits(x, c.out());
            CrossEntropyLoss.Result r = CrossEntropyLoss.computeInPlace(c.out(), flatTargets.get(NDArrayIndex.interval(r0, r1)),
                    dHidden != null, gradDenominator);
            sum += r.sumLoss();
            if (dHidden != null) {
                INDArray dx = headBackward(c, x, r.dLogits());
                dHidden.get(NDArrayIndex.interval(r0, r1), NDArrayIndex.all()).assign(dx);
                Tensors.release(dx);
            }
            c.release();
            Tensors.release(x);
        }
        return new CrossEntropyLoss.Result(sum, count, null);
    }

    /**
     * One training micro-step of a mixed-adapter batch: the sequences of {@code ctx.sequenceAdapters()} train the
     * adapter they name, and only it. The frozen base runs forward and backward once for the whole batch; each
     * adapter's loss is the mean over its own target tokens, and its gradients, scaled by {@code gradScale} of its name,
     * are the ones it would get trained alone on its sequences (rows of different sequences never mix). Each adapter's
     * sequences must be consecutive, so it draws its dropout masks, from its own stream, exactly as it would alone.
     *
     * @return each adapter's loss (sum and target count), in the order the batch names them
     */
    public Map<String, CrossEntropyLoss.Result> forwardBackwardMixed(TokenBatch batch, ForwardContext ctx, Map<String, Double> gradScale) {
        String[] route = ctx.sequenceAdapters();
        if (!ctx.training() || route == null) throw new IllegalArgumentException("forwardBackwardMixed needs a mixed-adapter training context");
        checkSequenceAdapters(route, batch.batch());
        for (int b = 0; b < route.length; b++) {
            if (route[b].equals(BASE_ONLY)) throw new IllegalArgumentException("mixed-adapter training: sequence " + b + " trains no adapter (" + BASE_ONLY + ")");
            if (!gradScale.containsKey(route[b])) throw new IllegalArgumentException("mixed-adapter training: no gradient scale for adapter '" + route[b] + "'");
        }
        List<ForwardContext.AdapterRun> runs = ctx.adapterRuns();
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (ForwardContext.AdapterRun run : runs) {
            if (!seen.add(run.adapter())) {
                throw new IllegalArgumentException("mixed-adapter training: the sequences of adapter '" + run.adapter() + "' must be consecutive");
            }
        }
        long[] perSequence = batch.targets().gte(0).castTo(org.nd4j.linalg.api.buffer.DataType.LONG).sum(1).toLongVector();
        INDArray flatTargets = batch.targets().reshape((long) batch.batch() * batch.seq());
        return trainingPass(batch, ctx, (hidden, dHidden) -> {
            Map<String, CrossEntropyLoss.Result> losses = new java.util.LinkedHashMap<>();
            for (ForwardContext.AdapterRun run : runs) {
                long count = 0;
                for (int i = run.from(); i < run.to(); i++) count += perSequence[i];
                losses.put(run.adapter(), headLossRows(hidden, flatTargets, (long) run.from() * batch.seq(), (long) run.to() * batch.seq(), count,
                        ctx.onlyAdapter(run.adapter()), dHidden, count == 0 ? 1.0 : count / gradScale.get(run.adapter())));   // no targets: a zero gradient
            }
            return losses;
        });
    }

    /** Rows per head-and-loss chunk in training; 0 (the default) picks about 16M logits, 64 MB in fp32. */
    public void setLossChunkRows(int rows) { this.lossChunkRows = rows; }

    private int headChunkRows() {
        return lossChunkRows > 0 ? lossChunkRows : Math.max(1, (1 << 24) / config.vocabSize());
    }

    /** Loss without gradients (evaluation). */
    public CrossEntropyLoss.Result loss(TokenBatch batch) {
        INDArray h0 = embed(batch);
        ForwardContext ctx = ForwardContext.inference();
        Forward f = forwardEmbedded(h0, batch, ctx, false);
        CrossEntropyLoss.Result r = chunkedHeadLoss(f.finalNorm().out(), batch, ctx, null, 1.0);
        f.release();
        Tensors.release(h0);
        return r;
    }

    /** Logits [B·T, V] for the given ids (inference). */
    public INDArray logits(TokenBatch batch) {
        return forward(batch, ForwardContext.inference()).logits();
    }

    /** A sequence of a mixed-adapter batch that uses no adapter. */
    public static final String BASE_ONLY = "__base__";

    /**
     * Logits [B·T, V] of a mixed-adapter batch: sequence b runs with adapter {@code sequenceAdapters[b]} alone
     * ({@link #BASE_ONLY}: the base model), unmerged, whichever adapters are active. The base matmuls run once for the
     * whole batch; row block b equals {@link #logits} over sequence b alone with only its adapter active, to float
     * rounding.
     */
    public INDArray logits(TokenBatch batch, String[] sequenceAdapters) {
        checkSequenceAdapters(sequenceAdapters, batch.batch());
        return forward(batch, ForwardContext.inference(sequenceAdapters)).logits();
    }

    /** {@link #prefill} of a mixed-adapter batch: prompt b runs with adapter {@code sequenceAdapters[b]} alone. */
    public INDArray prefill(KvCache cache, int[][] prompts, String[] sequenceAdapters) {
        checkSequenceAdapters(sequenceAdapters, prompts.length);
        return prefill(cache, prompts, ForwardContext.inference(sequenceAdapters));
    }

    /** {@link #decodeStep} of a mixed-adapter batch: row b runs with adapter {@code sequenceAdapters[b]} alone. */
    public INDArray decodeStep(KvCache cache, int[] next, String[] sequenceAdapters) {
        checkSequenceAdapters(sequenceAdapters, next.length);
        return decodeStep(cache, next, ForwardContext.inference(sequenceAdapters));
    }

    /**
     * A mixed batch's names: one per sequence, each {@link #BASE_ONLY} or an adapter attached to some layer; no adapter
     * merged (a merged one would reach every row) and no trainable token rows (the model holds one set, not one per
     * adapter).
     */
    private void checkSequenceAdapters(String[] names, int sequences) {
        if (names.length != sequences) {
            throw new IllegalArgumentException("mixed-adapter batch: " + names.length + " adapter names for " + sequences + " sequences");
        }
        java.util.Set<String> attached = new java.util.TreeSet<>();
        for (Linear l : allLinears()) {
            for (io.sparklora.adapters.Adapter a : l.adapters()) {
                attached.add(a.adapterName());
                if (l.isMerged(a.adapterName())) {
                    throw new IllegalStateException("mixed-adapter batch: adapter '" + a.adapterName() + "' is merged into " + l.name()
                            + ", so every row would get it; unmerge it first");
                }
            }
        }
        if (tokenRows != null) {
            throw new IllegalStateException("mixed-adapter batch: the model has trainable token rows, which would apply to every row;"
                    + " adapters with trainable_token_indices cannot be mixed yet");
        }
        for (int b = 0; b < names.length; b++) {
            if (names[b] == null || (!names[b].equals(BASE_ONLY) && !attached.contains(names[b]))) {
                throw new IllegalArgumentException("mixed-adapter batch: sequence " + b + " names adapter '" + names[b] + "', which is not attached"
                        + " (attached: " + attached + "; " + BASE_ONLY + " means none)");
            }
        }
    }

    /** Every linear layer in forward order, including a tied head (for adapter target matching use {@link #linears()}). */
    public Collection<Linear> allLinears() {
        List<Linear> l = new ArrayList<>();
        for (TransformerBlock b : blocks) l.addAll(b.linears());
        l.add(head);
        return l;
    }
}
