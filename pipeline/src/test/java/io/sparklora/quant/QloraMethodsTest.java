package io.sparklora.quant;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.AdapterMethodsSparkTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every method of the family over an NF4 base (QLoRA is LoRA over one): the same loss and gradients as over the
 * dequantized fp32 base, training that leaves the codes untouched, and a merge that turns the merged layers into
 * full precision.
 */
class QloraMethodsTest {
    static final ModelConfig GPT2 = ModelConfig.gpt2(64, 32, 2, 2, 16);
    @TempDir Path tmp;

    static Stream<AdapterConfig> methods() { return AdapterMethodsSparkTest.methods(); }


    private static TokenBatch batch(ModelConfig c, long seed) { return TinyModels.batch(c, 3, 8, seed); }

    /** The worst relative gap between same-named gradients. */
    private static double gradientGap(List<Parameter> a, List<Parameter> b) {
        double d = 0;
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).name(), b.get(i).name());
            double scale = Math.max(1e-6, a.get(i).grad().amaxNumber().doubleValue());
            d = Math.max(d, a.get(i).grad().sub(b.get(i).grad()).amaxNumber().doubleValue() / scale);
        }
        return d;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    void aMethodOverNf4HasTheGradientsOfTheDequantizedBaseTrainsAndLeavesTheCodes(AdapterConfig a) {
        TransformerLM nf4 = QuantizedCheckpoints.quantize(TransformerLM.randomInit(GPT2, 7), true);
        TransformerLM ref = Nf4ModelTest.dequantized(nf4);
        AttachedAdapter qa = AttachedAdapter.attach(nf4, "default", a, 3);
        AttachedAdapter ra = AttachedAdapter.attach(ref, "default", a, 3);
        qa.trainableParameters().forEach(p -> p.value().addi(0.01));      // B = 0 at init: move off it so every gradient is non-trivial
        ra.trainableParameters().forEach(p -> p.value().addi(0.01));
        TokenBatch b = batch(GPT2, 1);
        double lq = nf4.forwardBackward(b, ForwardContext.inference(), 1.0).meanLoss();
        double lr = ref.forwardBackward(b, ForwardContext.inference(), 1.0).meanLoss();
        assertEquals(lr, lq, 1e-5 * Math.abs(lr), a.method() + ": loss over NF4 vs over the dequantized base");
        double g = gradientGap(ra.trainableParameters(), qa.trainableParameters());
        assertTrue(g < 1e-3, a.method() + ": gradients over NF4 vs the dequantized base differ by " + g);

        Map<String, byte[]> before = new java.util.LinkedHashMap<>();
        nf4.quantizedWeights().forEach((k, v) -> before.put(k, v.packedBytes()));
        for (int step = 0; step < 3; step++) {
            for (Parameter p : qa.trainableParameters()) {
                p.value().subi(p.grad().mul(0.05));
                p.zeroGrad();
            }
            nf4.forwardBackward(b, ForwardContext.inference(), 1.0);
        }
        nf4.quantizedWeights().forEach((k, v) -> assertArrayEquals(before.get(k), v.packedBytes(), a.method() + ": " + k + " changed"));
    }

    @Test
    void mergingOverNf4WritesAFullPrecisionCheckpointOfW0PlusDeltaW() {
        for (String method : List.of("lora", "dora", "vera")) {
            ModelConfig c = TinyModels.llama();
            List<String> targets = TinyModels.allLinearTargets(c);
            AdapterConfig a = method.equals("vera") ? AdapterConfig.of("vera", 4, 1, targets).withOption("d_initial", "0.5")
                    : AdapterConfig.of(method, 2, 4, targets);
            TransformerLM nf4 = QuantizedCheckpoints.quantize(TransformerLM.randomInit(c, 2), true);
            AttachedAdapter ad = AttachedAdapter.attach(nf4, "default", a, 5);
            ad.trainableParameters().forEach(p -> p.value().addi(0.05));
            TokenBatch b = batch(c, 4);
            INDArray adapted = nf4.logits(b).dup();
            ad.merge();
            for (Linear l : nf4.linears().values()) {
                if (l.name().equals("lm_head")) continue;
                assertFalse(l.baseWeight().quantized(), method + ": merged " + l.name() + " is full precision now");
            }
            INDArray merged = nf4.logits(b);
            double d = merged.sub(adapted).amaxNumber().doubleValue() / adapted.amaxNumber().doubleValue();
            assertTrue(d < 1e-5, method + ": merged logits vs adapted differ by " + d);
            ad.detachMerged();
            Path out = tmp.resolve("merged-" + method);
            HfModelDirectory.save(nf4, out, DataType.FLOAT, null);
            TransformerLM back = HfModelDirectory.load(out);
            assertFalse(back.quantizedBase(), "a merged checkpoint is full precision");
            assertFalse(QuantizedCheckpoints.isQuantized(out));
            INDArray reloaded = back.logits(b);
            assertEquals(0.0, reloaded.sub(merged).amaxNumber().doubleValue(), 1e-6, method + ": the saved merge");
        }
    }
}
