package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.api.TinyBase;
import io.sparklora.privacy.RdpAccountant;
import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DP-DyLoRA through the whole pipeline: DyLoRA under client-level DP-FedAvg, then evaluate at every rank. The report
 * holds ε as the accountant computes it for the run's rounds, every round's ε is in metrics.jsonl, and report.json and
 * report.html hold the loss by rank.
 */
class DpDyLoraPipelineTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void dpDyloraTrainsPrivatelyAndIsEvaluatedAtEveryRank(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: dp-dylora",
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: dylora, r: 4, targets: [c_attn]}",
                "train: {rounds: 3, local_steps: 2, sync: parameters, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0,",
                "        dp: {mode: client, clip_norm: 0.5, noise_multiplier: 1.2, sample_rate: 1.0, delta: 1.0e-5}}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}", ""), "test.yaml");
        JsonNode report;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            report = new PipelineRunner(sc, cfg, QUIET).run(Set.of());
        }
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
