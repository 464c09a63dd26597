package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Several adapters trained together over one base: each ends exactly where training it alone (same seed, options
 * and data) ends, to fp32 rounding of the shared matmuls; one job's bad data or divergence fails that job only.
 */
class MultiAdapterTrainerTest {
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final int SEQ = 12;

    /** n blocks of a per-job pattern (so every job learns something different). */
    static TokenBlocks data(int n, int pattern) {
        List<int[]> docs = new ArrayList<>();
        for (int d = 0; d < n; d++) {
            int[] doc = new int[SEQ];
            for (int i = 0; i < SEQ; i++) doc[i] = (pattern * (d + 1) + i * (pattern + 1)) % (CFG.vocabSize() - 1);
            docs.add(doc);
        }
        return TokenBlocks.pack(docs, null, CFG.vocabSize() - 1, SEQ, CFG.vocabSize() - 1);
    }

    static TrainingOptions opts(int steps, int batch, int accum, double lr, long seed) {
        return TrainingOptions.defaults(steps).withBatch(batch, accum).withLr(lr).withWarmup(1, "cosine").withSeed(seed);
    }

    static List<MultiAdapterTrainer.Job> goodJobs() {
        return List.of(
                new MultiAdapterTrainer.Job("chat", AdapterConfig.lora(4, 8, List.of("c_attn", "c_proj")).withDropout(0.1), opts(5, 2, 1, 1e-2, 11), data(9, 1)),
                new MultiAdapterTrainer.Job("code", AdapterConfig.of("dora", 2, 4, List.of("c_fc")), opts(4, 3, 2, 5e-3, 12), data(7, 2)),
                new MultiAdapterTrainer.Job("mail", AdapterConfig.of("loha", 2, 4, List.of("c_attn")), opts(3, 1, 1, 2e-2, 13), data(5, 3)));
    }

    /** The job trained alone on a fresh base with the same seed: its adapter's tensors and step losses. */
    static Map<String, INDArray> alone(MultiAdapterTrainer.Job j, List<Double> losses) {
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        AttachedAdapter a = AttachedAdapter.attach(m, j.name(), j.config(), j.options().seed());
        Trainer.forAdapter(a, j.options()).train(j.data(), s -> losses.add(s.loss()));
        return tensors(a);
    }

    static Map<String, INDArray> tensors(AttachedAdapter a) {
        Map<String, INDArray> t = new java.util.LinkedHashMap<>();
        for (Parameter p : a.trainableParameters()) t.put(p.name(), p.value().dup());
        return t;
    }

    static void assertSameAsAlone(MultiAdapterTrainer.Outcome o, MultiAdapterTrainer.Job j) {
        assertTrue(o.succeeded(), o.name() + ": " + o.error());
        List<Double> losses = new ArrayList<>();
        Map<String, INDArray> want = alone(j, losses);
        assertEquals(j.options().steps(), o.steps().size(), o.name() + ": steps");
        for (int s = 0; s < losses.size(); s++) {
            assertEquals(losses.get(s), o.steps().get(s).loss(), 1e-5 * Math.max(1, Math.abs(losses.get(s))), o.name() + ": loss of step " + (s + 1));
        }
        Map<String, INDArray> got = tensors(o.adapter());
        assertEquals(want.keySet(), got.keySet());
        AttachedAdapter fresh = AttachedAdapter.attach(TransformerLM.randomInit(CFG, 7), j.name(), j.config(), j.options().seed());
        double moved = 0;
        for (Parameter p : fresh.trainableParameters()) {
            INDArray w = want.get(p.name());
            assertEquals(0, got.get(p.name()).sub(w).amaxNumber().doubleValue(), 2e-5 * Math.max(1, w.amaxNumber().doubleValue()), o.name() + ": " + p.name());
            moved = Math.max(moved, w.sub(p.value()).amaxNumber().doubleValue());
        }
        assertTrue(moved > 1e-3, o.name() + ": training must move the adapter for the comparison to mean anything: " + moved);
    }

