package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.privacy.RdpAccountant;
import io.sparklora.runner.TinyPipeline;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DP-DyLoRA through the whole pipeline: DyLoRA under client-level DP-FedAvg, then evaluate at every rank. The report
 * holds ε as the accountant computes it for the run's rounds, every round's ε is in metrics.jsonl, and report.json and
 * report.html hold the loss by rank.
 */
class DpDyLoraPipelineTest {
    @Test
    void dpDyloraTrainsPrivatelyAndIsEvaluatedAtEveryRank(@TempDir Path tmp) throws Exception {
        TinyPipeline.Run run = TinyPipeline.run(tmp, "dp-dylora", "",
                "adapter: {type: dylora, r: 4, targets: [c_attn]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0,",
                "        dp: {mode: client, clip_norm: 0.5, noise_multiplier: 1.2, sample_rate: 1.0, delta: 1.0e-5}}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}");
        Path out = run.out();
        JsonNode report = run.report();
        JsonNode dp = report.path("train").path("dp");
        assertEquals("client", dp.path("mode").asText(), report.toPrettyString());
        assertEquals(3, dp.path("noisy_steps").asInt());
        assertEquals(RdpAccountant.epsilon(1.0, 1.2, 3, 1e-5).epsilon(), dp.path("epsilon").asDouble(), 1e-9);
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(3, lines.stream().filter(l -> l.contains("\"stage\":\"train\"") && l.contains("\"epsilon\"")).count(), "epsilon every round");
        JsonNode byRank = report.path("eval").path("by_rank");
        assertEquals(4, byRank.size(), "ranks 1 to 4: " + report.path("eval").toPrettyString());
        for (int b = 1; b <= 4; b++) assertTrue(Double.isFinite(byRank.path(Integer.toString(b)).path("loss").asDouble()), "rank " + b);
        assertFalse(report.path("eval").has("adapted@rank1"), "ranks are under by_rank, not models of their own");
        assertTrue(Files.readString(out.resolve("report.html")).contains("Validation loss by rank"));
    }
}
