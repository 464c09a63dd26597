package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * What a scheduler (docs/airflow/spark_lora_dag.py, docs/WORKFLOWS.md) relies on: the stage commands run as
 * separate processes in the DAG's order (tokenize, train, lora-drop, evaluate); the train process is killed
 * with SIGKILL after its first checkpoint; the retry resumes from that checkpoint, every finished stage is
 * skipped ("already complete ...: skipped") with its files untouched (same mtimes and checksums), the exit
 * codes say success or failure, and the last stage writes the report. Also checks the CLI's log level in
 * real stage runs: INFO lines only with {@code --verbose}.
 */
class ScheduledStagesIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** The shortened demo (PipelineDemoTest's) with enough training rounds to be killed between checkpoints. */
    static String config(Path out) throws Exception {
        ObjectNode c = (ObjectNode) YAML.readTree(PipelineDemoTest.smallConfig(out));
        ((ObjectNode) c.get("train")).put("rounds", 16).put("checkpoint_every", 2);
        ((ObjectNode) c.get("lora_drop")).put("rounds", 2).put("warmup_rounds", 1);
        return YAML.writeValueAsString(c);
    }

    /** Every file under {@code dir}: relative path → mtime and SHA-256. */
    static Map<String, String> snapshot(Path dir) throws Exception {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                byte[] sha = MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p));
                m.put(dir.relativize(p).toString(), Files.getLastModifiedTime(p).toMillis() + " " + HexFormat.of().formatHex(sha));
            }
        }
        assertFalse(m.isEmpty(), dir + " is empty");
        return m;
    }

    private static void assertSkipped(CliProcess.Result r, Path out, String... stages) {
        for (String s : stages) {
            String line = "[" + s + "] already complete in " + out.resolve("stages").resolve(s).toUri().toString().replaceAll("/$", "") + ": skipped";
            assertTrue(r.out().lines().anyMatch(l -> l.equals(line.replace("file:///", "file:/"))), "expected '" + line + "' in:\n" + r.out());
        }
    }

    private static void assertQuiet(CliProcess.Result r) {
        assertEquals(List.of(), CliProcess.infoOrSlf4jLines(r.err()), "quiet by default: no INFO and no SLF4J lines");
    }

    @Test
    void stagesInDagOrderSurviveAKilledTrainAndTheRetrySkipsWhatIsDone(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        Path cfg = tmp.resolve("small.yaml");
        Files.writeString(cfg, config(out));
        Path logs = tmp.resolve("logs");

        CliProcess.Result bad = CliProcess.run(logs, "bad", 120, "tokenize", "--config", tmp.resolve("missing.yaml").toString());
        assertEquals(1, bad.code(), "a failed stage exits non-zero, so the scheduler retries or stops: " + bad.err());
        assertTrue(bad.err().contains("missing.yaml"), bad.err());

        CliProcess.Result tokenize = CliProcess.run(logs, "tokenize", 300, "tokenize", "--config", cfg.toString(), "--verbose");
        assertEquals(0, tokenize.code(), tokenize.err());
        assertTrue(tokenize.err().lines().anyMatch(l -> l.matches("^\\S+ \\S+ INFO SparkContext: Running Spark version .*")), "--verbose: Spark's INFO lines");
        assertFalse(tokenize.err().contains("SLF4J"), tokenize.err());
        assertTrue(Files.exists(out.resolve("stages/tokenize/_SUCCESS")) && Files.exists(out.resolve("stages/tokenizer/_SUCCESS")));
        Map<String, String> shards = snapshot(out.resolve("shards"));
        Map<String, String> tokenizeMarkers = snapshot(out.resolve("stages/tokenize"));

        // train: pretrain runs first, then training; SIGKILL once the first checkpoint is in place
        CliProcess.Started train = CliProcess.start(logs, "train-killed", Map.of(), "train", "--config", cfg.toString());
        Path latest = out.resolve("checkpoints/LATEST");
        long deadline = System.nanoTime() + 300_000_000_000L;
        while (!Files.exists(latest) && train.process().isAlive() && System.nanoTime() < deadline) Thread.sleep(100);
        assertTrue(Files.exists(latest), "no checkpoint before the train process ended or 300 s passed:\n" + Files.readString(train.err()));
        train.process().destroyForcibly();
        CliProcess.Result killed = train.await(60);
        assertEquals(137, killed.code(), "killed by SIGKILL");
        assertFalse(Files.exists(out.resolve("stages/train/_SUCCESS")), "the killed stage is not marked complete");
        assertFalse(Files.exists(out.resolve("adapter")), "the killed stage left no final adapter");
        assertTrue(killed.out().contains("[tokenize] already complete"), killed.out());
        Map<String, String> base = snapshot(out.resolve("base"));

        // the scheduler's retry of the train task
        CliProcess.Result retry = CliProcess.run(logs, "train-retry", 300, "train", "--config", cfg.toString());
        assertEquals(0, retry.code(), retry.err());
        assertQuiet(retry);
        assertSkipped(retry, out, "tokenizer", "tokenize", "pretrain");
        assertTrue(retry.out().contains("[train] running"), retry.out());
        JsonNode trained = JSON.readTree(out.resolve("stages/train/result.json").toFile());
        int resumed = trained.path("resumed_from_round").asInt(-1);
        assertTrue(resumed >= 2 && resumed < 16 && resumed % 2 == 0, "resumed from the last checkpoint, not from scratch: " + resumed);
        assertEquals(16 - resumed, trained.path("rounds").asInt(), "only the remaining rounds ran");
        Map<String, String> adapter = snapshot(out.resolve("adapter"));

        CliProcess.Result drop = CliProcess.run(logs, "lora-drop", 300, "lora-drop", "--config", cfg.toString());
        assertEquals(0, drop.code(), drop.err());
        assertQuiet(drop);
        assertSkipped(drop, out, "tokenizer", "tokenize", "pretrain", "train");

        CliProcess.Result evaluate = CliProcess.run(logs, "evaluate", 300, "evaluate", "--config", cfg.toString());
        assertEquals(0, evaluate.code(), evaluate.err());
        assertQuiet(evaluate);
        assertSkipped(evaluate, out, "tokenizer", "tokenize", "pretrain", "train");
        assertTrue(evaluate.out().contains("report: " + out.resolve("report.html").toUri().toString().replace("file:///", "file:/")), evaluate.out());

        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        for (String stage : List.of("tokenizer", "tokenize", "pretrain", "train", "lora_drop", "full_finetune", "eval")) {
            assertTrue(List.of("done", "skipped").contains(report.path(stage).path("status").asText()), stage + ": " + report.path(stage));
        }
        for (String m : List.of("base", "adapted", "merged")) assertTrue(report.path("eval").path(m).path("perplexity").asDouble() > 1, m);
        assertTrue(Files.exists(out.resolve("report.html")));
        for (String s : List.of("tokenizer", "tokenize", "pretrain", "train", "lora_drop", "full_finetune", "evaluate")) {
            assertTrue(Files.exists(out.resolve("stages").resolve(s).resolve("_SUCCESS")), s);
        }
        // finished stages' outputs were left alone by every later process
        assertEquals(shards, snapshot(out.resolve("shards")));
        assertEquals(tokenizeMarkers, snapshot(out.resolve("stages/tokenize")));
        assertEquals(base, snapshot(out.resolve("base")));
        assertEquals(adapter, snapshot(out.resolve("adapter")));
    }
}
