package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The demo pipeline on the shipped corpora, shortened (tiny model, few rounds) on Spark local[2]: every
 * stage runs, the report has the figures the issue names, outputs load back, and a rerun skips it all.
 */
class PipelineDemoTest {
    static final Path REPO = Path.of(System.getProperty("user.dir")).getParent();

    static String smallConfig(Path out) throws Exception {
        String demo = Files.readString(REPO.resolve("conf/demo.yaml"));
        demo = demo.replace("master: local[*]", "master: local[2]")
                .replace("datasets-manifests/", REPO.resolve("datasets-manifests") + "/");
        // each pattern must match, so a changed demo.yaml fails here instead of making this test slow
        String[][] shrink = {
                {"output: runs/demo", "output: " + java.util.regex.Matcher.quoteReplacement(out.toString())},
                {"vocab_size: \\d+", "vocab_size: 400"},
                {"seq_len: \\d+", "seq_len: 32"},
                {"\\{d_model: \\d+, layers: \\d+, heads: \\d+, steps: \\d+,", "{d_model: 32, layers: 2, heads: 2, steps: 6,"},
                {"(?m)^  rounds: \\d+", "  rounds: 4"},
                {"warmup: \\d+", "warmup: 1"},
                {"warmup_rounds: \\d+", "warmup_rounds: 2"},
                {"checkpoint_every: \\d+", "checkpoint_every: 2"},
                {"(?m)^  steps: \\d+", "  steps: 4"},
                {"samples: \\d+", "samples: 1"},
                {"sample_tokens: \\d+", "sample_tokens: 4"}};
        for (String[] r : shrink) {
            if (!java.util.regex.Pattern.compile(r[0]).matcher(demo).find()) {
                throw new AssertionError("conf/demo.yaml has nothing matching " + r[0] + "; update PipelineDemoTest.smallConfig");
            }
            demo = demo.replaceAll(r[0], r[1]);
        }
        return demo;
    }

    @Test
    void demoRunsEndToEndWritesTheReportAndARerunSkipsEveryStage(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        Path cfg = tmp.resolve("small.yaml");
        Files.writeString(cfg, smallConfig(out));
        assertEquals(0, SparkLoraCli.run(new String[]{"pipeline", "--config", cfg.toString()}));

        JsonNode r = new ObjectMapper().readTree(Files.readString(out.resolve("report.json")));
        for (String stage : new String[]{"tokenizer", "tokenize", "pretrain", "train", "lora_drop", "full_finetune", "eval"}) {
            assertEquals("done", r.path(stage).path("status").asText(), stage);
            assertTrue(r.path(stage).path("seconds").asDouble() > 0, stage);
        }
        JsonNode train = r.get("train");
        long trainable = train.path("trainable_params").asLong();
        assertTrue(trainable > 0 && trainable < train.path("total_params").asLong());
        assertEquals(4 * trainable, train.path("bytes_broadcast_per_round").asLong(), "only the adapter is broadcast");
        assertEquals(4 * trainable, train.path("bytes_reduced_per_round").asLong(), "only the adapter is reduced");
        assertTrue(train.path("tokens_per_second").asDouble() > 0);
        assertTrue(r.path("lora_drop").path("kept").size() > 0);
        assertTrue(r.path("lora_drop").has("param_reduction"));
        JsonNode eval = r.get("eval");
        for (String m : new String[]{"base", "adapted", "merged", "full_finetune"}) {
            assertTrue(eval.path(m).path("perplexity").asDouble() > 1, m);
            assertTrue(eval.path(m).has("accuracy"), m + " accuracy (the demo set has labels)");
        }
        assertEquals(eval.path("adapted").path("perplexity").asDouble(), eval.path("merged").path("perplexity").asDouble(), 1e-3);
        assertEquals(1, eval.path("samples").size());
        String html = Files.readString(out.resolve("report.html"));
        assertTrue(html.contains("<svg"), "loss curves drawn");
        assertTrue(Files.readAllLines(out.resolve("metrics.jsonl")).size() >= 4);
        var model = HfModelDirectory.load(out.resolve("base"));
        PeftAdapterFormat.load(model, out.resolve("adapter"), "default");
        assertTrue(Files.exists(out.resolve("shards/adapt/_SUCCESS")));

        // a scheduler reruns the job: nothing is redone and no output changes
        long adapterTime = Files.getLastModifiedTime(out.resolve("adapter/adapter_model.safetensors")).toMillis();
        assertEquals(0, SparkLoraCli.run(new String[]{"pipeline", "--config", cfg.toString()}));
        JsonNode again = new ObjectMapper().readTree(Files.readString(out.resolve("report.json")));
        for (String stage : new String[]{"tokenizer", "tokenize", "pretrain", "train", "lora_drop", "full_finetune", "eval"}) {
            assertEquals("skipped", again.path(stage).path("status").asText(), stage);
        }
        assertEquals(adapterTime, Files.getLastModifiedTime(out.resolve("adapter/adapter_model.safetensors")).toMillis());

        // the usual start: an existing Hugging Face model directory and its own tokenizer, no pretraining
        Path out2 = tmp.resolve("from-base");
        Path cfg2 = tmp.resolve("from-base.yaml");
        Files.writeString(cfg2, smallConfig(out2).replace("base:\n", "base:\n  path: " + out.resolve("base") + "\n")
                .replace("enabled: true", "enabled: false"));
        assertEquals(0, SparkLoraCli.run(new String[]{"pipeline", "--config", cfg2.toString()}));
        JsonNode r2 = new ObjectMapper().readTree(Files.readString(out2.resolve("report.json")));
        assertFalse(r2.has("pretrain"), "no pretraining when base.path is given");
        assertFalse(Files.exists(out2.resolve("tokenizer")), "the base model's tokenizer is used, none is learned");
        assertEquals(r.path("tokenizer").path("fingerprint").asText(), r2.path("tokenizer").path("fingerprint").asText());
        assertTrue(r2.path("eval").path("adapted").path("perplexity").asDouble() > 1);
    }

    @Test
    void unknownKeysInThePipelineYamlAreNamed(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("typo.yaml");
        Files.writeString(cfg, smallConfig(tmp.resolve("run")).replace("local_steps: 1", "local_stpes: 1"));
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf));
        try {
            assertEquals(1, SparkLoraCli.run(new String[]{"pipeline", "--config", cfg.toString()}));
        } finally {
            System.setErr(err);
        }
        String msg = buf.toString();
        assertTrue(msg.contains("unknown key 'train.local_stpes'"), msg);
        assertTrue(msg.contains("line "), msg);
        assertFalse(Files.exists(tmp.resolve("run")), "nothing written for a bad config");
    }
}
