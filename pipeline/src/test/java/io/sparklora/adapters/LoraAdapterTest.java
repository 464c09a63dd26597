package io.sparklora.adapters;

import io.sparklora.adapters.lora.LoraAdapter;

import io.sparklora.model.*;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class LoraAdapterTest {

    private static TransformerLM floatModel(ModelConfig c, long seed) {
        return TransformerLM.randomInit(c, seed, DataType.FLOAT);
    }

    private static void randomizeB(AttachedAdapter a, long seed) {
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (Adapter ad : a.layers().values()) {
            LoraAdapter l = (LoraAdapter) ad;
            l.loraB().value().assign(Nd4j.randn(rng, l.loraB().value().shape()).muli(0.3));
        }
    }

    private static Map<String, INDArray> snapshot(TransformerLM m) {
        Map<String, INDArray> s = new LinkedHashMap<>();
        m.stateDict().forEach((k, v) -> s.put(k, v.dup()));
        return s;
    }

    @Test
    void gpt2SmallParameterReportMatchesKnownCounts() {
        ModelConfig gpt2Small = ModelConfig.gpt2(50257, 768, 12, 12, 1024);
        assertEquals(124_439_808L, TransformerLM.parameterCount(gpt2Small));
        ParameterReport r = ParameterCounter.report(gpt2Small, AdapterConfig.lora(8, 16, List.of("c_attn")));
        assertEquals(294_912L, r.trainable());
        assertEquals(124_734_720L, r.all());
        assertEquals("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364", r.toString());
    }

    @Test
    void counterAgreesWithBuiltAdaptersForBothFamilies() {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            for (String bias : AdapterConfig.BIAS_MODES) {
                List<String> targets = List.of("re:.*(attn|mlp).*");
                AdapterConfig cfg = AdapterConfig.lora(2, 4, targets).withBias(bias);
                TransformerLM m = floatModel(c, 1);
                AttachedAdapter a = AttachedAdapter.attach(m, "default", cfg, 1);
                ParameterReport r = ParameterCounter.report(c, cfg);
                assertEquals(a.trainableParameterCount(), r.trainable(), c.architecture() + " bias=" + bias);
                long adapterOnly = a.layers().values().stream().flatMap(x -> x.parameters().stream()).mapToLong(Parameter::size).sum();
                assertEquals(m.baseParameterCount() + adapterOnly, r.all());
                assertEquals(r, a.report(), "the built adapter reports what the config-only counter predicts");
            }
        }
    }

    @Test
    void freshAdapterLeavesOutputUnchangedAndDefaultTargetsFollowPeft() {
        TransformerLM m = floatModel(TinyModels.llama(), 2);
        TokenBatch b = TinyModels.batch(TinyModels.llama(), 2, 6, 3);
        INDArray before = m.logits(b).dup();
        AttachedAdapter a = AttachedAdapter.attach(m, "default",
                AdapterConfig.lora(4, 8, TargetMatcher.defaultTargets(Architecture.LLAMA)), 5);
        assertEquals(List.of("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"), List.copyOf(a.layers().keySet()));
        assertEquals(before, m.logits(b), "B = 0 at init: the adapted model starts as the base model");
    }

    @Test
    void mergeEqualsUnmergedForwardAndUnmergeRestoresBase() {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            TransformerLM m = floatModel(c, 3);
            Map<String, INDArray> base = snapshot(m);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("re:.*")), 7);
            randomizeB(a, 8);
            TokenBatch b = TinyModels.batch(c, 2, 6, 4);
            INDArray unmerged = m.logits(b).dup();
            a.merge();
            INDArray merged = m.logits(b).dup();
            assertTrue(unmerged.equalsWithEps(merged, 1e-4), "merged forward equals adapter forward");
            assertFalse(m.logits(b).equalsWithEps(logitsOfBase(c, base, b), 1e-3), "the adapter changes the output");
            a.unmerge();
            for (var e : base.entrySet()) {
                assertTrue(e.getValue().equalsWithEps(m.stateDict().get(e.getKey()), 1e-6), e.getKey() + " restored");
            }
            assertTrue(unmerged.equalsWithEps(m.logits(b), 1e-5));
        }
    }

    private static INDArray logitsOfBase(ModelConfig c, Map<String, INDArray> base, TokenBatch b) {
        return TransformerLM.fromWeights(c, base).logits(b);
    }

    @Test
    void taskSwitchingBetweenTwoNamedAdapters() {
        ModelConfig c = TinyModels.gpt2();
        TransformerLM m = floatModel(c, 4);
        TokenBatch b = TinyModels.batch(c, 2, 6, 5);
        INDArray base = m.logits(b).dup();
        AttachedAdapter first = AttachedAdapter.attach(m, "first", AdapterConfig.lora(2, 4, List.of("c_attn")), 1);
        randomizeB(first, 11);
        AttachedAdapter second = AttachedAdapter.attach(m, "second", AdapterConfig.lora(3, 3, List.of("c_attn", "c_fc")), 2);
        randomizeB(second, 12);
        first.activate();
        INDArray withFirst = m.logits(b).dup();
        second.activate();
        INDArray withSecond = m.logits(b).dup();
        assertFalse(withFirst.equalsWithEps(withSecond, 1e-3));
        // merged task switching: merge first, then swap it for second
        first.activate();
        first.merge();
        assertTrue(withFirst.equalsWithEps(m.logits(b), 1e-4));
        first.unmerge();
        second.activate();
        second.merge();
        assertTrue(withSecond.equalsWithEps(m.logits(b), 1e-4));
        second.unmerge();
        m.linears().values().forEach(l -> l.setActive(List.of()));
        assertTrue(base.equalsWithEps(m.logits(b), 1e-5));
    }

    @Test
    void trainingChangesOnlyTheAdapterAndBaseStaysBitForBit() {
        ModelConfig c = TinyModels.llama();
        TransformerLM m = floatModel(c, 5);
        Map<String, INDArray> base = snapshot(m);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("q_proj", "v_proj", "down_proj")).withDropout(0.1), 1);
        AdamW opt = new AdamW(ParamGroup.byTag(a.trainableParameters(), 0.01), 5e-2);
        TokenBatch b = TinyModels.batch(c, 2, 6, 6);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(3);
        double first = Double.NaN, last = Double.NaN;
        for (int step = 0; step < 30; step++) {
            double loss = m.forwardBackward(b, ForwardContext.training(rng), 1.0).meanLoss();
            if (step == 0) first = loss;
            last = loss;
            opt.step();
            opt.zeroGrad();
        }
        assertTrue(last < first - 0.05, "loss falls when the adapter trains: " + first + " -> " + last);
        for (var e : base.entrySet()) {
            assertEquals(e.getValue(), m.stateDict().get(e.getKey()), e.getKey() + " must be bit-for-bit unchanged");
            assertNull(m.parameters().get(e.getKey()).grad(), "frozen " + e.getKey() + " has no gradient buffer");
        }
        assertEquals(Math.toIntExact(a.trainableParameterCount()), opt.trainableParameters().stream().mapToInt(p -> (int) p.size()).sum());
    }

    @Test
    void biasModesDecideWhichBiasesTrain() {
        ModelConfig c = TinyModels.gpt2();
        TransformerLM m = floatModel(c, 6);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("c_attn")).withBias("lora_only"), 1);
        assertEquals(List.of("transformer.h.0.attn.c_attn.bias", "transformer.h.1.attn.c_attn.bias"),
                a.trainableBiases().stream().map(Parameter::name).toList());
        TransformerLM m2 = floatModel(c, 6);
        AttachedAdapter all = AttachedAdapter.attach(m2, "default", AdapterConfig.lora(2, 4, List.of("c_attn")).withBias("all"), 1);
        assertEquals(m2.parameters().values().stream().filter(p -> p.name().endsWith(".bias")).count(), all.trainableBiases().size());
    }

    @Test
    void rsLoraScalesByRootRank() {
        AdapterConfig plain = AdapterConfig.lora(16, 32, List.of("c_attn"));
        assertEquals(2.0, plain.scale(), 0);
        assertEquals(8.0, plain.withRslora(true).scale(), 1e-12);
    }

    @Test
    void kaimingAndGaussianInitFollowPeft() {
        TransformerLM m = floatModel(ModelConfig.gpt2(11, 64, 1, 2, 8), 1);
        AttachedAdapter k = AttachedAdapter.attach(m, "k", AdapterConfig.lora(8, 8, List.of("c_fc")), 1);
        LoraAdapter lk = (LoraAdapter) k.layers().values().iterator().next();
        double bound = 1 / Math.sqrt(64);
        assertTrue(lk.loraA().value().amaxNumber().doubleValue() <= bound);
        assertTrue(lk.loraA().value().amaxNumber().doubleValue() > 0.9 * bound);
        assertEquals(0.0, lk.loraB().value().amaxNumber().doubleValue());
        AttachedAdapter g = AttachedAdapter.attach(m, "g", AdapterConfig.lora(8, 8, List.of("c_fc")).withInit("gaussian"), 1);
        LoraAdapter lg = (LoraAdapter) g.layers().values().iterator().next();
        assertEquals(1.0 / 8, lg.loraA().value().stdNumber().doubleValue(), 0.02);
    }

    @Test
    void badConfigurationsFailWithClearMessages() {
        TransformerLM m = floatModel(TinyModels.gpt2(), 1);
        var e1 = assertThrows(IllegalArgumentException.class, () -> AttachedAdapter.attach(m, "x", AdapterConfig.lora(2, 4, List.of("q_proj")), 1));
        assertTrue(e1.getMessage().contains("q_proj") && e1.getMessage().contains("c_attn"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> AttachedAdapter.attach(m, "x", AdapterConfig.lora(9, 4, List.of("c_attn")), 1));
        assertTrue(e2.getMessage().contains("r=9") && e2.getMessage().contains("transformer.h.0.attn.c_attn"), e2.getMessage());
        assertTrue(m.linears().values().stream().allMatch(l -> l.adapters().isEmpty()), "a rejected adapter leaves the model untouched");
        assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=lora,rank=8", Architecture.GPT2));
        assertThrows(IllegalArgumentException.class, () -> AdapterSpecs.parse("type=dora2,r=8", Architecture.GPT2));
    }

    @Test
    void inlineSpecParses() {
        AdapterConfig c = AdapterSpecs.parse("type=lora,r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05,rslora=true", Architecture.LLAMA);
        assertEquals(8, c.r());
        assertEquals(16, c.alpha());
        assertEquals(List.of("q_proj", "v_proj"), c.targetModules());
        assertEquals(0.05, c.dropout());
        assertTrue(c.rslora());
        assertEquals(List.of("c_attn"), AdapterSpecs.parse("r=4", Architecture.GPT2).targetModules());
    }

    @Test
    void peftRoundTripReproducesLogitsExactly(@TempDir Path tmp) throws Exception {
        for (ModelConfig c : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            TransformerLM m = floatModel(c, 9);
            AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, TargetMatcher.defaultTargets(c.architecture())).withBias("lora_only"), 3);
            randomizeB(a, 4);
            if (!a.trainableBiases().isEmpty()) a.trainableBiases().get(0).value().addi(0.5);
            Path dir = tmp.resolve(c.architecture().name());
            PeftAdapterFormat.save(a, dir, "tiny");
            assertTrue(Files.exists(dir.resolve("adapter_config.json")) && Files.exists(dir.resolve("adapter_model.safetensors")));
            String json = Files.readString(dir.resolve("adapter_config.json"));
            assertTrue(json.contains("\"peft_type\" : \"LORA\"") && json.contains("\"lora_alpha\" : 4.0"), json);
            TokenBatch b = TinyModels.batch(c, 2, 5, 1);
            INDArray expected = m.logits(b).dup();
            TransformerLM fresh = floatModel(c, 9);
            AttachedAdapter loaded = PeftAdapterFormat.load(fresh, dir, "default");
            assertEquals(expected, fresh.logits(b));
            assertEquals(a.config(), loaded.config());
            // PEFT's names
            var names = new io.sparklora.checkpoint.SafetensorsReader[]{io.sparklora.checkpoint.SafetensorsReader.open(dir.resolve("adapter_model.safetensors"))};
            try (var r = names[0]) {
                String first = c.architecture() == Architecture.GPT2 ? "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"
                        : "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
                assertTrue(r.contains(first), r.names().toString());
            }
        }
    }

    @Test
    void adapterWithWrongShapesIsRejectedAndNotAttached(@TempDir Path tmp) {
        ModelConfig small = TinyModels.gpt2();
        TransformerLM m = floatModel(small, 1);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("c_attn")), 1);
        PeftAdapterFormat.save(a, tmp.resolve("a"), "tiny");
        TransformerLM wider = floatModel(ModelConfig.gpt2(11, 12, 2, 2, 16), 1);
        var e = assertThrows(IllegalArgumentException.class, () -> PeftAdapterFormat.load(wider, tmp.resolve("a"), "default"));
        assertTrue(e.getMessage().contains("lora_A.weight") && e.getMessage().contains("shape"), e.getMessage());
        assertTrue(wider.linears().values().stream().allMatch(l -> l.adapters().isEmpty()));
    }
}
