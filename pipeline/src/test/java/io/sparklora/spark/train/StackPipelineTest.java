package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.TinyBase;
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
 * {@code train.aggregate: stack} through the whole pipeline on Spark: the run ends with a plain LoRA adapter of rank
 * rounds × partitions × r (the folds' sum, exactly), which evaluate reads at that rank from its own config; merged and
 * adapted score alike, and both beat the base.
 */
class StackPipelineTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void aStackedRunEndsWithTheExactAdapterAndEvaluatesIt(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: stack",
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: lora, r: 2, alpha: 4, targets: [c_attn, c_fc]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, average_optimizer_state: false, aggregate: stack,"
                        + " batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "full_finetune: {enabled: false}",
                "evaluate: {samples: 1, sample_tokens: 4}", ""), "test.yaml");
        JsonNode report;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            report = new PipelineRunner(sc, cfg, QUIET).run(Set.of());
        }
        AdapterConfig saved = PeftAdapterFormat.readConfig(out.resolve("adapter").resolve(PeftAdapterFormat.CONFIG_FILE));
        assertEquals("lora", saved.method());
        assertEquals(3 * 2 * 2, saved.r(), "3 rounds × 2 partitions × r 2, each fold kept");
        assertEquals(1.0, saved.scale(), 0.0, "B carries the scale");
        JsonNode eval = report.path("eval");
        double base0 = eval.path("base").path("loss").asDouble(), adapted = eval.path("adapted").path("loss").asDouble(),
                merged = eval.path("merged").path("loss").asDouble();
        assertTrue(Double.isFinite(adapted) && adapted < base0, eval.toPrettyString());
        assertEquals(adapted, merged, 1e-4 * adapted, "merged and adapted are the same model");
        assertTrue(report.path("eval").path("samples").size() > 0 || report.toString().contains("sample"), report.toPrettyString());
    }
}
