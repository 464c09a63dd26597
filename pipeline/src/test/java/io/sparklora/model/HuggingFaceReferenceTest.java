package io.sparklora.model;

import static io.sparklora.model.ReferenceJson.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.SafetensorsReader;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checks the forward pass, loss and LoRA gradients against an independent PyTorch implementation of
 * Hugging Face's GPT2LMHeadModel and the Llama family (LlamaForCausalLM with llama3, linear and dynamic
 * rope scaling and a head_dim apart from hidden/heads; Mistral, Qwen2, Qwen3 and Phi-3) with PEFT LoRA on
 * PEFT's default targets ({@code bench/reference/hf_reference.py}, which wrote the files under
 * {@code reference/<family>/}: config.json, model.safetensors, adapter_config.json, adapter_model.safetensors
 * and expected.json).
 *
 * <p>The model is loaded exactly as a user's Hugging Face directory would be (config + safetensors, PEFT
 * adapter by name), cast to float64, and compared to the float64 reference values to 1e-9.
 */
class HuggingFaceReferenceTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final double TOL = 1e-9;
    private static final String PEFT_PREFIX = "base_model.model.";

    /** Every family the reference script writes: GPT-2 and the Llama family's variations. */
    static List<String> families() {
        return List.of("gpt2", "llama", "llama3", "llama-linear", "llama-dynamic", "mistral", "qwen2", "qwen3", "phi3");
    }

    private record Loaded(TransformerLM model, AttachedAdapter adapter, TokenBatch batch, JsonNode expected) {}

    private Path referenceDir(String family) throws Exception {
        return Path.of(getClass().getResource("/reference/" + family + "/config.json").toURI()).getParent();
    }

    /** Loads the reference model (float64 or float32) with its PEFT adapter, the batch and the expected values. */
    private Loaded load(String family, DataType dtype) throws Exception {
        Path dir = referenceDir(family);
        ModelConfig cfg = ModelConfig.load(dir);
        Map<String, INDArray> weights = new LinkedHashMap<>();
        CheckpointFiles.loadWeights(dir).forEach((n, t) -> weights.put(n, t.castTo(dtype)));
        TransformerLM model = TransformerLM.fromWeights(cfg, weights);

        JsonNode ac = JSON.readTree(Files.readString(dir.resolve("adapter_config.json")));
        assertEquals("LORA", ac.get("peft_type").asText());
        List<String> targets = new ArrayList<>();
        ac.get("target_modules").forEach(t -> targets.add(t.asText()));
        AdapterConfig acfg = AdapterConfig.lora(ac.get("r").asInt(), ac.get("lora_alpha").asDouble(), targets);
        AttachedAdapter adapter = AttachedAdapter.attach(model, "default", acfg, 7L);

        Path adapterFile = dir.resolve("adapter_model.safetensors");
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        try (SafetensorsReader r = SafetensorsReader.open(adapterFile)) {
            for (String n : r.names()) tensors.put(n, r.read(n));
        }
        TreeSet<String> unused = new TreeSet<>(tensors.keySet());
        for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
            String a = PEFT_PREFIX + e.getKey() + ".lora_A.weight", b = PEFT_PREFIX + e.getKey() + ".lora_B.weight";
            assertTrue(tensors.containsKey(a) && tensors.containsKey(b), "adapter file lacks tensors for " + e.getKey());
            e.getValue().loadStateDict(Map.of("lora_A.weight", tensors.get(a), "lora_B.weight", tensors.get(b)),
                    adapterFile.toString());
            unused.remove(a);
            unused.remove(b);
        }
        assertTrue(unused.isEmpty(), "adapter tensors that match no adapted layer: " + unused);

        JsonNode expected = JSON.readTree(Files.readString(dir.resolve("expected.json")));
        TokenBatch batch = TokenBatch.of(ints(expected.get("input_ids")), ints(expected.get("targets")));
        return new Loaded(model, adapter, batch, expected);
    }

    @ParameterizedTest
    @MethodSource("families")
    void logitsMatchHuggingFaceInFloat64(String family) throws Exception {
        Loaded l = load(family, DataType.DOUBLE);
        INDArray logits = l.model().logits(l.batch());
        assertEquals(DataType.DOUBLE, logits.dataType());
        double[][] want = rows(l.expected().get("logits"));
        assertEquals(want.length, logits.size(0));
        assertEquals(want[0].length, logits.size(1));
        double diff = maxAbsDiff(logits, want);
        assertTrue(diff < TOL, family + ": logits differ from the reference by " + diff);
    }

    @ParameterizedTest
    @MethodSource("families")
    void lossMatchesHuggingFaceInFloat64(String family) throws Exception {
        Loaded l = load(family, DataType.DOUBLE);
        CrossEntropyLoss.Result r = CrossEntropyLoss.compute(l.model().logits(l.batch()), l.batch().targets(), false);
        assertEquals(l.batch().targetCount(), r.count());
        assertEquals(l.expected().get("loss").asDouble(), r.meanLoss(), TOL, family + ": loss");
    }

    @ParameterizedTest
    @MethodSource("families")
    void loraGradientsMatchTorchAutograd(String family) throws Exception {
        Loaded l = load(family, DataType.DOUBLE);
        CrossEntropyLoss.Result r = l.model().forwardBackward(l.batch(), ForwardContext.inference(), 1.0);
        assertEquals(l.expected().get("loss").asDouble(), r.meanLoss(), TOL, family + ": loss from forwardBackward");
        JsonNode grads = l.expected().get("lora_grads");
        int checked = 0;
        for (Map.Entry<String, Adapter> e : l.adapter().layers().entrySet()) {
            LoraAdapter a = (LoraAdapter) e.getValue();
            for (String part : List.of("lora_A", "lora_B")) {
                String name = PEFT_PREFIX + e.getKey() + "." + part + ".weight";
                Parameter p = part.equals("lora_A") ? a.loraA() : a.loraB();
                JsonNode g = grads.get(name);
                assertTrue(g != null, "reference has no gradient for " + name);
                double[][] want = rows(g);
                assertEquals(want.length, p.value().size(0), name + " rows");
                assertEquals(want[0].length, p.value().size(1), name + " columns");
                double diff = maxAbsDiff(p.grad(), want);
                assertTrue(diff < TOL, family + ": gradient of " + name + " differs from autograd by " + diff);
                checked++;
            }
        }
        assertEquals(grads.size(), checked, family + ": every reference gradient is checked");
    }

    /** The reference weights are float32, so the float32 engine must land within float32 rounding. */
    @ParameterizedTest
    @MethodSource("families")
    void float32EngineIsCloseToReference(String family) throws Exception {
        Loaded l = load(family, DataType.FLOAT);
        INDArray logits = l.model().logits(l.batch());
        assertEquals(DataType.FLOAT, logits.dataType());
        double diff = maxAbsDiff(logits, rows(l.expected().get("logits")));
        assertTrue(diff < 1e-4, family + ": float32 logits differ from the reference by " + diff);
    }

    /** Guards the comparison itself: without the adapter the logits must be far off, so LoRA is really exercised. */
    @ParameterizedTest
    @MethodSource("families")
    void referenceExercisesTheAdapter(String family) throws Exception {
        Loaded l = load(family, DataType.DOUBLE);
        l.adapter().detach();
        double diff = maxAbsDiff(l.model().logits(l.batch()), rows(l.expected().get("logits")));
        assertTrue(diff > 1e-2, family + ": the adapter changes the logits by only " + diff);
    }

    /** The production path: the Hugging Face model directory and the PEFT adapter written by Python load as they are. */
    @ParameterizedTest
    @MethodSource("families")
    void peftDirectoryWrittenByPythonLoadsThroughTheProductionPath(String family) throws Exception {
        Path dir = referenceDir(family);
        TransformerLM model = io.sparklora.checkpoint.HfModelDirectory.load(dir);
        io.sparklora.adapters.PeftAdapterFormat.load(model, dir, "default");
        JsonNode expected = JSON.readTree(Files.readString(dir.resolve("expected.json")));
        TokenBatch batch = TokenBatch.of(ints(expected.get("input_ids")), ints(expected.get("targets")));
        double diff = maxAbsDiff(model.logits(batch), rows(expected.get("logits")));
        assertTrue(diff < 1e-4, family + ": fp32 logits through HfModelDirectory + PeftAdapterFormat differ by " + diff);
    }
}