    @Test
    void eachAdapterEndsWhereTrainingItAloneEnds() {
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        INDArray base = m.linears().get("transformer.h.1.mlp.c_fc").weight().value().dup();
        List<MultiAdapterTrainer.Job> jobs = goodJobs();
        List<String> order = new ArrayList<>();
        Map<String, MultiAdapterTrainer.Outcome> out = new MultiAdapterTrainer(m, jobs).train((name, s) -> order.add(name + ":" + s.step()));
        for (MultiAdapterTrainer.Job j : jobs) assertSameAsAlone(out.get(j.name()), j);
        // steps interleave: every adapter still training takes its step k before any takes step k+1
        assertEquals(List.of("chat:1", "code:1", "mail:1", "chat:2", "code:2", "mail:2", "chat:3", "code:3", "mail:3", "chat:4", "code:4", "chat:5"), order);
        assertEquals(base, m.linears().get("transformer.h.1.mlp.c_fc").weight().value(), "the shared base is unchanged");
    }

    @Test
    void badDataOrDivergenceFailsThatAdapterOnly() {
        TokenBlocks outside = data(6, 4);
        outside.block(3)[5] = 999;                               // a token id the model does not have
        List<MultiAdapterTrainer.Job> jobs = new ArrayList<>(goodJobs());
        jobs.add(1, new MultiAdapterTrainer.Job("wrong-vocab", AdapterConfig.lora(4, 8, List.of("c_attn")), opts(4, 2, 1, 1e-2, 14), outside));
        jobs.add(new MultiAdapterTrainer.Job("empty", AdapterConfig.lora(4, 8, List.of("c_attn")), opts(4, 2, 1, 1e-2, 15), new TokenBlocks(SEQ)));
        jobs.add(new MultiAdapterTrainer.Job("biased", AdapterConfig.lora(4, 8, List.of("c_attn")).withBias("all"), opts(4, 2, 1, 1e-2, 16), data(6, 5)));
        // unclipped and absurdly large steps: the loss overflows after a step or two, while the others share its batches
        jobs.add(new MultiAdapterTrainer.Job("diverges", AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")),
                opts(5, 2, 1, 1e30, 17).withMaxGradNorm(0).withWarmup(0, "constant"), data(6, 6)));
        TransformerLM m = TransformerLM.randomInit(CFG, 7);
        Map<String, MultiAdapterTrainer.Outcome> out = new MultiAdapterTrainer(m, jobs).train(null);

        assertEquals(List.of("chat", "wrong-vocab", "code", "mail", "empty", "biased", "diverges"), List.copyOf(out.keySet()));
        for (MultiAdapterTrainer.Job j : goodJobs()) assertSameAsAlone(out.get(j.name()), j);
        assertFailed(out.get("wrong-vocab"), "block 3, position 5: token id 999 is outside the model's vocabulary of 64");
        assertFailed(out.get("empty"), "holds no blocks");
        assertFailed(out.get("biased"), "trains base tensors");
        assertFailed(out.get("diverges"), "the loss is");
        for (Linear l : m.allLinears()) {
            for (String gone : List.of("wrong-vocab", "empty", "biased", "diverges")) assertNull(l.adapter(gone), gone + " left attached to " + l.name());
        }
    }

    static void assertFailed(MultiAdapterTrainer.Outcome o, String why) {
        assertFalse(o.succeeded(), o.name() + " should have failed");
        assertNull(o.adapter());
        assertTrue(o.error().startsWith("adapter '" + o.name() + "'") && o.error().contains(why), o.error());
    }

    @Test
    void refusesDuplicateAndUnsafeNames() {
        MultiAdapterTrainer.Job j = goodJobs().get(0);
        IllegalArgumentException dup = assertThrows(IllegalArgumentException.class,
                () -> new MultiAdapterTrainer(TransformerLM.randomInit(CFG, 7), List.of(j, j)));
        assertTrue(dup.getMessage().contains("two adapter jobs are named 'chat'"), dup.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new MultiAdapterTrainer.Job("../x", j.config(), j.options(), j.data()));
        assertThrows(IllegalArgumentException.class, () -> new MultiAdapterTrainer.Job(TransformerLM.BASE_ONLY, j.config(), j.options(), j.data()));
    }
}
