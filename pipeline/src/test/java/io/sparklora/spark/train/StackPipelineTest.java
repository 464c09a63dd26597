package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.runner.TinyPipeline;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train.aggregate: stack} through the whole pipeline on Spark: the run ends with a plain LoRA adapter of rank
 * rounds × partitions × r (the folds' sum, exactly), which evaluate reads at that rank from its own config; merged and
 * adapted score alike, and both beat the base.
 */
class StackPipelineTest {
    @Test
    void aStackedRunEndsWithTheExactAdapterAndEvaluatesIt(@TempDir Path tmp) throws Exception {
        TinyPipeline.Run run = TinyPipeline.run(tmp, "stack", "",
                "adapter: {type: lora, r: 2, alpha: 4, targets: [c_attn, c_fc]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, average_optimizer_state: false, aggregate: stack,"
                        + " batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "full_finetune: {enabled: false}",
                "evaluate: {samples: 1, sample_tokens: 4}");
        Path out = run.out();
        JsonNode report = run.report();
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
