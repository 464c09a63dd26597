package io.sparklora.adapters.deltalora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.LoraExport;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Delta-LoRA's telescoped form against the paper's rule applied literally: a plain LoRA whose frozen weight is
 * updated in place after every step past the warm-up by λ·(B_{t+1}A_{t+1} − B_tA_t). Same batches, same optimizer:
 * the same A and B at every step, the same effective weights W_T + s·B_TA_T = W_0 + (s+λ)·B_TA_T − λ·B_KA_K, the
 * same logits; and the result exports exactly as a LoRA of rank 2r.
 */
class DeltaLoraTest {
    private static final List<String> TARGETS = List.of("q_proj", "v_proj");
    private static final int STEPS = 9, WARMUP = 3;
    private static final double LAMBDA = 0.5;

    @Test
    void telescopedFormEqualsTheExplicitInPlaceUpdates() {
        ModelConfig cfg = TinyModels.llama();
        TransformerLM tele = TransformerLM.randomInit(cfg, 11, DataType.DOUBLE), expl = TransformerLM.randomInit(cfg, 11, DataType.DOUBLE);
        AttachedAdapter d = AttachedAdapter.attach(tele, "default", AdapterConfig.of("delta_lora", 2, 4, TARGETS)
                .withOption("delta_lambda", Double.toString(LAMBDA)).withOption("delta_warmup", Integer.toString(WARMUP)), 3);
        AttachedAdapter l = AttachedAdapter.attach(expl, "default", AdapterConfig.lora(2, 4, TARGETS), 3);
        AdamW od = new AdamW(ParamGroup.byTag(d.trainableParameters(), 0), 1e-2), ol = new AdamW(ParamGroup.byTag(l.trainableParameters(), 0), 1e-2);
        Map<String, Adapter> lLayers = l.layers();
        for (int t = 0; t < STEPS; t++) {
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 100 + t);
            d.trainableParameters().forEach(Parameter::zeroGrad);
            l.trainableParameters().forEach(Parameter::zeroGrad);
            tele.forwardBackward(batch, ForwardContext.inference(), 1.0);
            expl.forwardBackward(batch, ForwardContext.inference(), 1.0);
            // the explicit rule: BA before the step, then the step, then W += λ·(B'A' − BA) once past the warm-up
            Map<String, INDArray> before = new java.util.LinkedHashMap<>();
            for (var e : lLayers.entrySet()) before.put(e.getKey(), product((LoraAdapter) e.getValue()));
            od.step();
            ol.step();
            d.hooks().afterStep(t);
            if (t >= WARMUP) {
                for (var e : lLayers.entrySet()) {
                    Linear layer = expl.linears().get(e.getKey());
                    layer.baseWeight().mutableDense().addi(product((LoraAdapter) e.getValue()).subi(before.get(e.getKey())).muli(LAMBDA));
                }
            }
            for (int i = 0; i < d.trainableParameters().size(); i++) {
                INDArray a = d.trainableParameters().get(i).value(), b = l.trainableParameters().get(i).value();
                assertEquals(0.0, a.sub(b).amaxNumber().doubleValue(), 1e-12, "step " + t + ": " + d.trainableParameters().get(i).name());
            }
        }
        for (DeltaLoraAdapter a : d.layers().values().stream().map(x -> (DeltaLoraAdapter) x).toList()) assertTrue(a.active());
        // effective weights: W_T + s·B_TA_T (explicit) against W_0 + ΔW_T (telescoped), in the Linear layout [out, in]
        for (String m : d.layers().keySet()) {
            INDArray explicit = expl.linears().get(m).weight().value().add(((LoraAdapter) lLayers.get(m)).deltaWeight());
            INDArray telescoped = tele.linears().get(m).weight().value().add(d.layers().get(m).deltaWeight());
            assertEquals(0.0, explicit.sub(telescoped).amaxNumber().doubleValue(), 1e-12, m);
        }
        TokenBatch probe = TinyModels.batch(cfg, 2, 6, 999);
        INDArray logits = tele.logits(probe).dup();
        assertEquals(0.0, logits.sub(expl.logits(probe)).amaxNumber().doubleValue(), 1e-10, "the same logits");
        // the base tensors of the telescoped model never changed: W_0 is shared and read-only
        TransformerLM fresh = TransformerLM.randomInit(cfg, 11, DataType.DOUBLE);
        for (String m : d.layers().keySet()) assertEquals(fresh.linears().get(m).weight().value(), tele.linears().get(m).weight().value(), m);

        // exported as a LoRA of rank 2r: exact
        LoraExport.Result r = LoraExport.toLora(d, 4);
        assertTrue(r.maxRelativeError() < 1e-9, r.errors().toString());
        assertEquals(0.0, logits.sub(tele.logits(probe)).amaxNumber().doubleValue(), 1e-9);
    }

    private static INDArray product(LoraAdapter a) {
        return a.deltaWeight().dup().divi(a.scale());      // B·A in the layer's layout (Llama: [out, in])
    }
}
