package io.sparklora.train;

import io.sparklora.model.EngineThreads;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link Generator}'s token choice and its decode threads: top-k by a bounded heap draws exactly what a stable sort of the
 * whole vocabulary would (ties to the lower index), and a generation leaves the caller's engine threads as it found them.
 */
class GeneratorPickTest {
    /** The reference: a stable sort by descending logit, then the same draw. */
    static int reference(double[] logits, double temperature, int topK, Random rng) {
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Double.compare(logits[b], logits[a]));
        int k = Math.min(topK, logits.length);
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) sum += p[i] = Math.exp((logits[order[i]] - logits[order[0]]) / temperature);
        double u = rng.nextDouble() * sum;
        for (int i = 0; i < k; i++) if ((u -= p[i]) <= 0) return order[i];
        return order[k - 1];
    }

    @Test
    void topKDrawsWhatAFullStableSortDraws() {
        Random gen = new Random(3);
        int differing = 0;
        for (int trial = 0; trial < 400; trial++) {
            int v = 1 + gen.nextInt(300);
            double[] logits = new double[v];
            // few distinct values, so ties (and ±0) are common and the tie rule decides
            for (int i = 0; i < v; i++) logits[i] = gen.nextInt(4) == 0 ? (gen.nextBoolean() ? 0.0 : -0.0) : gen.nextInt(7) * 0.5;
            int k = 2 + gen.nextInt(v + 3);
            double t = 0.3 + gen.nextDouble();
            long seed = gen.nextLong();
            int got = Generator.pick(logits, t, k, new Random(seed));
            int want = reference(logits, t, k, new Random(seed));
            assertEquals(want, got, "trial " + trial + ": V " + v + ", k " + k);
            if (got != reference(logits, t, 1, new Random(seed))) differing++;
        }
        assertTrue(differing > 50, "the draws must often differ from greedy, or the test shows nothing: " + differing);
    }

    @Test
    void generationRestoresTheCallersEngineThreads() {
        TransformerLM m = TransformerLM.randomInit(ModelConfig.gpt2(64, 32, 2, 2, 16), 7);
        int before = EngineThreads.current();
        try {
            EngineThreads.set(2);
            int[][] out = Generator.greedyBatch(m, new int[][]{{1, 2, 3}, {4, 5}}, 5, -1);
            assertEquals(5, out[0].length);
            assertEquals(2, EngineThreads.current(), "decode steps ran on " + Generator.decodeThreads() + " thread(s), then the caller's 2 came back");
        } finally {
            EngineThreads.set(before);
        }
    }
}
