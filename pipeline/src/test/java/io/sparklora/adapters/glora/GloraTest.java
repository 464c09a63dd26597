package io.sparklora.adapters.glora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.Architecture;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.ModelConfigException;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * GLoRA against its defining formula computed densely, its merged checkpoint (biases that bias-free Llama layers gain),
 * the PEFT file's general form, and bad settings.
 */
class GloraTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static void perturb(AttachedAdapter a, long seed) {
        for (Parameter p : a.trainableParameters()) {
            p.value().assign(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed++), p.value().shape()).castTo(p.value().dataType()).muli(0.3));
        }
    }

    private static INDArray t(GloraAdapter g, String key) { return g.stateDictOwn().get(key); }

    /** The term of support s read from (Xd, Xu) as PEFT's prepare_path does, as a dense [rows, cols] array. */
    private static INDArray term(GloraStructure.Support s, INDArray xd, INDArray xu, long rows, long cols) {
        return switch (s) {
            case LORA -> xd.mmul(xu);
            case VECTOR -> Nd4j.zeros(xd.dataType(), rows, cols).addiColumnVector(xd.getColumn(0).reshape(rows, 1));
            case CONSTANT -> Nd4j.zeros(xd.dataType(), rows, cols).addi(xd.getDouble(0, 0));
            case NONE -> Nd4j.zeros(xd.dataType(), rows, cols);
        };
    }

    private static INDArray vec(GloraStructure.Support s, INDArray v) {
        return switch (s) {
            case VECTOR -> v.dup();
            case CONSTANT -> Nd4j.zeros(v.dataType(), v.length()).addi(v.getDouble(0));
            default -> Nd4j.zeros(v.dataType(), v.length());
        };
    }

    @Test
    void everyStructureComputesTheGeneralisedFormOnBothLayouts() {
        java.util.Random pick = new java.util.Random(3);
        for (ModelConfig cfg : List.of(TinyModels.gpt2(), TinyModels.llama())) {
            String module = cfg.architecture() == Architecture.GPT2 ? "c_attn" : "q_proj";
            for (int trial = 0; trial < 12; trial++) {
                GloraStructure s = GloraStructure.random(pick);
                TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.DOUBLE);
                AdapterConfig ac = AdapterConfig.of("glora", 3, 1, List.of(module)).withOption(GloraMethod.LAYER_STRUCTURES, module + "=" + s);
                AttachedAdapter a = AttachedAdapter.attach(model, "default", ac, 1);
                perturb(a, 40 + trial);
                Map.Entry<String, io.sparklora.adapters.Adapter> e = a.layers().entrySet().iterator().next();
                GloraAdapter g = (GloraAdapter) e.getValue();
                assertEquals(s, g.structure());
                Linear layer = model.linears().get(e.getKey());
                int in = layer.inFeatures(), out = layer.outFeatures();
                INDArray w0 = layer.transposed() ? layer.weight().value() : layer.weight().value().transpose();   // [out, in]
                INDArray b0 = layer.bias() == null ? Nd4j.zeros(DataType.DOUBLE, out) : layer.bias().value();
                INDArray aT = term(s.a(), t(g, "glora_Ad"), t(g, "glora_Au"), out, in);
                INDArray bT = term(s.b(), t(g, "glora_Bd"), t(g, "glora_Bu"), out, in);
                INDArray cT = term(s.c(), t(g, "glora_Cd"), t(g, "glora_Cu"), in, 1);
                INDArray wPrime = w0.add(w0.mul(aT)).addi(bT);
                INDArray bPrime = b0.add(b0.mul(vec(s.d(), t(g, "glora_D")))).addi(vec(s.e(), t(g, "glora_E"))).addi(w0.mmul(cT).reshape(out));
                INDArray x = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(9), 4, in).castTo(DataType.DOUBLE);
                INDArray expected = x.mmul(wPrime.transpose()).addiRowVector(bPrime);
                INDArray got = layer.forward(x, ForwardContext.inference()).out();
                assertEquals(0.0, got.sub(expected).amaxNumber().doubleValue(), 1e-10, cfg.architecture() + " " + s);
            }
        }
    }

    @Test
    void aMergedLlamaCheckpointGainsTheBiasesAndReloadsWithTheSameLogits(@TempDir Path tmp) {
        ModelConfig cfg = TinyModels.llama();
        TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
        AdapterConfig ac = AdapterConfig.of("glora", 2, 1, List.of("q_proj", "down_proj"));      // C lora, E constant: b' = E + W0·C
        AttachedAdapter a = AttachedAdapter.attach(model, "default", ac, 1);
        perturb(a, 7);
        TokenBatch batch = TinyModels.batch(cfg, 2, 6, 4);
        INDArray adapted = model.logits(batch).dup();
        a.merge();
        a.detachMerged();
        HfModelDirectory.save(model, tmp.resolve("merged"), DataType.FLOAT, null);
        TransformerLM reloaded = HfModelDirectory.load(tmp.resolve("merged"));
        assertTrue(reloaded.config().attentionBias(), "attention_bias written");
        assertTrue(reloaded.config().mlpBias(), "mlp_bias written");
        assertNotNull(reloaded.linears().get("model.layers.0.self_attn.k_proj").bias(), "k_proj gets a (zero) bias too");
        assertEquals(0.0, reloaded.linears().get("model.layers.0.self_attn.k_proj").bias().value().amaxNumber().doubleValue());
        double scale = adapted.amaxNumber().doubleValue();
        assertEquals(0.0, reloaded.logits(batch).sub(adapted).amaxNumber().doubleValue() / scale, 1e-5);
    }

    @Test
    void aFamilyThatCannotHoldTheNewBiasIsRefusedNamingTheLayer(@TempDir Path tmp) {
        ModelConfig cfg = TinyModels.llama().as(Architecture.MISTRAL);
        TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
        AttachedAdapter a = AttachedAdapter.attach(model, "default", AdapterConfig.of("glora", 2, 1, List.of("v_proj")), 1);
        perturb(a, 7);
        a.merge();
        a.detachMerged();
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> HfModelDirectory.save(model, tmp.resolve("m"), DataType.FLOAT, null));
        assertTrue(e.getMessage().contains("model.layers.0.self_attn.v_proj") && e.getMessage().contains("mistral"), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("m")), "nothing half-written");
        // without C and E the merged layers need no bias, and the checkpoint saves
        TransformerLM m2 = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
        AttachedAdapter a2 = AttachedAdapter.attach(m2, "default", AdapterConfig.of("glora", 2, 1, List.of("v_proj"))
                .withOption(GloraMethod.CONFIG_C, "none").withOption(GloraMethod.CONFIG_D_E, "none"), 1);
        perturb(a2, 7);
        a2.merge();
        a2.detachMerged();
        HfModelDirectory.save(m2, tmp.resolve("m2"), DataType.FLOAT, null);
        assertFalse(HfModelDirectory.load(tmp.resolve("m2")).config().attentionBias());
    }

    @Test
    void perLayerStructuresAreSavedInTheGeneralFormPeftCanStateAndReadBackExactlyWithoutTheSidecar(@TempDir Path tmp) throws Exception {
        ModelConfig cfg = TinyModels.llama();
        TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
        AdapterConfig ac = AdapterConfig.of("glora", 2, 1, List.of("q_proj", "v_proj"))
                .withOption(GloraMethod.LAYER_STRUCTURES, "q_proj=vector,constant,vector,constant,none; v_proj=none,vector,none,vector,constant");
        AttachedAdapter a = AttachedAdapter.attach(model, "default", ac, 1);
        perturb(a, 11);
        TokenBatch batch = TinyModels.batch(cfg, 2, 6, 4);
        INDArray expected = model.logits(batch).dup();
        Path dir = tmp.resolve("adapter");
        PeftAdapterFormat.save(a, dir, "tiny");
        JsonNode json = JSON.readTree(Files.readString(dir.resolve(PeftAdapterFormat.CONFIG_FILE)));
        assertEquals("lora_2", json.get("config_A_B").asText());
        assertEquals("lora_2", json.get("config_C").asText());
        assertEquals("vector", json.get("config_D_E").asText());
        // PEFT (no sidecar): the general structure on every layer computes the same function
        Files.delete(dir.resolve(PeftAdapterFormat.SIDECAR_FILE));
        TransformerLM fresh = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
        AttachedAdapter loaded = PeftAdapterFormat.load(fresh, dir, "default");
        assertEquals(GloraStructure.GENERAL, ((GloraAdapter) loaded.layers().values().iterator().next()).structure());
        assertEquals(0.0, fresh.logits(batch).sub(expected).amaxNumber().doubleValue(), 1e-5);
    }

    @Test
    void structuresParseAsPeftWritesThemAndBadOnesSayWhat() {
        assertEquals(GloraStructure.DEFAULT, GloraStructure.of("lora_8", "LoRA", "constant"));
        assertEquals(432, GloraStructure.all().size());
        assertEquals(432, new java.util.HashSet<>(GloraStructure.all()).size());
        Map<String, GloraStructure> l = GloraStructure.parseLayers(" h.0.attn.c_attn = vector,none,lora,none,constant ;h.1.mlp.c_fc=none,none,none,none,none");
        assertEquals(GloraStructure.parse("vector,none,lora,none,constant"), l.get("h.0.attn.c_attn"));
        assertEquals(l, GloraStructure.parseLayers(GloraStructure.formatLayers(l)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GloraStructure.parse("lora,lora,constant,none,none"));
        assertTrue(e.getMessage().contains("term C") && e.getMessage().contains("constant"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GloraStructure.parse("lora,lora,lora,lora,none"));
        assertTrue(e.getMessage().contains("term D"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GloraStructure.parse("lora,lora"));
        assertTrue(e.getMessage().contains("A, B, C, D and E"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GloraStructure.parseLayers("c_attn:lora,lora,lora,none,none"));
        assertTrue(e.getMessage().contains("module=A,B,C,D,E"), e.getMessage());
        AdapterConfig bad = AdapterConfig.of("glora", 2, 1, List.of("c_attn")).withBias("all");
        e = assertThrows(IllegalArgumentException.class, () -> bad.adapterMethod().validate(bad));
        assertTrue(e.getMessage().contains("bias must be none"), e.getMessage());
        GloraStructure s = GloraStructure.DEFAULT;
        java.util.Random rng = new java.util.Random(1);
        for (int i = 0; i < 50; i++) {
            GloraStructure m = s.mutate(rng);
            int diff = (m.a() != s.a() ? 1 : 0) + (m.b() != s.b() ? 1 : 0) + (m.c() != s.c() ? 1 : 0) + (m.d() != s.d() ? 1 : 0) + (m.e() != s.e() ? 1 : 0);
            assertEquals(1, diff, "a mutation changes exactly one term: " + s + " -> " + m);
            s = m;
        }
    }
}
