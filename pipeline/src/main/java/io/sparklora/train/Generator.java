package io.sparklora.train;

import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;

/**
 * Greedy decoding for the report's samples. It re-runs the whole window each token (no KV cache):
 * a few short samples per run, so simplicity wins over speed here.
 */
public final class Generator {
    private Generator() {}

    /** Continues {@code prompt} by up to {@code maxNew} tokens, stopping at {@code eosId}; returns only the new tokens. */
    public static int[] greedy(TransformerLM model, int[] prompt, int maxNew, int eosId) {
        return sample(model, prompt, maxNew, eosId, 0, 1, 0);
    }

    /**
     * Samples from the {@code topK} most likely tokens at {@code temperature} (0 = greedy), seeded, so
     * the same seed gives the same text. Small models repeat themselves under greedy decoding; a little
     * sampling shows better what they learned.
     */
    public static int[] sample(TransformerLM model, int[] prompt, int maxNew, int eosId, double temperature, int topK, long seed) {
        java.util.Random rng = new java.util.Random(seed);
        int ctx = model.config().maxPositions();
        int[] seq = Arrays.copyOf(prompt, prompt.length + maxNew);
        int len = prompt.length, made = 0;
        while (made < maxNew) {
            int from = Math.max(0, len - ctx);
            int[] window = Arrays.copyOfRange(seq, from, len);
            int[] noTargets = new int[window.length];
            Arrays.fill(noTargets, TokenBatch.IGNORE);
            INDArray logits = model.logits(TokenBatch.of(new int[][]{window}, new int[][]{noTargets}));
            int next = pick(logits.getRow(window.length - 1).toDoubleVector(), temperature, topK, rng);
            if (next == eosId) break;
            seq[len++] = next;
            made++;
        }
        return Arrays.copyOfRange(seq, prompt.length, len);
    }

    static int pick(double[] logits, double temperature, int topK, java.util.Random rng) {
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Double.compare(logits[b], logits[a]));
        if (temperature <= 0 || topK <= 1) return order[0];
        int k = Math.min(topK, logits.length);
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) sum += p[i] = Math.exp((logits[order[i]] - logits[order[0]]) / temperature);
        double u = rng.nextDouble() * sum;
        for (int i = 0; i < k; i++) if ((u -= p[i]) <= 0) return order[i];
        return order[k - 1];
    }
}
