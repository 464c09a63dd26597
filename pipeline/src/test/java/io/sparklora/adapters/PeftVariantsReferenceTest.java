package io.sparklora.adapters;

import static io.sparklora.model.ReferenceJson.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.dora.DoraAdapter;
import io.sparklora.adapters.vera.VeraAdapter;
import io.sparklora.adapters.vera.VeraMethod;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DoRA and VeRA against an independent float64 PyTorch implementation of Hugging Face PEFT's definitions
 * ({@code bench/reference/peft_variants_reference.py}, which wrote {@code reference/variants/<family>-<method>/}:
 * adapter_config.json, adapter_model.safetensors and expected.json, over the base models of
 * {@code reference/{gpt2,llama}/} that {@link io.sparklora.model.HuggingFaceReferenceTest} uses).
 *
 * <p>The base is loaded as HuggingFaceReferenceTest loads it (config + safetensors, cast to float64), the
 * adapter through the production reader {@link PeftAdapterFormat#load} (no {@code spark_lora.json} sidecar,
 * so VeRA's projections must come from the file); adapters take the base weight's dtype and loading casts
 * the float32 file tensors to it. Logits, loss and the gradient of every trainable adapter tensor are then
 * held to 1e-9 against the reference: both sides evaluate in float64 on the same float32-rounded values, so
 * storage in float32 does not loosen the bound.
 *
 * <p>Fixtures: GPT-2 (Conv1D, {@code fan_in_fan_out}) with c_attn, c_fc and mlp.c_proj, whose different sizes
 * make VeRA slice its shared pair in both dimensions; Llama with q_proj, v_proj, gate_proj and down_proj. The
 * reference's DoRA detaches the weight norm as PEFT does; the script asserts that attaching it would move the
 * A and B gradients by far more than the tolerance, so these gradients pin the detach down.
 */
class PeftVariantsReferenceTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final double TOL = 1e-9;
    private static final String PREFIX = PeftAdapterFormat.PREFIX;

    private record Loaded(TransformerLM model, AttachedAdapter adapter, TokenBatch batch, JsonNode expected, Path dir) {}

    private Path resource(String path) throws Exception {
        return Path.of(getClass().getResource("/reference/" + path).toURI()).getParent();
    }

    private static String family(String fixture) { return fixture.substring(0, fixture.indexOf('-')); }

    private static String method(String fixture) { return fixture.substring(fixture.indexOf('-') + 1); }

    /** The float64 base of the fixture's family with the fixture's PEFT adapter loaded onto it. */
    private Loaded load(String fixture) throws Exception {
        Path baseDir = resource(family(fixture) + "/config.json");
        ModelConfig cfg = ModelConfig.load(baseDir);
        Map<String, INDArray> weights = new LinkedHashMap<>();
        CheckpointFiles.loadWeights(baseDir).forEach((n, t) -> weights.put(n, t.castTo(DataType.DOUBLE)));
        TransformerLM model = TransformerLM.fromWeights(cfg, weights);

        Path dir = resource("variants/" + fixture + "/adapter_config.json");
        assertFalse(Files.exists(dir.resolve(PeftAdapterFormat.SIDECAR_FILE)), "the fixture is a plain PEFT directory");
        AttachedAdapter adapter = PeftAdapterFormat.load(model, dir, "default");
        for (Parameter p : adapter.adapterTensors()) {
            assertEquals(DataType.DOUBLE, p.value().dataType(), p.name() + " takes the base weight's dtype");
        }
        JsonNode expected = JSON.readTree(Files.readString(dir.resolve("expected.json")));
        assertEquals(method(fixture), expected.get("method").asText());
        TokenBatch batch = TokenBatch.of(ints(expected.get("input_ids")), ints(expected.get("targets")));
        return new Loaded(model, adapter, batch, expected, dir);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void configAndTensorsReadBack(String fixture) throws Exception {
        Loaded l = load(fixture);
        JsonNode ac = JSON.readTree(Files.readString(l.dir().resolve(PeftAdapterFormat.CONFIG_FILE)));
        AdapterConfig c = l.adapter().config();
        assertEquals(method(fixture), c.method());
        assertEquals(ac.get("r").asInt(), c.r());
        assertEquals(0.0, c.dropout());
        assertEquals("none", c.bias());
        assertEquals(c, PeftAdapterFormat.readConfig(l.dir().resolve(PeftAdapterFormat.CONFIG_FILE)));

        // PEFT's target rule picks the same modules as the reference (GPT-2: mlp.c_proj but not attn.c_proj)
        List<String> modules = new ArrayList<>();
        l.expected().get("modules").forEach(m -> modules.add(m.asText()));
        assertEquals(modules, new ArrayList<>(l.adapter().layers().keySet()));

        Map<String, INDArray> file = new LinkedHashMap<>();
        try (SafetensorsReader r = SafetensorsReader.open(l.dir().resolve(PeftAdapterFormat.WEIGHTS_FILE))) {
            assertEquals(Map.of("format", "pt"), r.metadata());
            for (String n : r.names()) file.put(n, r.read(n));
        }
        if (method(fixture).equals("dora")) {
            assertEquals("LORA", ac.get("peft_type").asText());
            assertTrue(ac.get("use_dora").asBoolean());
            assertEquals(ac.get("lora_alpha").asDouble() / ac.get("r").asInt(), c.scale(), 0.0);
            for (Adapter a : l.adapter().layers().values()) assertInstanceOf(DoraAdapter.class, a);
            assertTrue(l.adapter().shared().isEmpty());
        } else {
            assertEquals("VERA", ac.get("peft_type").asText());
            assertEquals(ac.get("d_initial").asDouble(), c.doubleOption(VeraMethod.D_INITIAL), 0.0);
            assertEquals(ac.get("projection_prng_key").asLong(), c.longOption(VeraMethod.PRNG_KEY));
            assertTrue(c.booleanOption(VeraMethod.SAVE_PROJECTION));
            for (Adapter a : l.adapter().layers().values()) assertInstanceOf(VeraAdapter.class, a);
            // the shared pair is the saved one (not regenerated from the key), sized to the largest in / out
            int maxIn = 0, maxOut = 0;
            for (String m : modules) {
                maxIn = Math.max(maxIn, l.model().linears().get(m).inFeatures());
                maxOut = Math.max(maxOut, l.model().linears().get(m).outFeatures());
            }
            assertEquals(Set.of("vera_A", "vera_B"), l.adapter().shared().keySet());
            Parameter va = l.adapter().shared().get("vera_A"), vb = l.adapter().shared().get("vera_B");
            assertArrayEquals(new long[]{c.r(), maxIn}, va.value().shape());
            assertArrayEquals(new long[]{maxOut, c.r()}, vb.value().shape());
            assertEquals(0.0, arrayDiff(va.value(), file.get("base_model.vera_A")));
            assertEquals(0.0, arrayDiff(vb.value(), file.get("base_model.vera_B")));
            assertFalse(va.trainable() || vb.trainable(), "VeRA's shared pair is frozen");
            for (Adapter a : l.adapter().layers().values()) {
                VeraAdapter v = (VeraAdapter) a;
                assertTrue(v.projections().a() == va && v.projections().b() == vb, "one pair for the whole model");
            }
        }
        // every layer tensor holds exactly the file's value
        for (Map.Entry<String, Adapter> e : l.adapter().layers().entrySet()) {
            for (Map.Entry<String, INDArray> t : e.getValue().stateDict().entrySet()) {
                INDArray want = file.get(PREFIX + e.getKey() + "." + t.getKey());
                assertNotNull(want, "file lacks " + PREFIX + e.getKey() + "." + t.getKey());
                assertEquals(0.0, arrayDiff(t.getValue(), want), e.getKey() + "." + t.getKey());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void logitsAndLossMatchPeftInFloat64(String fixture) throws Exception {
        Loaded l = load(fixture);
        INDArray logits = l.model().logits(l.batch());
        assertEquals(DataType.DOUBLE, logits.dataType());
        double diff = maxAbsDiff(logits, rows(l.expected().get("logits")));
        assertTrue(diff < TOL, fixture + ": logits differ from the reference by " + diff);
        CrossEntropyLoss.Result r = CrossEntropyLoss.compute(logits, l.batch().targets(), false);
        assertEquals(l.batch().targetCount(), r.count());
        assertEquals(l.expected().get("loss").asDouble(), r.meanLoss(), TOL, fixture + ": loss");
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void adapterGradientsMatchTorchAutograd(String fixture) throws Exception {
        Loaded l = load(fixture);
        for (Parameter p : l.adapter().trainableParameters()) p.zeroGrad();
        CrossEntropyLoss.Result r = l.model().forwardBackward(l.batch(), ForwardContext.inference(), 1.0);
        assertEquals(l.expected().get("loss").asDouble(), r.meanLoss(), TOL, fixture + ": loss from forwardBackward");

        JsonNode grads = l.expected().get("grads");
        Map<Parameter, String> checked = new IdentityHashMap<>();
        for (Map.Entry<String, Adapter> e : l.adapter().layers().entrySet()) {
            for (Map.Entry<String, Parameter> t : trainableTensors(e.getValue()).entrySet()) {
                String name = PREFIX + e.getKey() + "." + t.getKey();
                Parameter p = t.getValue();
                JsonNode g = grads.get(name);
                assertNotNull(g, "reference has no gradient for " + name);
                assertTrue(p.trainable(), name + " trains");
                double diff = maxAbsDiff(p.grad(), g.get(0).isArray() ? rows(g) : new double[][]{doubles(g)});
                assertTrue(diff < TOL, fixture + ": gradient of " + name + " differs from autograd by " + diff);
                checked.put(p, name);
            }
        }
        assertEquals(grads.size(), checked.size(), fixture + ": every reference gradient is checked");
        // and nothing else trains (VeRA's vera_A / vera_B are frozen, no biases with bias=none)
        assertEquals(checked.size(), l.adapter().trainableParameters().size());
        for (Parameter p : l.adapter().trainableParameters()) assertTrue(checked.containsKey(p), p.name() + " trains but is not checked");
    }

    /** Guards the comparison itself: without the adapter the logits must be far off, so it is really exercised. */
    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void referenceExercisesTheAdapter(String fixture) throws Exception {
        Loaded l = load(fixture);
        l.adapter().detach();
        double diff = maxAbsDiff(l.model().logits(l.batch()), rows(l.expected().get("logits")));
        assertTrue(diff > 1e-2, fixture + ": the adapter changes the logits by only " + diff);
    }

    /** Merging (PEFT's merged weight) gives the same logits in float64. */
    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void mergedMatchesReferenceInFloat64(String fixture) throws Exception {
        Loaded l = load(fixture);
        l.adapter().merge();
        double diff = maxAbsDiff(l.model().logits(l.batch()), rows(l.expected().get("logits")));
        assertTrue(diff < TOL, fixture + ": merged logits differ from the reference by " + diff);
    }

    /** The production float32 path: HfModelDirectory + PeftAdapterFormat, within float32 rounding of the reference. */
    @ParameterizedTest
    @ValueSource(strings = {"gpt2-dora", "gpt2-vera", "llama-dora", "llama-vera"})
    void float32ProductionPathIsCloseToReference(String fixture) throws Exception {
        TransformerLM model = io.sparklora.checkpoint.HfModelDirectory.load(resource(family(fixture) + "/config.json"));
        Path dir = resource("variants/" + fixture + "/adapter_config.json");
        PeftAdapterFormat.load(model, dir, "default");
        JsonNode expected = JSON.readTree(Files.readString(dir.resolve("expected.json")));
        TokenBatch batch = TokenBatch.of(ints(expected.get("input_ids")), ints(expected.get("targets")));
        INDArray logits = model.logits(batch);
        assertEquals(DataType.FLOAT, logits.dataType());
        double diff = maxAbsDiff(logits, rows(expected.get("logits")));
        assertTrue(diff < 1e-4, fixture + ": float32 logits differ from the reference by " + diff);
    }

    // ---- helpers --------------------------------------------------------------------------------

    /** A layer's trainable tensors by the key PEFT saves them under (after the module name). */
    private static Map<String, Parameter> trainableTensors(Adapter a) {
        Map<String, Parameter> m = new LinkedHashMap<>();
        if (a instanceof DoraAdapter d) {
            m.put("lora_A.weight", d.loraA());
            m.put("lora_B.weight", d.loraB());
            m.put("lora_magnitude_vector", d.magnitude());
        } else if (a instanceof VeraAdapter v) {
            m.put("vera_lambda_b", v.lambdaB());
            m.put("vera_lambda_d", v.lambdaD());
        } else {
            throw new AssertionError("unexpected adapter " + a.getClass());
        }
        return m;
    }

    private static double arrayDiff(INDArray actual, INDArray want) {
        assertArrayEquals(want.shape(), actual.shape());
        INDArray w = want.castTo(DataType.DOUBLE), a = actual.castTo(DataType.DOUBLE);
        return a.sub(w).amaxNumber().doubleValue();
    }
}
