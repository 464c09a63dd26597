package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.KvCache;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Generation with a KV cache ({@link TransformerLM#prefill}, {@link TransformerLM#decodeStep}, {@link Generator}):
 * the incremental logits equal the full forward's last-position logits in fp32 to {@value #TOL} (absolute, on
 * logits of magnitude ~0.1 to 1), with adapters attached unmerged to every linear layer; cached greedy and sampled
 * decoding give exactly the tokens of the uncached reference; rows of different lengths in one batch get what they
 * get alone; each row stops at its own end-of-sequence token.
 */
class KvCacheGenerationTest {
    private static final double TOL = 2e-5;
    /** Adapter methods checked unmerged: each acts per token through Linear. */
    private static final List<String> METHODS = List.of("lora", "dora", "vera", "loha", "lokr", "glora", "adalora", "dylora");

    private static TransformerLM model(ModelConfig c, String method, long seed) {
        TransformerLM m = TransformerLM.randomInit(c, seed, DataType.FLOAT);
        if (method != null) {
            AdapterConfig cfg = AdapterConfig.of(method, 2, 4, TinyModels.allLinearTargets(c));
            if (method.equals("adalora")) cfg = cfg.withOption("target_r", "2");
            AttachedAdapter a = AttachedAdapter.attach(m, "default", cfg, 3);
            var init = Nd4j.getRandomFactory().getNewRandomInstance(seed + 1);
            // adapters start as the identity (B = 0 and the like): give every trainable tensor values so the delta shows
            a.trainableParameters().forEach(p -> p.value().assign(Nd4j.randn(init, p.value().shape()).castTo(p.value().dataType()).muli(0.3)));
        }
        return m;
    }

    private static int[] tokens(ModelConfig c, int n, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(c.vocabSize());
        return t;
    }

    /** The full forward's logits at the last position of {@code seq} [V]. */
    private static INDArray fullLast(TransformerLM m, int[] seq) {
        int[] none = new int[seq.length];
        Arrays.fill(none, TokenBatch.IGNORE);
        INDArray logits = m.logits(TokenBatch.of(new int[][]{seq}, new int[][]{none}));
        return logits.getRow(seq.length - 1).dup();
    }

    private static void assertClose(INDArray want, INDArray got, String what) {
        double diff = Math.abs(want.sub(got).amaxNumber().doubleValue());
        assertTrue(diff <= TOL, what + ": max |Δ| = " + diff);
    }

    @Test
    void incrementalLogitsEqualFullForwardAtEveryStep() {
        List<ModelConfig> configs = TinyModels.all();
        for (int ci = 0; ci < configs.size(); ci++) {
            ModelConfig c = configs.get(ci);
            // every method on GPT-2 and Llama (GQA, RoPE); the base and LoRA on the Llama variations
            for (String method : ci < 2 ? methodsAndBase() : Arrays.asList(null, "lora")) {
                TransformerLM m = model(c, method, 5);
                int[] seq = tokens(c, 12, 9);
                int prompt = 5;
                KvCache cache = m.newKvCache(new int[]{prompt}, seq.length);
                INDArray got = m.prefill(cache, new int[][]{Arrays.copyOf(seq, prompt)});
                String what = c.architecture() + " " + method;
                assertTrue(Math.abs(fullLast(m, Arrays.copyOf(seq, prompt)).amaxNumber().doubleValue()) > 1e-2, what + ": logits are not trivially small");
                assertClose(fullLast(m, Arrays.copyOf(seq, prompt)), got.getRow(0), what + " prefill");
                for (int t = prompt; t < seq.length; t++) {
                    got = m.decodeStep(cache, new int[]{seq[t]});
                    assertClose(fullLast(m, Arrays.copyOf(seq, t + 1)), got.getRow(0), what + " step at position " + t);
                }
                assertEquals(seq.length, cache.length());
                assertThrows(IllegalStateException.class, () -> m.decodeStep(cache, new int[]{0}), "a full cache refuses another token");
                cache.release();
            }
        }
    }

    private static List<String> methodsAndBase() {
        List<String> l = new java.util.ArrayList<>();
        l.add(null);
        l.addAll(METHODS);
        return l;
    }

    @Test
    void cachedDecodingGivesTheUncachedTokens() {
        for (ModelConfig c : TinyModels.all()) {
            for (String method : Arrays.asList(null, "lora", "dora")) {
                TransformerLM m = model(c, method, 7);
                String what = c.architecture() + " " + method;
                for (int promptLen : new int[]{3, 10, 20}) {
                    // the context is 16: 10 + 12 and 20 run past it, where the window slides
                    int[] prompt = tokens(c, promptLen, promptLen);
                    int[] want = Generator.sampleUncached(m, prompt, 12, -1, 0, 1, 0);
                    assertEquals(12, want.length);
                    assertArrayEquals(want, Generator.greedy(m, prompt, 12, -1), what + " greedy, prompt " + promptLen);
                    int[] sampledWant = Generator.sampleUncached(m, prompt, 12, -1, 0.8, 5, 42);
                    assertArrayEquals(sampledWant, Generator.sample(m, prompt, 12, -1, 0.8, 5, 42), what + " sampled, prompt " + promptLen);
                }
            }
        }
    }

    @Test
    void rowsOfDifferentLengthsGetWhatTheyGetAlone() {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama(), TinyModels.qwen3())) {
            TransformerLM m = model(c, "lora", 11);
            int[][] prompts = {tokens(c, 3, 1), tokens(c, 7, 2), tokens(c, 5, 3)};
            int steps = 4;
            int[][] next = new int[steps][];
            for (int s = 0; s < steps; s++) next[s] = tokens(c, prompts.length, 100 + s);
            KvCache batch = m.newKvCache(new int[]{3, 7, 5}, 7 + steps);
            INDArray b0 = m.prefill(batch, prompts);
            INDArray[] batched = new INDArray[steps];
            for (int s = 0; s < steps; s++) batched[s] = m.decodeStep(batch, next[s]);
            for (int r = 0; r < prompts.length; r++) {
                String what = c.architecture() + " row " + r;
                KvCache alone = m.newKvCache(new int[]{prompts[r].length}, prompts[r].length + steps);
                assertClose(m.prefill(alone, new int[][]{prompts[r]}).getRow(0), b0.getRow(r), what + " prefill");
                int[] seq = prompts[r];
                for (int s = 0; s < steps; s++) {
                    INDArray a = m.decodeStep(alone, new int[]{next[s][r]});
                    assertClose(a.getRow(0), batched[s].getRow(r), what + " step " + s);
                    seq = Arrays.copyOf(seq, seq.length + 1);
                    seq[seq.length - 1] = next[s][r];
                    assertClose(fullLast(m, seq), batched[s].getRow(r), what + " step " + s + " against the full forward");
                }
            }
            int[][] greedyBatch = Generator.greedyBatch(m, prompts, 8, -1);
            long[] seeds = {4, 5, 6};
            int[][] sampledBatch = Generator.sampleBatch(m, prompts, 8, -1, 0.8, 5, seeds);
            for (int r = 0; r < prompts.length; r++) {
                assertArrayEquals(Generator.greedy(m, prompts[r], 8, -1), greedyBatch[r], c.architecture() + " greedy row " + r);
                assertArrayEquals(Generator.sampleUncached(m, prompts[r], 8, -1, 0.8, 5, seeds[r]), sampledBatch[r], c.architecture() + " sampled row " + r);
            }
        }
    }

    @Test
    void eachRowStopsAtItsOwnEndOfSequence() {
        ModelConfig c = TinyModels.llama();
        TransformerLM m = model(c, "lora", 13);
        int[][] prompts = {tokens(c, 4, 21), tokens(c, 6, 22)};
        int[] free0 = Generator.greedy(m, prompts[0], 10, -1);
        // row 0's third token becomes the end of sequence: row 0 stops before its first occurrence
        int eos = free0[2];
        int stop = 0;
        while (free0[stop] != eos) stop++;
        int[][] got = Generator.greedyBatch(m, prompts, 10, eos);
        assertArrayEquals(Arrays.copyOf(free0, stop), got[0]);
        assertTrue(got[0].length < 10, "row 0 stopped early");
        assertArrayEquals(Generator.greedy(m, prompts[1], 10, eos), got[1]);
        for (int t : got[1]) assertNotEquals(eos, t);
        int[] free1 = Generator.sampleUncached(m, prompts[1], 10, -1, 0, 1, 0);
        int stop1 = 0;
        while (stop1 < free1.length && free1[stop1] != eos) stop1++;
        assertArrayEquals(Arrays.copyOf(free1, stop1), got[1], "row 1 runs on to its own end");
    }

    @Test
    void badPromptsAreRefusedByName() {
        TransformerLM m = model(TinyModels.gpt2(), null, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Generator.greedyBatch(m, new int[][]{{1, 2}, {}}, 3, -1));
        assertTrue(e.getMessage().contains("prompt 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Generator.greedy(m, new int[]{1, 99}, 3, -1));
        assertTrue(e.getMessage().contains("99"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> m.newKvCache(new int[]{3}, 17));
        assertTrue(e.getMessage().contains("context 16"), e.getMessage());
    }
}
