package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;

/** Small configs of every family, shared by tests. */
public final class TinyModels {
    private TinyModels() {}

    public static ModelConfig gpt2() {
        return ModelConfig.gpt2(11, 8, 2, 2, 16);
    }

    /** Llama with grouped-query attention (4 query heads over 2 key/value heads). */
    public static ModelConfig llama() {
        return ModelConfig.llama(13, 8, 2, 4, 2, 12, 16);
    }

    /** Qwen2: q/k/v biases, head tied to the embedding. */
    public static ModelConfig qwen2() {
        return llama().as(Architecture.QWEN2).withTiedEmbeddings(true);
    }

    /** Qwen3: per-head q/k RMSNorm, head_dim 4 apart from hidden/heads = 2. */
    public static ModelConfig qwen3() {
        return llama().as(Architecture.QWEN3).withHeadDim(4);
    }

    /** Phi-3: fused qkv_proj and gate_up_proj. */
    public static ModelConfig phi3() {
        return llama().as(Architecture.PHI3);
    }

    /** Llama 3.1's rope scaling (inv_freq [1, 0.01]: one kept, one divided by the factor). */
    public static ModelConfig llama3() {
        return llama().withHeadDim(4).withRopeScaling(new RopeScaling("llama3", 8.0, 1.0, 4.0, 64));
    }

    /** Every family's tiny config: GPT-2, Llama, and the Llama variations. */
    public static java.util.List<ModelConfig> all() {
        return java.util.List.of(gpt2(), llama(), llama3(), qwen2(), qwen3(), phi3());
    }

    /** Every linear layer name of a family (for adapters on all of them). */
    public static java.util.List<String> allLinearTargets(ModelConfig c) {
        return switch (c.architecture()) {
            case GPT2 -> java.util.List.of("c_attn", "c_proj", "c_fc");
            case PHI3 -> java.util.List.of("qkv_proj", "o_proj", "gate_up_proj", "down_proj");
            default -> java.util.List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
        };
    }

    public static TransformerLM model(ModelConfig c, long seed) {
        return TransformerLM.randomInit(c, seed, DataType.DOUBLE);
    }

    /** A batch of B sequences of length T with a few ignored targets. */
    public static TokenBatch batch(ModelConfig c, int b, int t, long seed) {
        java.util.Random r = new java.util.Random(seed);
        int[][] in = new int[b][t], tg = new int[b][t];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                in[i][j] = r.nextInt(c.vocabSize());
                tg[i][j] = (j == 0 && i == 0) ? TokenBatch.IGNORE : r.nextInt(c.vocabSize());
            }
        }
        return TokenBatch.of(in, tg);
    }
}
