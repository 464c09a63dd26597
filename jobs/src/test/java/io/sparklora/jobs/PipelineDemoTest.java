package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The demo chain on the shipped corpus, shortened: every stage runs and its outputs load back. */
class PipelineDemoTest {

    @Test
    void demoRunsEndToEndAndWritesLoadableOutputs(@TempDir Path out) throws Exception {
        Path data = Path.of(System.getProperty("user.dir")).getParent().resolve("datasets-manifests/demo");
        int code = SparkLoraCli.run(new String[]{"pipeline", "--data-dir", data.toString(), "--out", out.toString(),
                "--base-steps", "4", "--lora-steps", "4", "--seq", "32"});
        assertEquals(0, code);
        JsonNode report = new ObjectMapper().readTree(Files.readString(out.resolve("report.json")));
        for (String stage : new String[]{"tokenize", "pretrain_base", "train_lora", "evaluate"}) {
            assertEquals("done", report.path(stage).path("status").asText(), stage);
        }
        JsonNode eval = report.get("evaluate");
        assertEquals(eval.path("adapted").path("perplexity").asDouble(), eval.path("merged").path("perplexity").asDouble(), 1e-3,
                "merged and adapted models agree");
        assertTrue(report.path("train_lora").path("trainable_params").asLong() > 0);
        var model = HfModelDirectory.load(out.resolve("base"));
        PeftAdapterFormat.load(model, out.resolve("adapter"), "default");
        assertTrue(Files.exists(out.resolve("base/tokenizer.json")));
    }
}
