package io.sparklora.train;

import io.sparklora.model.KvCache;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.Tensors;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;

/**
 * Decoding for the report's samples, the API's {@code generate} and the Spark ML transform: greedy or seeded
 * top-k sampling, with a KV cache. The prompts of a batch may differ in length: they are left-padded into one
 * cache ({@link KvCache}) and generate together, each row stopping at its own end-of-sequence token, and each
 * gets the tokens it would get alone.
 *
 * <p>While a row and its continuation fit the model's context, every new token costs one incremental forward
 * ({@link TransformerLM#decodeStep}). Past the context the window slides, which changes every position: the
 * rows still generating then re-run their last {@code context} tokens per token, as {@link #sampleUncached}
 * does throughout.
 *
 * <p>Decode steps run on at most {@link #decodeThreads()} engine threads (default 1), the prefill on the caller's. A
 * decode step is a few rows through every weight: memory-bound matmuls and many small ops, where a second engine
 * thread only spins between ops and the two threads take the cores from each other. On a 2-core AMD EPYC a GPT-2
 * small decode step took 80 ms on one thread against 125-130 ms on two at batch 1, and 100 against 310 ms at batch 8
 * (docs/BENCHMARKS.md, "Generation").
 */
public final class Generator {
    private Generator() {}

    /** The system property with the most engine threads a decode step uses (default 1; the caller's count when higher). */
    public static final String DECODE_THREADS_PROPERTY = "sparklora.generate.decode_threads";

