package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
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
 * AdaLoRA through the whole pipeline: report.json holds the final rank of every adapted matrix and their total (the
 * target budget), metrics.jsonl the budget by round, report.html the heat map; evaluate reads the adapter file, sliced
 * to its rank pattern, and the merged model scores as the adapted one.
 */
class AdaLoraPipelineTest {
    @Test
    void adaloraReportsItsFinalRanksAndItsBudgetCurve(@TempDir Path tmp) throws Exception {
        TinyPipeline.Run run = TinyPipeline.run(tmp, "adalora", "",
                "adapter: {type: adalora, r: 4, alpha: 8, target_r: 2, tinit: 1, tfinal: 2, targets: [c_attn, c_fc]}",
                "train: {rounds: 8, local_steps: 1, sync: gradients, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 0}");
        Path out = run.out();
        JsonNode report = run.report();
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
