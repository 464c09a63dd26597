package io.sparklora.runner;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.api.TinyBase;
import io.sparklora.spark.SparkSetup;
import io.sparklora.storage.FullDiskFileSystem;
import io.sparklora.storage.StorageWriteException;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A disk that fills up while the pipeline writes: for each write that matters (the learned tokenizer, the token
 * shards, their manifest and {@code _SUCCESS}, the pretrained base, a training checkpoint, the final adapter,
 * {@code metrics.jsonl}, a stage's {@code result.json}, {@code report.json}) the run's output is on a
 * {@link FullDiskFileSystem} disk that fills up during exactly that write. The run must fail with the stage's name
 * and a message naming the file by its final name and the cause; nothing half-written may remain (no temporary,
 * no file or directory at a final name with partial content, no {@code _SUCCESS} of the failed stage; what was
 * complete before stays complete); and the same command, rerun once space is freed, must finish.
 */
class FullDiskPipelineTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String NO_SPACE = "No space left on device";
    private static JavaSparkContext sc;

    @BeforeAll
    static void startSpark() {
        sc = SparkSetup.local(2);
        FullDiskFileSystem.register(sc.hadoopConfiguration());
    }

    @AfterAll
    static void stopSpark() {
        if (sc != null) sc.stop();
    }

    /** What remains in the run's (local) directory after the failure. */
    @FunctionalInterface
    interface Remains {
        void check(Path run) throws IOException;
    }

    /** A write the disk fills up in: the path pattern (temporary names included), bytes written first, which match. */
    enum Write {
        TOKENIZER("tokenizer", "/tokenizer/\\.tokenizer\\.json\\.tmp-", 100, 1, "tokenizer/tokenizer.json",
                run -> assertFalse(Files.exists(run.resolve("tokenizer/tokenizer.json")))),
        SHARD("tokenize", "/shards/\\.adapt\\.tmp-[^/]+/train/\\.part-00001\\.arrow\\.tmp-", 64, 1, "shards/adapt/train/part-00001.arrow",
                run -> assertFalse(Files.exists(run.resolve("shards/adapt")), "no shard directory")),
        SHARD_MANIFEST("tokenize", "/shards/\\.adapt\\.tmp-[^/]+/\\.manifest\\.json\\.tmp-", 50, 1, "shards/adapt/manifest.json",
                run -> assertFalse(Files.exists(run.resolve("shards/adapt")), "no shard directory")),
        SHARD_SUCCESS("tokenize", "/shards/adapt/\\._SUCCESS\\.tmp-", 0, 1, "shards/adapt/_SUCCESS",
                run -> assertFalse(Files.exists(run.resolve("shards/adapt/_SUCCESS")), "the shards are not marked complete")),
        BASE_MODEL("pretrain", "/\\.base\\.tmp-[^/]+/model\\.safetensors", 1000, 1, "base/model.safetensors",
                run -> assertFalse(Files.exists(run.resolve("base")), "no base directory")),
        CHECKPOINT("train", "/checkpoints/\\.round-000002\\.tmp-[^/]+/optimizer\\.safetensors", 100, 1,
                "checkpoints/round-000002/optimizer.safetensors", run -> {
                    assertEquals("round-000001", Files.readString(run.resolve("checkpoints/LATEST")).strip());
                    assertEquals(List.of("LATEST", "round-000001"), names(run.resolve("checkpoints")), "round 2's checkpoint is absent");
                    assertEquals(List.of("adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "spark_lora.json", "state.json"),
                            names(run.resolve("checkpoints/round-000001")), "round 1's checkpoint is complete");
                }),
        ADAPTER("train", "/\\.adapter\\.tmp-[^/]+/adapter_model\\.safetensors", 100, 1, "adapter/adapter_model.safetensors", run -> {
            assertFalse(Files.exists(run.resolve("adapter")), "no adapter directory");
            assertEquals("round-000003", Files.readString(run.resolve("checkpoints/LATEST")).strip(), "the last checkpoint is intact");
        }),
        METRICS("train", "/\\.metrics\\.jsonl\\.tmp-", 10, 3, "metrics.jsonl", run -> {
            // the pretrain line, then train's round 1; round 2's rewrite failed
            List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
            assertEquals(2, lines.size(), lines.toString());
            assertEquals(1, JSON.readTree(lines.get(1)).path("round").asInt());
        }),
        STAGE_RESULT("train", "/stages/train/\\.result\\.json\\.tmp-", 10, 1, "stages/train/result.json", run -> {
            assertFalse(Files.exists(run.resolve("stages/train/result.json")));
            assertTrue(Files.exists(run.resolve("adapter/adapter_model.safetensors")), "the adapter itself was written whole");
        }),
        REPORT(null, "/\\.report\\.json\\.tmp-", 10, 1, "report.json",
                run -> assertFalse(Files.exists(run.resolve("report.json"))));

        final String stage;
        final String pathRegex;
        final long afterBytes;
        final int occurrence;
        final String target;
        final Remains remains;

        Write(String stage, String pathRegex, long afterBytes, int occurrence, String target, Remains remains) {
            this.stage = stage;
            this.pathRegex = pathRegex;
            this.afterBytes = afterBytes;
            this.occurrence = occurrence;
            this.target = target;
            this.remains = remains;
        }
    }

    @ParameterizedTest(name = "disk full while writing {0}: the run fails naming it, nothing half-written remains, a rerun finishes")
    @EnumSource(Write.class)
    void aDiskThatFillsUpFailsTheRunCleanlyAndARerunFinishes(Write w, @TempDir Path tmp) throws Exception {
        FullDiskFileSystem.Disk disk = FullDiskFileSystem.newDisk();
        Path run = tmp.resolve("run");
        String out = disk.uri(run);
        PipelineConfig cfg = config(tmp, out);

        disk.fillWhileWriting(w.pathRegex, w.afterBytes, w.occurrence);
        Exception e = assertThrows(Exception.class, () -> new PipelineRunner(sc, cfg, quiet()).run(Set.of()));
        assertTrue(disk.isFull(), "the disk filled up");
        String expected = (w.stage == null ? "" : w.stage + ": ") + "cannot write " + out + "/" + w.target + ": " + NO_SPACE;
        if (w == Write.SHARD) {
            // the two tokenize tasks write their train and validation parts at once: once the disk is full, any of the
            // four may fail first
            String anyPart = java.util.regex.Pattern.quote(expected).replace("train/part-00001", "\\E(train|validation)/part-0000[01]\\Q");
            assertTrue(e.getMessage().matches(anyPart), e.getMessage());
        } else {
            assertEquals(expected, e.getMessage());
        }
        assertInstanceOf(StorageWriteException.class, w.stage == null ? e : e.getCause(), "the cause is the storage's failure");
        if (w.stage != null) {
            assertFalse(Files.exists(run.resolve("stages/" + w.stage + "/_SUCCESS")), "the failed stage is not marked complete");
        }
        assertNoTemporaries(run);
        assertCompleteStagesReadBack(run);
        w.remains.check(run);

        disk.makeRoom();
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        JsonNode report = new PipelineRunner(sc, cfg, new PrintStream(console, true, StandardCharsets.UTF_8)).run(Set.of());
        assertTrue(Double.isFinite(report.path("eval").path("adapted").path("loss").asDouble(Double.NaN)), report.toPrettyString());
        for (String s : List.of("tokenizer", "tokenize", "pretrain", "train", "evaluate")) {
            assertTrue(Files.exists(run.resolve("stages/" + s + "/_SUCCESS")), s + " complete after the rerun");
        }
        if (w == Write.CHECKPOINT) {
            assertTrue(console.toString(StandardCharsets.UTF_8).contains("resuming after round 1"), "the rerun resumed from round 1's checkpoint");
        }
        assertNoTemporaries(run);
        assertCompleteStagesReadBack(run);
    }

    private static PipelineConfig config(Path tmp, String out) {
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        return PipelineConfig.parse(String.join("\n",
                "name: full-disk",
                "output: " + out,
                "datasets: {adapt: " + dataset + ", pretrain: " + dataset + "}",
                "tokenizer: {vocab_size: 300}",
                "base: {pretrain: {d_model: 16, layers: 1, heads: 2, steps: 4, batch_size: 4, lr: 1.0e-3}}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: lora, r: 2, targets: [c_attn]}",
                "train: {rounds: 3, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 1}",
                "lora_drop: {enabled: false}",
                "full_finetune: {enabled: false}",
                "evaluate: {samples: 0}", ""), "full-disk.yaml");
    }

    private static PrintStream quiet() {
        return new PrintStream(java.io.OutputStream.nullOutputStream());
    }

    /** Writers' temporaries contain ".tmp-"; none may survive a failure. */
    private static void assertNoTemporaries(Path run) throws IOException {
        if (!Files.exists(run)) return;
        try (Stream<Path> s = Files.walk(run)) {
            List<Path> left = s.filter(p -> p.getFileName().toString().contains(".tmp-")).toList();
            assertEquals(List.of(), left, "temporaries left behind");
        }
    }

    /** Every stage marked complete has a result.json that parses, and every JSON file in the run parses. */
    private static void assertCompleteStagesReadBack(Path run) throws IOException {
        if (!Files.exists(run)) return;
        try (Stream<Path> s = Files.walk(run)) {
            for (Path p : s.filter(p -> p.toString().endsWith(".json")).toList()) JSON.readTree(p.toFile());
        }
        Path stages = run.resolve("stages");
        if (!Files.exists(stages)) return;
        for (String st : names(stages)) {
            if (Files.exists(stages.resolve(st + "/_SUCCESS"))) {
                assertTrue(Files.exists(stages.resolve(st + "/result.json")), st + " is marked complete without its result");
            }
        }
    }

    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