    /** The most engine threads decode steps use ({@value #DECODE_THREADS_PROPERTY}, default 1). */
    public static int decodeThreads() {
        String v = System.getProperty(DECODE_THREADS_PROPERTY, "1").strip();
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) return n;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(DECODE_THREADS_PROPERTY + " must be a whole number of threads >= 1, got '" + v + "'");
    }

    /** Continues {@code prompt} by up to {@code maxNew} tokens, stopping at {@code eosId}; returns only the new tokens. */
    public static int[] greedy(TransformerLM model, int[] prompt, int maxNew, int eosId) {
        return sample(model, prompt, maxNew, eosId, 0, 1, 0);
    }

    /** {@link #greedy} for a batch of prompts of any lengths, generated together; row i continues prompt i. */
    public static int[][] greedyBatch(TransformerLM model, int[][] prompts, int maxNew, int eosId) {
        return sampleBatch(model, prompts, maxNew, eosId, 0, 1, new long[prompts.length]);
    }

    /**
     * Samples from the {@code topK} most likely tokens at {@code temperature} (0 = greedy), seeded, so
     * the same seed gives the same text. Small models repeat themselves under greedy decoding; a little
     * sampling shows better what they learned.
     */
    public static int[] sample(TransformerLM model, int[] prompt, int maxNew, int eosId, double temperature, int topK, long seed) {
        return sampleBatch(model, new int[][]{prompt}, maxNew, eosId, temperature, topK, new long[]{seed})[0];
    }

    /**
     * {@link #sample} for a batch of prompts of any lengths, generated together with one KV cache; row i draws
     * from its own stream seeded with {@code seeds[i]}, so it gets what {@code sample(prompts[i], ..., seeds[i])}
     * gets alone (the batch's logits equal the row's own to float rounding).
     */
    public static int[][] sampleBatch(TransformerLM model, int[][] prompts, int maxNew, int eosId, double temperature,
                                      int topK, long[] seeds) {
        return sampleBatch(model, prompts, null, maxNew, eosId, temperature, topK, seeds);
    }

    /**
     * {@link #sampleBatch} where row i runs with adapter {@code adapters[i]} alone ({@link TransformerLM#BASE_ONLY}: the
     * base), unmerged, in one batch over one KV cache: a mixed-adapter batch. Null: the model's active adapters for
     * every row. Row i gets what it would get alone with only its adapter active.
     */
    public static int[][] sampleBatch(TransformerLM model, int[][] prompts, String[] adapters, int maxNew, int eosId, double temperature,
                                      int topK, long[] seeds) {
        int n = prompts.length;
        if (adapters != null && adapters.length != n) throw new IllegalArgumentException(n + " prompts but " + adapters.length + " adapter names");
        if (seeds.length != n) throw new IllegalArgumentException(n + " prompts but " + seeds.length + " seeds");
        if (maxNew < 0) throw new IllegalArgumentException("maxNew must be >= 0, got " + maxNew);
        for (int i = 0; i < n; i++) {
            if (prompts[i] == null || prompts[i].length == 0) throw new IllegalArgumentException("prompt " + i + " is empty");
        }
        int[][] out = new int[n][];
        if (n == 0) return out;
        if (maxNew == 0) {
            Arrays.fill(out, new int[0]);
            return out;
        }
        int ctx = model.config().maxPositions();
        java.util.Random[] rng = new java.util.Random[n];
        int[][] seq = new int[n][];
        int[] len = new int[n], made = new int[n];
        boolean[] done = new boolean[n];
        int[][] window = new int[n][];
        int longest = 0;
        for (int i = 0; i < n; i++) {
            rng[i] = new java.util.Random(seeds[i]);
            seq[i] = Arrays.copyOf(prompts[i], prompts[i].length + maxNew);
            len[i] = prompts[i].length;
            // a prompt longer than the context starts from its last ctx tokens, as the sliding window does
            window[i] = Arrays.copyOfRange(prompts[i], Math.max(0, len[i] - ctx), len[i]);
            longest = Math.max(longest, window[i].length);
        }
        // the last token generated is never fed back, so maxNew − 1 decode steps follow the prompt
        int capacity = (int) Math.min(ctx, (long) longest + maxNew - 1);
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) lengths[i] = window[i].length;
        KvCache cache = model.newKvCache(lengths, capacity);
        int callerThreads = io.sparklora.model.EngineThreads.current();
        int stepThreads = Math.min(callerThreads, decodeThreads());
        try {
            INDArray logits = adapters == null ? model.prefill(cache, window) : model.prefill(cache, window, adapters);
            io.sparklora.model.EngineThreads.set(stepThreads);
            while (true) {
                int[] next = new int[n];
                boolean any = false;
                for (int i = 0; i < n; i++) {
                    if (done[i]) {
                        next[i] = seq[i][len[i] - 1];        // keeps the batch's shape; its output is ignored
                        continue;
                    }
                    int tok = pick(logits.getRow(i).toDoubleVector(), temperature, topK, rng[i]);
                    if (tok == eosId) {
                        done[i] = true;
                    } else {
                        seq[i][len[i]++] = tok;
                        if (++made[i] == maxNew) done[i] = true;
                    }
                    next[i] = seq[i][len[i] - 1];
                    any |= !done[i];
                }
                Tensors.release(logits);
                if (!any) break;
                if (cache.length() == cache.capacity()) {
                    // the context is full: from here the window slides and each remaining row re-runs it per token
                    for (int i = 0; i < n; i++) {
                        if (!done[i]) {
                            len[i] = continueUncached(model, seq[i], len[i], made[i], maxNew, eosId, temperature, topK, rng[i],
                                    adapters == null ? null : adapters[i]);
                        }
                    }
                    break;
                }
                logits = adapters == null ? model.decodeStep(cache, next) : model.decodeStep(cache, next, adapters);
            }
        } finally {
            io.sparklora.model.EngineThreads.set(callerThreads);
            cache.release();
        }
        for (int i = 0; i < n; i++) out[i] = Arrays.copyOfRange(seq[i], prompts[i].length, len[i]);
        return out;
    }

    /**
     * The reference decoder without a cache: re-runs the whole window (the last {@code context} tokens) for every
     * new token. Same results as {@link #sample}; kept for the tests and the generation benchmark.
     */
    public static int[] sampleUncached(TransformerLM model, int[] prompt, int maxNew, int eosId, double temperature, int topK, long seed) {
        if (prompt.length == 0) throw new IllegalArgumentException("the prompt is empty");
        java.util.Random rng = new java.util.Random(seed);
        int[] seq = Arrays.copyOf(prompt, prompt.length + maxNew);
        int len = continueUncached(model, seq, prompt.length, 0, maxNew, eosId, temperature, topK, rng, null);
        return Arrays.copyOfRange(seq, prompt.length, len);
    }

    /**
     * Extends seq[0 .. len) in place, {@code made} of {@code maxNew} tokens already generated, with adapter {@code adapter}
     * alone (null: the model's active adapters); returns the new length.
     */
    private static int continueUncached(TransformerLM model, int[] seq, int len, int made, int maxNew, int eosId,
                                        double temperature, int topK, java.util.Random rng, String adapter) {
        int ctx = model.config().maxPositions();
        while (made < maxNew) {
            int from = Math.max(0, len - ctx);
            int[] window = Arrays.copyOfRange(seq, from, len);
            int[] noTargets = new int[window.length];
            Arrays.fill(noTargets, TokenBatch.IGNORE);
            TokenBatch one = TokenBatch.of(new int[][]{window}, new int[][]{noTargets});
            INDArray logits = adapter == null ? model.logits(one) : model.logits(one, new String[]{adapter});
            int next = pick(logits.getRow(window.length - 1).toDoubleVector(), temperature, topK, rng);
            Tensors.release(logits);
            if (next == eosId) break;
            seq[len++] = next;
            made++;
        }
        return len;
    }

    static int pick(double[] logits, double temperature, int topK, java.util.Random rng) {
        if (temperature <= 0 || topK <= 1) {
            // greedy: the first index of the largest logit (what top-k's order below puts first), in one pass
            int best = 0;
            for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
            return best;
        }
        // the k largest, ties to the lower index (what a stable sort by descending logit puts first), by a bounded
        // heap whose root is the weakest kept: O(V log k), not a sort of the vocabulary per row per step
        int k = Math.min(topK, logits.length);
        java.util.Comparator<Integer> weakestFirst = (a, b) -> {
            int c = Double.compare(logits[a], logits[b]);
            return c != 0 ? c : Integer.compare(b, a);
        };
        java.util.PriorityQueue<Integer> kept = new java.util.PriorityQueue<>(k + 1, weakestFirst);
        for (int i = 0; i < logits.length; i++) {
            if (kept.size() < k) kept.add(i);
            else if (weakestFirst.compare(i, kept.peek()) > 0) {
                kept.poll();
                kept.add(i);
            }
        }
        Integer[] order = kept.toArray(new Integer[0]);
        Arrays.sort(order, weakestFirst.reversed());
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) sum += p[i] = Math.exp((logits[order[i]] - logits[order[0]]) / temperature);
        double u = rng.nextDouble() * sum;
        for (int i = 0; i < k; i++) if ((u -= p[i]) <= 0) return order[i];
        return order[k - 1];
    }
}
