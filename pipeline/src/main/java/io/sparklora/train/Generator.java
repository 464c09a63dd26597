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
        int ctx = model.config().maxPositions();
        int[] seq = Arrays.copyOf(prompt, prompt.length + maxNew);
        int len = prompt.length, made = 0;
        while (made < maxNew) {
            int from = Math.max(0, len - ctx);
            int[] window = Arrays.copyOfRange(seq, from, len);
            int[] noTargets = new int[window.length];
            Arrays.fill(noTargets, TokenBatch.IGNORE);
            INDArray logits = model.logits(TokenBatch.of(new int[][]{window}, new int[][]{noTargets}));
            int next = logits.getRow(window.length - 1).argMax().getInt(0);
            if (next == eosId) break;
            seq[len++] = next;
            made++;
        }
        return Arrays.copyOfRange(seq, prompt.length, len);
    }
}
