package io.sparklora.api;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.runner.PipelineConfig;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The public API on an existing local[2] session: a tiny config runs, and its run directory reads back. */
class SparkLoraApiTest {
    static SparkSession spark;
    @TempDir static Path tmp;
    static Path base, dataset;

    @BeforeAll
    static void start() {
        spark = SparkSession.builder().config(SparkSetup.defaults(new org.apache.spark.SparkConf())
                .setMaster("local[2]").setAppName("api-test").set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")).getOrCreate();
        base = TinyBase.write(tmp.resolve("base"), 7);
        dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(40, 1));
    }

    @AfterAll
    static void stop() { spark.stop(); }

    static PipelineConfig config(String name) {
        return SparkLora.configFromYaml(String.join("\n",
                "name: " + name,
                "output: " + tmp.resolve(name),
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {r: 4, alpha: 8, targets: [c_attn]}",
                "train: {rounds: 4, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 1, sample_tokens: 4, sample_prompt_tokens: 4}", ""));
    }

    @Test
    void stagesExpandToTheirPrerequisitesAsTheCliRunsThem() {
        assertEquals(List.of(), SparkLora.withPrerequisites());
        assertEquals(List.of(), SparkLora.withPrerequisites("pipeline"));
        assertEquals(List.of("tokenizer", "tokenize"), SparkLora.withPrerequisites("tokenize"));
        assertEquals(List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train"), SparkLora.withPrerequisites("train"));
        assertEquals(List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train", "lora_drop"), SparkLora.withPrerequisites("lora-drop"));
        assertEquals(List.of("tokenizer", "tokenize", "pretrain", "glora_search"), SparkLora.withPrerequisites("glora-search"));
        assertEquals(List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train", "full_finetune", "evaluate"),
                SparkLora.withPrerequisites("evaluate"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SparkLora.withPrerequisites("trian"));
        assertTrue(e.getMessage().contains("'trian'") && e.getMessage().contains("lora_drop"), e.getMessage());
    }

    @Test
    void runsOnTheGivenSessionAndReadsTheRunBack() {
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        SparkLora lora = SparkLora.on(spark).progressTo(new PrintStream(progress, true, StandardCharsets.UTF_8));
        Run run = lora.run(config("full"));
        assertFalse(spark.sparkContext().isStopped(), "the caller's session keeps running");
        assertTrue(progress.toString(StandardCharsets.UTF_8).contains("[train] running"), "progress went to the given stream");

        JsonNode report = run.report();
        for (String s : List.of("tokenizer", "tokenize", "train", "eval")) assertEquals("done", report.path(s).path("status").asText(), s);
        assertFalse(report.has("pretrain"), "base.path is given: no pretraining");
        assertEquals("done", run.stageStatus("evaluate"));
        assertEquals("absent", run.stageStatus("lora-drop"));

        Metrics.Series loss = run.metrics().series("train", "loss");
        assertEquals(4, loss.size(), "one loss per round");
        assertArrayEquals(new long[]{1, 2, 3, 4}, loss.steps());
        assertTrue(run.metrics().phases().contains("train"));
        assertTrue(run.metrics().series("train", "no_such_metric").isEmpty());

        AdapterInfo info = run.adapterInfo();
        assertEquals("lora", info.config().method());
        assertEquals(4, info.tensors().size(), "lora_A and lora_B on c_attn of 2 layers");
        assertArrayEquals(new long[]{4, 32}, info.tensors().get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"));
        assertArrayEquals(new long[]{96, 4}, info.tensors().get("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"));
        assertEquals(2L * 4 * (32 + 96), info.trainableParameters());
        assertEquals(info.trainableParameters(), run.parameters().trainable());
        assertTrue(run.loraDropImportance().isEmpty());
        assertTrue(run.loraDropAdapterDir().isEmpty());
        assertTrue(run.mergedDir().isEmpty());

        String text = run.generate("the river", 5);
        assertEquals(text, run.generate("the river", 5), "greedy decoding is deterministic");
        assertEquals(text, Run.open(run.uri(), spark.sparkContext().hadoopConfiguration()).generate("the river", 5), "a reopened run generates the same");

        // a second run of a finished stage skips it, quietly
        Run again = lora.quiet().run(config("full"), "train");
        assertEquals("skipped", again.report().path("train").path("status").asText());
        assertEquals(4, again.metrics().series("train", "loss").size());

        String merged = run.merge();
        assertEquals(merged, run.mergedDir().orElseThrow());
    }

    @Test
    void aMissingRunSaysSo() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Run.open(tmp.resolve("nothing").toString()).report());
        assertTrue(e.getMessage().contains("no report.json"), e.getMessage());
    }
}
