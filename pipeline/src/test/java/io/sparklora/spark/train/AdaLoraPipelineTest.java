package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.api.TinyBase;
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
 * AdaLoRA through the whole pipeline: report.json holds the final rank of every adapted matrix and their total (the
 * target budget), metrics.jsonl the budget by round, report.html the heat map; evaluate reads the adapter file, sliced
 * to its rank pattern, and the merged model scores as the adapted one.
 */
class AdaLoraPipelineTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void adaloraReportsItsFinalRanksAndItsBudgetCurve(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: adalora",
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: adalora, r: 4, alpha: 8, target_r: 2, tinit: 1, tfinal: 2, targets: [c_attn, c_fc]}",
                "train: {rounds: 8, local_steps: 1, sync: gradients, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}", ""), "test.yaml");
        JsonNode report;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            report = new PipelineRunner(sc, cfg, QUIET).run(Set.of());
        }
        JsonNode train = report.path("train");
        JsonNode ranks = train.path("final_ranks");
        assertEquals(4, ranks.size(), train.toPrettyString());           // 2 blocks × (c_attn, c_fc)
        assertEquals(2 * 4, train.path("final_rank_total").asInt(), "the target budget: target_r × matrices");
        int sum = 0;
        for (JsonNode r : ranks) sum += r.asInt();
        assertEquals(8, sum);
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(8, lines.stream().filter(l -> l.contains("\"stage\":\"train\"") && l.contains("\"adalora_budget\"")).count(), "a budget every round");
        String html = Files.readString(out.resolve("report.html"));
        assertTrue(html.contains("Final rank of every adapted matrix") && html.contains("class=\"heatmap\""), "the heat map");
        assertTrue(html.contains("Rank budget"));
        JsonNode eval = report.path("eval");
        double adapted = eval.path("adapted").path("loss").asDouble(), merged = eval.path("merged").path("loss").asDouble();
        assertTrue(Double.isFinite(adapted) && adapted > 0, eval.toPrettyString());
        assertEquals(adapted, merged, 1e-4 * adapted, "merged equals unmerged");
        String adapterConfig = Files.readString(out.resolve("adapter/adapter_config.json"));
        assertTrue(adapterConfig.contains("\"peft_type\" : \"ADALORA\"") && adapterConfig.contains("rank_pattern"), adapterConfig);
    }
}
