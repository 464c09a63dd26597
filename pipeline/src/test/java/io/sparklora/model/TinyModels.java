package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;

/** Small configs of both families, shared by tests. */
public final class TinyModels {
    private TinyModels() {}

    public static ModelConfig gpt2() {
        return ModelConfig.gpt2(11, 8, 2, 2, 16);
    }

    /** Llama with grouped-query attention (4 query heads over 2 key/value heads). */
    public static ModelConfig llama() {
        return ModelConfig.llama(13, 8, 2, 4, 2, 12, 16);
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
