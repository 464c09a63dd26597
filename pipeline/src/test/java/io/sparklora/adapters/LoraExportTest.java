package io.sparklora.adapters;

import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code export --to lora}: any method's adapter as a plain LoRA by truncated SVD, exact where ΔW's rank allows. */
class LoraExportTest {

    private static AttachedAdapter trained(TransformerLM m, AdapterConfig c) {
        AttachedAdapter a = AttachedAdapter.attach(m, "default", c, 3);
        long seed = 40;
        for (Parameter p : a.trainableParameters()) {
            INDArray noise = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed++), p.value().shape()).castTo(p.value().dataType());
            if (p.group().equals("lora_magnitude_vector")) p.value().muli(noise.muli(0.2).addi(1.0));
            else p.value().assign(noise.muli(0.3));
        }
        return a;
    }

    /** Methods whose ΔW has rank ≤ R export exactly, in both layouts, and the saved LoRA loads back to the same logits. */
    @Test
    void exportIsExactWhereTheRankAllows(@TempDir Path tmp) {
        for (ModelConfig cfg : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            List<String> targets = cfg.architecture() == io.sparklora.model.Architecture.GPT2 ? List.of("c_attn", "c_fc") : List.of("q_proj", "gate_proj");
            // LoRA r = 2 at R = 2; LoHa r = 2 (rank ≤ 4) at R = 4; DoRA at full rank (its ΔW is not low-rank)
            Object[][] cases = {{AdapterConfig.lora(2, 4, targets), 2}, {AdapterConfig.of("loha", 2, 4, targets), 4},
                    {AdapterConfig.of("dora", 2, 4, targets), 8}, {AdapterConfig.of("lokr", 2, 4, targets), 8},
                    // GLoRA at full rank: on GPT-2 its b' goes out as the layers' biases (bias: lora_only); Llama's layers have
                    // none, so there it exports only without the bias terms
                    {cfg.architecture() == io.sparklora.model.Architecture.GPT2 ? AdapterConfig.of("glora", 2, 1, targets)
                            : AdapterConfig.of("glora", 2, 1, targets).withOption("config_C", "none").withOption("config_D_E", "none"), 8}};
            for (Object[] c : cases) {
                TransformerLM m = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
                AttachedAdapter a = trained(m, (AdapterConfig) c[0]);
                TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
                INDArray expected = m.logits(batch).dup();
                LoraExport.Result r = LoraExport.toLora(a, (Integer) c[1]);
                String what = cfg.architecture() + " " + ((AdapterConfig) c[0]).method();
                assertTrue(r.maxRelativeError() < 1e-6, what + ": " + r.errors());
                assertEquals("lora", r.lora().config().method());
                assertEquals(0.0, expected.sub(m.logits(batch)).amaxNumber().doubleValue(), 1e-8, what + ": the LoRA's logits");
                Path dir = tmp.resolve(what.replace(' ', '-'));
                PeftAdapterFormat.save(r.lora(), dir, "tiny");
                TransformerLM fresh = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
                PeftAdapterFormat.load(fresh, dir, "default");
                assertEquals(0.0, expected.sub(fresh.logits(batch)).amaxNumber().doubleValue(), 1e-5, what + ": saved and loaded (float32 file)");
            }
        }
    }

    /** A plain LoRA cannot give a bias-free layer a bias: GLoRA's E and C terms on Llama are refused, naming the layer. */
    @Test
    void aBiasOnABiasFreeLayerIsRefusedAndTheSourceIsLeftAsItWas() {
        TransformerLM m = TransformerLM.randomInit(TinyModels.llama(), 5, DataType.DOUBLE);
        AttachedAdapter a = trained(m, AdapterConfig.of("glora", 2, 1, List.of("q_proj")));
        TokenBatch batch = TinyModels.batch(TinyModels.llama(), 2, 5, 1);
        INDArray expected = m.logits(batch).dup();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraExport.toLora(a, 8));
        assertTrue(e.getMessage().contains("model.layers.0.self_attn.q_proj") && e.getMessage().contains("spark-lora merge"), e.getMessage());
        assertNull(m.linears().get("model.layers.0.self_attn.q_proj").bias(), "the merge's bias is gone again");
        assertEquals(0.0, expected.sub(m.logits(batch)).amaxNumber().doubleValue(), 1e-12, "the source adapter still computes the same");
    }

    /** Below ΔW's rank, the reported error is the singular values' tail, and the logits move. */
    @Test
    void truncationReportsTheTailOfTheSingularValues() {
        ModelConfig cfg = TinyModels.llama();
        TransformerLM m = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
        AttachedAdapter a = trained(m, AdapterConfig.of("loha", 2, 4, List.of("q_proj")));
        INDArray delta = a.layers().get("model.layers.0.self_attn.q_proj").deltaWeight();    // nn.Linear: [out, in]
        INDArray s = Nd4j.create(DataType.DOUBLE, 8);
        Nd4j.getBlasWrapper().lapack().gesvd(delta.dup('f'), s, null, null);
        double[] sv = s.toDoubleVector();
        double total = 0, tail = 0;
        for (int i = 0; i < sv.length; i++) { total += sv[i] * sv[i]; if (i >= 1) tail += sv[i] * sv[i]; }
        LoraExport.Result r = LoraExport.toLora(a, 1);
        LoraExport.LayerError e = r.errors().get(0);
        assertEquals(Math.sqrt(tail / total), e.relativeError(), 1e-9);
        assertTrue(e.relativeError() > 0.01 && e.numericalRank() > 1 && e.numericalRank() <= 4, e.toString());
        assertThrows(IllegalArgumentException.class, () -> LoraExport.toLora(trained(TransformerLM.randomInit(cfg, 5, DataType.DOUBLE),
                AdapterConfig.lora(2, 4, List.of("q_proj"))), 9), "rank above the layer's dimensions");
    }
}
