package io.sparklora.checkpoint;

import io.sparklora.model.ModelConfig;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class HfModelDirectoryTest {

    @Test
    void fp32RoundTripIsExactAndHalfPrecisionLoadsAsFloat(@TempDir Path tmp) {
        for (ModelConfig c : TinyModels.all()) {
            TransformerLM m = TransformerLM.randomInit(c, 4);
            TokenBatch b = TinyModels.batch(c, 2, 5, 1);
            INDArray expected = m.logits(b);
            Path f32 = tmp.resolve(c.architecture() + "-" + c.headDim() + "-f32");
            HfModelDirectory.save(m, f32, DataType.FLOAT, null);
            assertEquals(expected, HfModelDirectory.load(f32).logits(b));
            for (DataType half : List.of(DataType.HALF, DataType.BFLOAT16)) {
                Path dir = tmp.resolve(c.architecture() + "-" + c.headDim() + "-" + half);
                HfModelDirectory.save(m, dir, half, null);
                TransformerLM loaded = HfModelDirectory.load(dir);
                assertEquals(DataType.FLOAT, loaded.parameters().values().iterator().next().value().dataType());
                assertTrue(expected.equalsWithEps(loaded.logits(b), 0.05), half + " weights give nearly the same logits");
                assertEquals(ModelConfig.load(dir).torchDtype(), half == DataType.HALF ? "float16" : "bfloat16");
            }
        }
    }

    /**
     * A merge keeps config.json as it was (keys the engine does not model included; only torch_dtype follows
     * the stored type) and copies the generation config, tokenizer files and chat template along.
     */
    @Test
    void mergeKeepsTheConfigAndCopiesTheCompanionFiles(@TempDir Path tmp) throws Exception {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        ModelConfig c = TinyModels.llama3();
        com.fasterxml.jackson.databind.node.ObjectNode cfg = c.toJson();
        cfg.put("bos_token_id", 1).put("pad_token_id", 0).put("torch_dtype", "bfloat16").put("transformers_version", "4.46.0");
        cfg.putArray("eos_token_id").add(2).add(3);
        cfg.putObject("quantization_hint").put("unmodelled", true);
        Path src = tmp.resolve("src");
        Files.createDirectories(src);
        Files.writeString(src.resolve("config.json"), cfg.toPrettyString());
        CheckpointFiles.saveWeights(src, TransformerLM.randomInit(c, 3).stateDict(), DataType.BFLOAT16, Long.MAX_VALUE);
        Map<String, String> companions = Map.of("generation_config.json", "{\"bos_token_id\": 1, \"temperature\": 0.6}",
                "tokenizer_config.json", "{\"chat_template\": \"{{ messages }}\"}", "chat_template.jinja", "{{ bos_token }}",
                "special_tokens_map.json", "{}");
        for (var e : companions.entrySet()) Files.writeString(src.resolve(e.getKey()), e.getValue());

        TransformerLM model = HfModelDirectory.load(src);
        var adapter = io.sparklora.adapters.AttachedAdapter.attach(model, "default",
                io.sparklora.adapters.AdapterConfig.lora(2, 4, List.of("q_proj", "v_proj")), 5);
        adapter.trainableParameters().forEach(p -> p.value().assign(org.nd4j.linalg.factory.Nd4j.rand(p.value().dataType(), p.value().shape())));
        adapter.merge();
        adapter.detachMerged();
        Path out = tmp.resolve("merged");
        HfModelDirectory.save(model, out, DataType.FLOAT, src);

        var written = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(Files.readString(out.resolve("config.json")));
        assertEquals("float32", written.get("torch_dtype").asText());
        written.put("torch_dtype", "bfloat16");
        assertEquals(json.readTree(Files.readString(src.resolve("config.json"))), written, "every other key as it was");
        for (var e : companions.entrySet()) assertEquals(e.getValue(), Files.readString(out.resolve(e.getKey())), e.getKey());
        assertEquals(c.ropeScaling(), ModelConfig.load(out).ropeScaling());
    }

    @Test
    void checkpointThatDoesNotMatchItsConfigIsRejectedWithTheTensorName(@TempDir Path tmp) throws Exception {
        ModelConfig c = TinyModels.gpt2();
        TransformerLM m = TransformerLM.randomInit(c, 1);
        Map<String, INDArray> w = new LinkedHashMap<>(m.stateDict());
        w.remove("transformer.h.1.mlp.c_fc.bias");
        Path missing = tmp.resolve("missing");
        Files.createDirectories(missing);
        Files.writeString(missing.resolve("config.json"), c.toJson().toString());
        CheckpointFiles.saveWeights(missing, w, DataType.FLOAT, Long.MAX_VALUE);
        var e1 = assertThrows(CheckpointException.class, () -> HfModelDirectory.load(missing));
        assertTrue(e1.getMessage().contains("transformer.h.1.mlp.c_fc.bias") && e1.getMessage().contains("missing"), e1.getMessage());

        Path wrongShape = tmp.resolve("wrong-shape");
        Files.createDirectories(wrongShape);
        Files.writeString(wrongShape.resolve("config.json"), ModelConfig.gpt2(11, 8, 2, 2, 32).toJson().toString());
        CheckpointFiles.saveWeights(wrongShape, m.stateDict(), DataType.FLOAT, Long.MAX_VALUE);
        var e2 = assertThrows(CheckpointException.class, () -> HfModelDirectory.load(wrongShape));
        assertTrue(e2.getMessage().contains("transformer.wpe.weight") && e2.getMessage().contains("[16, 8]"), e2.getMessage());

        Path extra = tmp.resolve("extra");
        Files.createDirectories(extra);
        Files.writeString(extra.resolve("config.json"), ModelConfig.gpt2(11, 8, 1, 2, 16).toJson().toString());
        CheckpointFiles.saveWeights(extra, m.stateDict(), DataType.FLOAT, Long.MAX_VALUE);
        var e3 = assertThrows(CheckpointException.class, () -> HfModelDirectory.load(extra));
        assertTrue(e3.getMessage().contains("transformer.h.1."), e3.getMessage());
    }

    @Test
    void shardedCheckpointLoadsTheSameModel(@TempDir Path tmp) throws Exception {
        ModelConfig c = TinyModels.llama();
        TransformerLM m = TransformerLM.randomInit(c, 2);
        Path dir = tmp.resolve("sharded");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), c.toJson().toString());
        CheckpointFiles.saveWeights(dir, m.stateDict(), DataType.FLOAT, 600);
        assertTrue(Files.exists(dir.resolve("model.safetensors.index.json")));
        TokenBatch b = TinyModels.batch(c, 1, 4, 2);
        assertEquals(m.logits(b), HfModelDirectory.load(dir).logits(b));
    }
}
