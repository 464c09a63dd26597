package io.sparklora.model;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * One forward and backward over a batch whose sequences train different adapters (LoRA with dropout, DoRA, LoHa,
 * VeRA) over one frozen base: each adapter's loss and gradients equal training it alone on its own sequences, with
 * its own dropout stream, and the base stays bit-for-bit unchanged.
 */
class MixedAdapterTrainingTest {
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final String[] NAMES = {"lora", "dora", "loha", "vera"};

    static TransformerLM model(Map<String, AttachedAdapter> out) {
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        out.put("lora", AttachedAdapter.attach(m, "lora", AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj")).withDropout(0.2), 1));
        out.put("dora", AttachedAdapter.attach(m, "dora", AdapterConfig.of("dora", 4, 8, List.of("c_attn", "c_fc")), 2));
        out.put("loha", AttachedAdapter.attach(m, "loha", AdapterConfig.of("loha", 2, 4, List.of("c_fc")), 3));
        out.put("vera", AttachedAdapter.attach(m, "vera", AdapterConfig.of("vera", 8, 8, List.of("c_attn")), 4));
        // LoRA's and VeRA's B start at zero, so A would get no gradient: move every tensor off its initial value
        java.util.Random r = new java.util.Random(5);
        for (AttachedAdapter a : out.values()) {
            for (Parameter p : a.trainableParameters()) {
                p.set(p.value().add(org.nd4j.linalg.factory.Nd4j.randn(r.nextLong(), p.value().shape()).castTo(p.value().dataType()).muli(0.1)));
            }
        }
        return m;
    }

    static int[][] rows(int n, int len, long seed) {
        java.util.Random r = new java.util.Random(seed);
        int[][] t = new int[n][len];
        for (int[] row : t) for (int j = 0; j < len; j++) row[j] = r.nextInt(CFG.vocabSize());
        return t;
    }

    @Test
    void eachAdapterGetsTheLossAndGradientsOfTrainingAlone() {
        Map<String, AttachedAdapter> adapters = new LinkedHashMap<>();
        TransformerLM m = model(adapters);
        INDArray wBefore = m.linears().get("transformer.h.0.attn.c_attn").weight().value().dup();
        int[] perAdapter = {2, 1, 3, 1};
        int seq = 8;
        Map<String, int[][]> inputs = new HashMap<>(), targets = new HashMap<>();
        int total = 0;
        for (int i = 0; i < NAMES.length; i++) {
            int[][] in = rows(perAdapter[i], seq, 10 + i), tg = rows(perAdapter[i], seq, 20 + i);
            tg[0][0] = TokenBatch.IGNORE;                       // ignored targets count in no adapter's mean
            tg[0][3] = TokenBatch.IGNORE;
            inputs.put(NAMES[i], in);
            targets.put(NAMES[i], tg);
            total += perAdapter[i];
        }
        int[][] in = new int[total][], tg = new int[total][];
        String[] route = new String[total];
        int k = 0;
        for (String n : NAMES) {
            for (int j = 0; j < inputs.get(n).length; j++, k++) {
                in[k] = inputs.get(n)[j];
                tg[k] = targets.get(n)[j];
                route[k] = n;
            }
        }
        Map<String, org.nd4j.linalg.api.rng.Random> streams = new LinkedHashMap<>();
        Map<String, Double> scale = new HashMap<>();
        for (int i = 0; i < NAMES.length; i++) {
            streams.put(NAMES[i], Seeds.rng(100 + i));
            scale.put(NAMES[i], i == 2 ? 0.5 : 1.0);           // gradient accumulation's 1/micro-batches, per adapter
        }
        Map<String, CrossEntropyLoss.Result> mixed = m.forwardBackwardMixed(TokenBatch.of(in, tg), ForwardContext.trainingMixed(route, streams), scale);
        Map<String, Map<String, INDArray>> mixedGrads = new HashMap<>();
        for (String n : NAMES) {
            Map<String, INDArray> g = new LinkedHashMap<>();
            for (Parameter p : adapters.get(n).trainableParameters()) {
                g.put(p.name(), p.grad().dup());
                p.zeroGrad();
            }
            mixedGrads.put(n, g);
        }
        assertEquals(List.of(NAMES), List.copyOf(mixed.keySet()), "losses in the order the batch names the adapters");

        for (int i = 0; i < NAMES.length; i++) {
            String n = NAMES[i];
            for (Linear l : m.allLinears()) l.setActive(List.of(n));
            CrossEntropyLoss.Result alone = m.forwardBackward(TokenBatch.of(inputs.get(n), targets.get(n)),
                    ForwardContext.training(Seeds.rng(100 + i)), scale.get(n));
            assertEquals(alone.count(), mixed.get(n).count(), n + ": target count");
            assertEquals(alone.sumLoss(), mixed.get(n).sumLoss(), 1e-4 * Math.abs(alone.sumLoss()), n + ": loss");
            double largest = 0;
            for (Parameter p : adapters.get(n).trainableParameters()) {
                INDArray want = p.grad(), got = mixedGrads.get(n).get(p.name());
                double scaleOf = want.amaxNumber().doubleValue();
                largest = Math.max(largest, scaleOf);
                assertEquals(0, got.sub(want).amaxNumber().doubleValue(), 1e-5 * Math.max(1, scaleOf), n + ": " + p.name());
                p.zeroGrad();
            }
            assertTrue(largest > 1e-3, n + ": gradients must be non-trivial for the comparison to mean anything: " + largest);
        }
        assertEquals(wBefore, m.linears().get("transformer.h.0.attn.c_attn").weight().value(), "the frozen base is unchanged");
        for (Parameter p : m.parameters().values()) assertFalse(p.trainable(), p.name() + " must stay frozen");
    }

    @Test
    void refusesAnAdapterWhoseSequencesAreSplitOrAStreamMissing() {
        TransformerLM m = model(new LinkedHashMap<>());
        int[][] ids = rows(3, 8, 1);
        Map<String, org.nd4j.linalg.api.rng.Random> streams = Map.of("lora", Seeds.rng(1), "dora", Seeds.rng(2));
        Map<String, Double> scale = Map.of("lora", 1.0, "dora", 1.0);
        IllegalArgumentException split = assertThrows(IllegalArgumentException.class, () -> m.forwardBackwardMixed(TokenBatch.of(ids, ids),
                ForwardContext.trainingMixed(new String[]{"lora", "dora", "lora"}, streams), scale));
        assertTrue(split.getMessage().contains("'lora' must be consecutive"), split.getMessage());
        IllegalArgumentException base = assertThrows(IllegalArgumentException.class, () -> m.forwardBackwardMixed(TokenBatch.of(ids, ids),
                ForwardContext.trainingMixed(new String[]{"lora", "lora", TransformerLM.BASE_ONLY}, streams), scale));
        assertTrue(base.getMessage().contains("trains no adapter"), base.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ForwardContext(true, null, new String[]{"lora"}));
    }
}
