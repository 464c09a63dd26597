package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TrainerTest {

    private static TokenBlocks blocks(int vocab, int n, int seq) {
        java.util.Random r = new java.util.Random(3);
        List<int[]> docs = new ArrayList<>();
        for (int d = 0; d < n; d++) {
            int[] doc = new int[seq];
            for (int i = 0; i < seq; i++) doc[i] = (d + i) % (vocab - 1);   // a learnable pattern
            docs.add(doc);
        }
        return TokenBlocks.pack(docs, null, vocab - 1, seq, vocab - 1);
    }

    @Test
    void gradientAccumulationOfTwoMicroBatchesEqualsOneBatchOfTheirUnion() {
        // two micro-batches of 2 vs one batch of 4, no dropout: the accumulated gradients (read by a hook before
        // clipping and the optimizer, which would normalise a wrong scale away) and the first update must agree
        List<double[]> results = new ArrayList<>();
        List<double[]> grads = new ArrayList<>();
        for (int[] bs : new int[][]{{4, 1}, {2, 2}}) {
            TransformerLM m = TransformerLM.randomInit(TinyModels.gpt2(), 1, org.nd4j.linalg.api.buffer.DataType.DOUBLE);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("c_attn")), 2);
            AdamW opt = new AdamW(ParamGroup.byTag(a.trainableParameters(), 0.0), 1e-2);
            TrainingOptions o = TrainingOptions.defaults(1).withBatch(bs[0], bs[1]).withWarmup(0, "constant").withMaxGradNorm(0);
            io.sparklora.adapters.TrainingHooks capture = new io.sparklora.adapters.TrainingHooks() {
                @Override public void afterBackward(long step) {
                    grads.add(a.trainableParameters().stream().flatMapToDouble(p -> java.util.Arrays.stream(p.grad().dup().data().asDouble())).toArray());
                }
            };
            Trainer t = new Trainer(m, opt, capture, o);
            // full blocks only: every micro-batch then has the same number of targets, so the mean of the
            // micro-batch means is the mean over the union
            TokenBlocks data = new TokenBlocks(6);
            java.util.Random r = new java.util.Random(4);
            for (int i = 0; i < 8; i++) {
                int[] block = new int[7];
                for (int j = 0; j < 7; j++) block[j] = r.nextInt(11);
                boolean[] mask = new boolean[7];
                java.util.Arrays.fill(mask, true);
                data.add(block, mask);
            }
            // both orders see the same 4 blocks: the order's first 4 indices
            t.step(data, new BatchOrder(data.size(), 9));
            double[] flat = a.trainableParameters().stream().flatMapToDouble(p -> java.util.Arrays.stream(p.value().dup().data().asDouble())).toArray();
            results.add(flat);
        }
        assertEquals(2, grads.size());
        assertTrue(java.util.Arrays.stream(grads.get(0)).map(Math::abs).max().orElse(0) > 1e-6, "a gradient to compare");
        assertArrayEquals(grads.get(0), grads.get(1), 1e-12, "the accumulated gradient is the mean over the union, scale included");
        assertArrayEquals(results.get(0), results.get(1), 1e-10);
    }

    @Test
    void lossFallsAndRunsAreReproducible() {
        double[] last = new double[2];
        for (int run = 0; run < 2; run++) {
            TransformerLM m = TransformerLM.randomInit(TinyModels.llama(), 4);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(4, 8, List.of("q_proj", "v_proj", "down_proj")).withDropout(0.1), 5);
            AdamW opt = new AdamW(ParamGroup.byTag(a.trainableParameters(), 0.0), 1e-1);
            List<Trainer.StepStats> stats = new Trainer(m, opt, TrainingOptions.defaults(40).withBatch(4, 1).withSeed(7))
                    .train(blocks(13, 20, 8), s -> { });
            assertEquals(40, stats.size());
            assertTrue(stats.get(39).loss() < stats.get(0).loss() - 0.05, stats.get(0).loss() + " -> " + stats.get(39).loss());
            last[run] = stats.get(39).loss();
        }
        assertEquals(last[0], last[1], 0.0, "same seed, same run");
    }

    @Test
    void packingKeepsEveryTokenAsATargetOnceAndMasksPadding() {
        List<int[]> docs = List.of(new int[]{1, 2, 3}, new int[]{4, 5});
        List<boolean[]> loss = new ArrayList<>();
        loss.add(new boolean[]{false, true, true});   // first token is a prompt
        loss.add(null);
        TokenBlocks b = TokenBlocks.pack(docs, loss, 9, 3, 0);
        // stream: 1 2 3 9 4 5 9 → blocks of 4 overlapping by one: [1 2 3 9] [9 4 5 9]
        assertEquals(2, b.size());
        assertArrayEquals(new int[]{1, 2, 3, 9}, b.block(0));
        assertArrayEquals(new int[]{9, 4, 5, 9}, b.block(1));
        assertArrayEquals(new boolean[]{false, true, true, true}, b.mask(0));
        var batch = b.batch(new int[]{0, 1});
        assertEquals(6, batch.targets().gte(0).castTo(org.nd4j.linalg.api.buffer.DataType.INT).sumNumber().intValue());
    }
}
