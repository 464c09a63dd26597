package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.api.TinyBase;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * QLoRA through the whole pipeline: {@code base.quantization: nf4} trains and evaluates over the NF4 base the executors
 * quantize on load; the report says so and counts the base at its NF4 bytes; the merged model is evaluated too (full
 * precision, dequantized W0 + ΔW) and scores as the adapted one does.
 */
class QloraPipelineTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void aQloraRunTrainsAndEvaluatesOverTheNf4Base(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: qlora",
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + ", quantization: nf4}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: lora, r: 4, targets: [c_attn, c_fc]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}", ""), "test.yaml");
        JsonNode report;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            report = new PipelineRunner(sc, cfg, QUIET).run(Set.of());
        }
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
