package io.sparklora.model;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Recomputing blocks in backward must give exactly the gradients of keeping their activations, dropout included. */
class ActivationCheckpointingTest {

    private static Map<String, INDArray> gradients(ModelConfig c, boolean checkpointing, boolean fullFineTuning) {
        return gradients(c, checkpointing, false, fullFineTuning);
    }

    private static Map<String, INDArray> gradients(ModelConfig c, boolean checkpointing, boolean recomputeAttention, boolean fullFineTuning) {
        TransformerLM m = TransformerLM.randomInit(c, 11, DataType.DOUBLE);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("re:.*")).withDropout(0.2), 3);
        var init = Nd4j.getRandomFactory().getNewRandomInstance(4);
        a.trainableParameters().forEach(p -> p.value().assign(Nd4j.randn(init, p.value().shape()).muli(0.3)));
        if (fullFineTuning) m.setBaseTrainable(true);
        m.setActivationCheckpointing(checkpointing);
        m.setRecomputeAttention(recomputeAttention);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(5);
        TokenBatch b = TinyModels.batch(c, 2, 6, 7);
        double loss1 = m.forwardBackward(b, ForwardContext.training(rng), 1.0).meanLoss();
        double loss2 = m.forwardBackward(b, ForwardContext.training(rng), 0.5).meanLoss();   // a second step draws new masks
        Map<String, INDArray> g = new LinkedHashMap<>();
        g.put("loss", Nd4j.createFromArray(loss1, loss2));
        for (Parameter p : a.trainableParameters()) g.put(p.name(), p.grad().dup());
        if (fullFineTuning) m.parameters().values().forEach(p -> g.put(p.name(), p.grad().dup()));
        return g;
    }

    @Test
    void checkpointedGradientsEqualStoredActivationGradients() {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            for (boolean full : new boolean[]{false, true}) {
                Map<String, INDArray> stored = gradients(c, false, full), recomputed = gradients(c, true, full);
                assertEquals(stored.keySet(), recomputed.keySet());
                for (String k : stored.keySet()) {
                    assertEquals(stored.get(k), recomputed.get(k), c.architecture() + " full=" + full + ": " + k);
                }
                assertTrue(stored.values().stream().skip(1).anyMatch(t -> t.amaxNumber().doubleValue() > 0), "gradients flow");
            }
        }
    }

    /** Selective recomputation of the attention probabilities: bit-identical gradients, on every family's attention. */
    @Test
    void recomputedAttentionProbabilitiesGiveIdenticalGradients() {
        for (ModelConfig c : TinyModels.all()) {
            for (boolean full : new boolean[]{false, true}) {
                Map<String, INDArray> stored = gradients(c, false, false, full), recomputed = gradients(c, false, true, full);
                assertEquals(stored.keySet(), recomputed.keySet());
                for (String k : stored.keySet()) {
                    assertEquals(stored.get(k), recomputed.get(k), c.architecture() + " full=" + full + ": " + k);
                }
                assertTrue(stored.values().stream().skip(1).anyMatch(t -> t.amaxNumber().doubleValue() > 0), "gradients flow");
            }
        }
        // by default forward keeps no probabilities: backward recomputes them
        TransformerLM m = TransformerLM.randomInit(TinyModels.gpt2(), 11, DataType.DOUBLE);
        assertTrue(m.blocks().stream().allMatch(b -> b.attention().recomputeProbs()), "on by default");
        INDArray x = Nd4j.rand(DataType.DOUBLE, 12, TinyModels.gpt2().hiddenSize());
        assertNull(m.blocks().get(0).attention().forward(x, 2, 6, ForwardContext.inference()).probs());
        m.setRecomputeAttention(false);
        assertNotNull(m.blocks().get(0).attention().forward(x, 2, 6, ForwardContext.inference()).probs());
    }

    /** The training path runs the head and loss in row chunks; it must equal the whole-logits computation. */
    @Test
    void chunkedHeadAndLossEqualTheWholeLogitsPath() {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            TransformerLM chunked = TransformerLM.randomInit(c, 12, DataType.DOUBLE);
            TransformerLM whole = TransformerLM.randomInit(c, 12, DataType.DOUBLE);
            for (TransformerLM m : List.of(chunked, whole)) m.setBaseTrainable(true);
            chunked.setLossChunkRows(3);                         // 10 rows → chunks of 3, 3, 3, 1
            TokenBatch b = TinyModels.batch(c, 2, 5, 3);
            double loss = chunked.forwardBackward(b, ForwardContext.inference(), 0.5).meanLoss();
            TransformerLM.Forward f = whole.forward(b, ForwardContext.inference());
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(f.logits(), b.targets(), true);
            whole.backwardEmbedding(b, whole.backward(f, r.dLogits().muli(0.5)));
            assertEquals(r.meanLoss(), loss, 1e-12);
            assertEquals(r.meanLoss(), chunked.loss(b).meanLoss(), 1e-12, "evaluation runs the same chunks");
            for (String name : whole.parameters().keySet()) {
                INDArray want = whole.parameters().get(name).grad(), got = chunked.parameters().get(name).grad();
                assertTrue(want.equalsWithEps(got, 1e-12), c.architecture() + " " + name);
            }
        }
    }
}
