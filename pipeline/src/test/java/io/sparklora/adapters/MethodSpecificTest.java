package io.sparklora.adapters;

import io.sparklora.adapters.dora.DoraAdapter;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.vera.VeraAdapter;
import io.sparklora.model.Architecture;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.train.Optimizers;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** What each method promises beyond the shared contract ({@link AdapterContractTest}). */
class MethodSpecificTest {

    private static Map<String, INDArray> snapshot(List<Parameter> ps) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (Parameter p : ps) m.put(p.name(), p.value().dup());
        return m;
    }

    @Test
    void loraPlusMovesBLambdaTimesAsFarAsAWithIdenticalGradients() {
        for (String spec : List.of("type=loraplus,r=2,alpha=4,targets=c_attn,loraplus_lr_ratio=8", "type=lora,r=2,alpha=4,targets=c_attn,loraplus_lr_ratio=8",
                "type=dora,r=2,alpha=4,targets=c_attn,loraplus_lr_ratio=8")) {
            TransformerLM m = TinyModels.model(TinyModels.gpt2(), 3);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterSpecs.parse(spec, Architecture.GPT2), 1);
            TrainingOptions o = new TrainingOptions(1, 1, 1, 1e-3, 0.0, 0, "constant", 0.0, 0.0, 1);
            AdamW opt = Optimizers.forAdapter(a, o);
            Map<String, INDArray> before = snapshot(a.trainableParameters());
            for (Parameter p : a.trainableParameters()) p.grad().assign(0.5);     // the same gradient everywhere
            opt.step(1.0);
            for (Parameter p : a.trainableParameters()) {
                double moved = p.value().sub(before.get(p.name())).amaxNumber().doubleValue();
                double expected = p.group().equals("lora_A") ? 1e-3 : 8e-3;      // B and 1-D tensors (DoRA's m) at λ·lr
                assertEquals(expected, moved, expected * 1e-4, spec + ": " + p.name() + " (" + p.group() + ")");
            }
        }
        AdapterConfig plus = AdapterSpecs.parse("type=loraplus,targets=c_attn", Architecture.GPT2);
        assertEquals(16.0, plus.doubleOption("loraplus_lr_ratio"), "LoRA+'s λ defaults to 16");
        assertEquals(0.0, AdapterSpecs.parse("type=lora,targets=c_attn", Architecture.GPT2).doubleOption("loraplus_lr_ratio"), "plain LoRA: off");
    }

    @Test
    void loraPlusPutsTrainedBiasesAtLambdaLrWithoutWeightDecay() {
        TransformerLM m = TinyModels.model(TinyModels.gpt2(), 3);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterSpecs.parse("type=loraplus,r=2,targets=c_attn,bias=lora_only", Architecture.GPT2), 1);
        var groups = a.optimizerGroups(0.1);
        var names = groups.stream().map(g -> g.name() + ":" + g.params().size() + ":" + g.lrMultiplier() + ":" + g.weightDecay()).toList();
        assertEquals(List.of("loraplus_A:2:1.0:0.1", "loraplus_B:2:16.0:0.1", "loraplus_B_no_decay:2:16.0:0.0"), names);
    }

    @Test
    void loraFaKeepsABitForBitAndTrainsOnlyB() {
        TransformerLM m = TransformerLM.randomInit(TinyModels.gpt2(), 9, DataType.FLOAT);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("lora_fa", 2, 4, List.of("c_attn", "c_fc")).withDropout(0.1), 4);
        Map<String, INDArray> aBefore = new LinkedHashMap<>(), bBefore = new LinkedHashMap<>();
        for (Adapter l : a.layers().values()) {
            LoraAdapter lora = (LoraAdapter) l;
            assertFalse(lora.loraA().trainable());
            aBefore.put(lora.loraA().name(), lora.loraA().value().dup());
            bBefore.put(lora.loraB().name(), lora.loraB().value().dup());
        }
        assertTrue(a.trainableParameters().stream().allMatch(p -> p.group().equals("lora_B")));
        TokenBlocks data = AdapterContractTest.ruleBlocks(16, 8, TinyModels.gpt2().vocabSize(), 1);
        Trainer.forAdapter(a, new TrainingOptions(10, 4, 1, 1e-2, 0.01, 0, "constant", 0.0, 1.0, 3)).train(data, s -> {});
        for (Adapter l : a.layers().values()) {
            LoraAdapter lora = (LoraAdapter) l;
            assertEquals(aBefore.get(lora.loraA().name()), lora.loraA().value(), "A changed: " + lora.loraA().name());
            assertTrue(lora.loraB().value().sub(bBefore.get(lora.loraB().name())).amaxNumber().doubleValue() > 1e-4, "B trained");
        }
    }

    /** Bytes kept for backward by one adapted layer: its input if it keeps it, plus what each adapter keeps beyond that. */
    static long bytesKept(Linear.Cache c) {
        long x = c.x() == null ? 0 : c.x().length() * c.x().dataType().width();
        for (Adapter.Activation act : c.adapterActivations()) x += act.bytesKept();
        return x;
    }

    @Test
    void loraFaKeepsAxNotXForBackward() {
        int n = 64, in = 48, out = 40, r = 4;
        for (String method : List.of("lora", "lora_fa")) {
            Parameter w = new Parameter("w", Nd4j.rand(DataType.FLOAT, in, out), false, "base");
            Linear layer = new Linear("lin", w, null, false);
            AdapterConfig c = AdapterConfig.of(method, r, 8, List.of("lin"));
            layer.attach(method.equals("lora") ? new LoraAdapter("default", layer, c, io.sparklora.model.Seeds.rng(1))
                    : new io.sparklora.adapters.lorafa.LoraFaAdapter("default", layer, c, io.sparklora.model.Seeds.rng(1)));
            Linear.Cache cache = layer.forward(Nd4j.rand(DataType.FLOAT, n, in), ForwardContext.training(io.sparklora.model.Seeds.rng(2)));
            long expected = method.equals("lora") ? 4L * n * (in + r) : 4L * n * r;
            assertEquals(expected, bytesKept(cache), method);
            assertEquals(method.equals("lora"), cache.x() != null, method + ": whether the layer keeps its input");
        }
    }

    @Test
    void doraMagnitudeStartsAtTheRowNormsOfW0InEitherLayout() {
        for (ModelConfig cfg : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            TransformerLM m = TinyModels.model(cfg, 2);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("dora", 2, 4, AdapterContractTest.targets(cfg.architecture())), 1);
            for (Map.Entry<String, Adapter> e : a.layers().entrySet()) {
                Linear l = m.linears().get(e.getKey());
                INDArray w = l.weight().value();
                INDArray logical = l.transposed() ? w : w.transpose();      // [out, in]
                INDArray mag = ((DoraAdapter) e.getValue()).magnitude().value();
                assertArrayEquals(new long[]{l.outFeatures()}, mag.shape());
                for (int j = 0; j < l.outFeatures(); j++) {
                    assertEquals(logical.getRow(j).norm2Number().doubleValue(), mag.getDouble(j), 1e-12, e.getKey() + " row " + j);
                }
            }
        }
    }

    @Test
    void veraSharesOneFrozenPairAcrossLayersAndSlicesIt() {
        TransformerLM m = TinyModels.model(TinyModels.gpt2(), 2);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("vera", 4, 1, List.of("c_attn", "c_fc", "mlp.c_proj")), 1);
        Parameter pa = a.shared().get("vera_A"), pb = a.shared().get("vera_B");
        assertArrayEquals(new long[]{4, 32}, pa.value().shape(), "vera_A [r, max in]: mlp.c_proj reads 32");
        assertArrayEquals(new long[]{32, 4}, pb.value().shape(), "vera_B [max out, r]: c_fc writes 32");
        assertFalse(pa.trainable() || pb.trainable());
        for (Adapter l : a.layers().values()) {
            VeraAdapter v = (VeraAdapter) l;
            assertSame(pa, v.projections().a(), "every layer holds the same A");
            assertSame(pb, v.projections().b(), "every layer holds the same B");
            assertEquals(0.1, v.lambdaD().value().getDouble(0), 1e-12, "λ_d starts at d_initial");
            assertEquals(0.0, v.lambdaB().value().amaxNumber().doubleValue(), 0.0, "λ_b starts at 0");
        }
        assertEquals(2, a.adapterTensors().stream().filter(p -> p.group().startsWith("vera_") && !p.trainable()).count(), "the pair is held once");
        // the pair comes from the key alone, so every executor makes the same one; another key, another pair
        AttachedAdapter again = AttachedAdapter.attach(TinyModels.model(TinyModels.gpt2(), 5), "default", a.config(), 99);
        assertEquals(pa.value(), again.shared().get("vera_A").value());
        AttachedAdapter other = AttachedAdapter.attach(TinyModels.model(TinyModels.gpt2(), 5), "default", a.config().withOption("projection_prng_key", "7"), 1);
        assertNotEquals(pa.value(), other.shared().get("vera_A").value());
    }

    @Test
    void specsSelectEveryMethodAndNameTheKnownKeys() {
        assertEquals("dora", AdapterSpecs.parse("type=lora,use_dora=true,targets=c_attn", Architecture.GPT2).method());
        assertEquals("lora_fa", AdapterSpecs.parse("lora_fa=true,targets=c_attn", Architecture.GPT2).method());
        AdapterConfig v = AdapterSpecs.parse("type=vera,r=16,d_initial=0.2,projection_prng_key=3,targets=c_attn", Architecture.GPT2);
        assertEquals(0.2, v.doubleOption("d_initial"));
        assertEquals(3, v.longOption("projection_prng_key"));
        var unknownType = assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=lorax,r=8", Architecture.GPT2));
        assertTrue(unknownType.getMessage().contains("lora, loraplus, lora_fa, dora, vera"), unknownType.getMessage());
        var wrongKey = assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=vera,d_inital=0.2", Architecture.GPT2));
        assertTrue(wrongKey.getMessage().contains("'d_inital'") && wrongKey.getMessage().contains("d_initial"), wrongKey.getMessage());
        var keyOfAnother = assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=lora,d_initial=0.2", Architecture.GPT2));
        assertTrue(keyOfAnother.getMessage().contains("for type lora"), keyOfAnother.getMessage());
        var contradiction = assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=vera,use_dora=true", Architecture.GPT2));
        assertTrue(contradiction.getMessage().contains("contradicts"), contradiction.getMessage());
        var rslora = assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=vera,rslora=true", Architecture.GPT2));
        assertTrue(rslora.getMessage().contains("rslora"), rslora.getMessage());
    }

    /** LoHa's ΔW is s·(w1_a·w1_b) ⊙ (w2_a·w2_b), its rank can exceed r, and PEFT's GPT-2 caveat is GPT-2's alone. */
    @Test
    void lohaDeltaIsTheScaledHadamardProductOfTwoLowRankProducts() {
        TransformerLM m = TransformerLM.randomInit(io.sparklora.model.TinyModels.llama(), 3, org.nd4j.linalg.api.buffer.DataType.DOUBLE);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("loha", 2, 6, java.util.List.of("q_proj")), 9);
        for (io.sparklora.model.Parameter p : a.trainableParameters()) {
            p.value().assign(org.nd4j.linalg.factory.Nd4j.randn(org.nd4j.linalg.factory.Nd4j.getRandomFactory().getNewRandomInstance(p.name().hashCode()), p.value().shape()));
        }
        Adapter layer = a.layers().get("model.layers.0.self_attn.q_proj");
        java.util.Map<String, org.nd4j.linalg.api.ndarray.INDArray> t = layer.stateDict();
        org.nd4j.linalg.api.ndarray.INDArray expected = t.get("hada_w1_a").mmul(t.get("hada_w1_b"))
                .mul(t.get("hada_w2_a").mmul(t.get("hada_w2_b"))).muli(6.0 / 2);
        assertEquals(0.0, expected.sub(layer.deltaWeight()).amaxNumber().doubleValue(), 1e-12, "nn.Linear layout: [out, in]");
        // two rank-2 factors: the Hadamard product has rank up to 4 (here 4 of the 8×8 matrix's singular values are non-zero)
        double[] sv = singularValues(expected);
        int rank = 0;
        for (double v : sv) if (v > 1e-9 * sv[0]) rank++;
        assertTrue(rank > 2 && rank <= 4, "rank " + rank);
        assertNull(a.method().peftCaveat(io.sparklora.model.Architecture.LLAMA));
        assertTrue(a.method().peftCaveat(io.sparklora.model.Architecture.GPT2).contains("PEFT cannot load"));
    }

    private static double[] singularValues(org.nd4j.linalg.api.ndarray.INDArray m) {
        org.nd4j.linalg.api.ndarray.INDArray s = org.nd4j.linalg.factory.Nd4j.create(m.dataType(), Math.min(m.rows(), m.columns()));
        org.nd4j.linalg.factory.Nd4j.getBlasWrapper().lapack().gesvd(m.dup(), s, null, null);
        return s.toDoubleVector();
    }
}
