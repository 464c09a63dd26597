package io.sparklora.model;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * One forward over sequences that use different adapters, unmerged, DoRA among them: each sequence's logits equal
 * running it alone with only its adapter active, in a full forward and through the KV cache with prompts of
 * different lengths.
 */
class MixedAdapterBatchTest {
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final String BASE = TransformerLM.BASE_ONLY;

    /** A model with four adapters of four methods attached, every tensor set to random values (so none is a no-op). */
    static TransformerLM model() {
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        Random r = new Random(3);
        List<AttachedAdapter> all = List.of(
                AttachedAdapter.attach(m, "lora", AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj")), 1),
                AttachedAdapter.attach(m, "dora", AdapterConfig.of("dora", 4, 8, List.of("c_attn", "c_fc")), 2),
                AttachedAdapter.attach(m, "loha", AdapterConfig.of("loha", 2, 4, List.of("c_fc")), 3),
                AttachedAdapter.attach(m, "vera", AdapterConfig.of("vera", 8, 8, List.of("c_attn")), 4));
        for (AttachedAdapter a : all) {
            for (Parameter p : a.trainableParameters()) {
                INDArray v = p.value();
                p.set(v.add(Nd4j.randn(r.nextLong(), v.shape()).castTo(v.dataType()).muli(0.2)));
            }
        }
        return m;
    }

    static void only(TransformerLM m, String name) {
        for (Linear l : m.allLinears()) l.setActive(name.equals(BASE) ? List.of() : List.of(name));
    }

    static int[][] tokens(int sequences, int len, long seed) {
        Random r = new Random(seed);
        int[][] t = new int[sequences][len];
        for (int[] row : t) for (int j = 0; j < len; j++) row[j] = r.nextInt(CFG.vocabSize());
        return t;
    }

    @Test
    void eachSequenceMatchesItsAdapterAlone() {
        TransformerLM m = model();
        String[] route = {"lora", BASE, "dora", "loha", "lora", "vera"};
        int[][] ids = tokens(route.length, 8, 11);
        INDArray mixed = m.logits(TokenBatch.of(ids, ids), route);
        double spread = 0;
        for (int s = 0; s < route.length; s++) {
            only(m, route[s]);
            INDArray alone = m.logits(TokenBatch.of(new int[][]{ids[s]}, new int[][]{ids[s]}));
            INDArray rows = mixed.get(NDArrayIndex.interval(s * 8, (s + 1) * 8), NDArrayIndex.all());
            assertEquals(0, rows.sub(alone).amaxNumber().doubleValue(), 1e-4, "sequence " + s + " (" + route[s] + ")");
            only(m, BASE);
            spread = Math.max(spread, m.logits(TokenBatch.of(new int[][]{ids[s]}, new int[][]{ids[s]})).sub(alone).amaxNumber().doubleValue());
        }
        assertTrue(spread > 1e-2, "the adapters must change the logits for the comparison to mean anything: " + spread);
    }

    @Test
    void generationThroughTheKvCacheMatchesEachSequenceAlone() {
        TransformerLM m = model();
        String[] route = {"dora", "lora", BASE};
        int[][] prompts = {tokens(1, 5, 1)[0], tokens(1, 3, 2)[0], tokens(1, 7, 3)[0]};
        int[] lengths = {5, 3, 7};
        KvCache cache = m.newKvCache(lengths, 7 + 3);
        INDArray logits = m.prefill(cache, prompts, route);
        int[][] next = {{4, 9, 17}, {21, 2, 30}, {6, 6, 1}};     // tokens fed in, per step and row
        INDArray[] steps = new INDArray[4];
        steps[0] = logits;
        for (int k = 0; k < 3; k++) steps[k + 1] = m.decodeStep(cache, next[k], route);
        for (int b = 0; b < 3; b++) {
            only(m, route[b]);
            KvCache one = m.newKvCache(new int[]{lengths[b]}, 10);
            INDArray alone = m.prefill(one, new int[][]{prompts[b]});
            for (int k = 0; k <= 3; k++) {
                if (k > 0) alone = m.decodeStep(one, new int[]{next[k - 1][b]});
                assertEquals(0, steps[k].getRow(b).sub(alone.getRow(0)).amaxNumber().doubleValue(), 1e-4, "row " + b + " step " + k);
            }
        }
    }

    @Test
    void sampledTextPerRowIsWhatEachRowGetsAloneEvenPastTheContext() {
        TransformerLM m = model();
        String[] route = {"vera", "dora", BASE, "loha"};
        int[][] prompts = {tokens(1, 4, 7)[0], tokens(1, 20, 8)[0], tokens(1, 2, 9)[0], tokens(1, 9, 10)[0]};
        long[] seeds = {1, 2, 3, 4};
        // 20 + 20 tokens pass the 16-position context: rows slide their windows without the cache once it fills
        int[][] mixed = io.sparklora.train.Generator.sampleBatch(m, prompts, route, 20, -1, 0.8, 5, seeds);
        for (int b = 0; b < route.length; b++) {
            only(m, route[b]);
            int[] alone = io.sparklora.train.Generator.sample(m, prompts[b], 20, -1, 0.8, 5, seeds[b]);
            assertArrayEquals(alone, mixed[b], "row " + b + " (" + route[b] + ")");
        }
        assertEquals(16, CFG.maxPositions(), "the test relies on the context being 16");
    }

    @Test
    void whatCannotBeMixedIsRefusedByName() {
        TransformerLM m = model();
        int[][] ids = tokens(2, 4, 5);
        var unknown = assertThrows(IllegalArgumentException.class, () -> m.logits(TokenBatch.of(ids, ids), new String[]{"lora", "lokr"}));
        assertTrue(unknown.getMessage().contains("sequence 1 names adapter 'lokr'"), unknown.getMessage());
        var count = assertThrows(IllegalArgumentException.class, () -> m.logits(TokenBatch.of(ids, ids), new String[]{"lora"}));
        assertTrue(count.getMessage().contains("1 adapter names for 2 sequences"), count.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ForwardContext(true, null, new String[]{"lora"}));
        m.allLinears().stream().filter(l -> l.adapter("lora") != null).findFirst().orElseThrow().merge("lora");
        var merged = assertThrows(IllegalStateException.class, () -> m.logits(TokenBatch.of(ids, ids), new String[]{"lora", BASE}));
        assertTrue(merged.getMessage().contains("'lora' is merged into"), merged.getMessage());
    }
}
