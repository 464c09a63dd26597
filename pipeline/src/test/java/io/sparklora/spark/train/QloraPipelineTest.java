package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.runner.TinyPipeline;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * QLoRA through the whole pipeline: {@code base.quantization: nf4} trains and evaluates over the NF4 base the executors
 * quantize on load; the report says so and counts the base at its NF4 bytes; the merged model is evaluated too (full
 * precision, dequantized W0 + ΔW) and scores as the adapted one does.
 */
class QloraPipelineTest {
    @Test
    void aQloraRunTrainsAndEvaluatesOverTheNf4Base(@TempDir Path tmp) throws Exception {
        Path base = tmp.resolve("base");
        TinyPipeline.Run run = TinyPipeline.run(tmp, "qlora", "quantization: nf4",
                "adapter: {type: lora, r: 4, targets: [c_attn, c_fc]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}");
        JsonNode report = run.report();
        JsonNode train = report.path("train");
        assertEquals("nf4+dq", train.path("base_quantization").asText(), train.toPrettyString());
        ModelConfig config = ModelConfig.load(base);
        assertEquals(TransformerLM.baseBytes(config, BaseQuantization.NF4_DOUBLE_QUANT), train.path("model_bytes").asLong());
        JsonNode eval = report.path("eval");
        double adapted = eval.path("adapted").path("loss").asDouble(), merged = eval.path("merged").path("loss").asDouble();
        assertTrue(Double.isFinite(adapted) && adapted < eval.path("base").path("loss").asDouble(), eval.toPrettyString());
        assertEquals(adapted, merged, 1e-4 * adapted, "merging over NF4 (dequantized W0 + ΔW) keeps the adapted model's loss");
    }
}
