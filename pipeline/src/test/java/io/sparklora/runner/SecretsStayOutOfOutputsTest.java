package io.sparklora.runner;

import io.sparklora.api.TinyBase;
import io.sparklora.spark.SparkSetup;
import io.sparklora.util.Redaction;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.WriterAppender;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.layout.PatternLayout;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

/**
 * A pipeline run whose Spark and Hadoop configurations hold credentials leaves none of them in report.json,
 * report.html, metrics.jsonl, the stages' result.json, the console lines, anything else printed to stdout or stderr,
 * or the log4j log (captured at INFO); nor in the configuration text Spark logs with {@code spark.logConf} and shows in
 * its UI and event log ({@code SparkConf.toDebugString}, which in this module's test classpath is checked directly:
 * SLF4J has no binding here, so Spark's own log lines go nowhere). A failing stage whose error names a URI with a
 * password in its user-info reports it redacted.
 */
class SecretsStayOutOfOutputsTest {
    // unique markers: found anywhere means leaked
    static final String S3_SECRET = "S3SECRET-c0ffee-1137";
    static final String AZURE_KEY = "AZUREKEY-f00d-4242";
    static final String S3_ACCESS = "AKIAMARKER5150";
    static final String SESSION_TOKEN = "SESSIONTOKEN-9a9a-007";
    static final String URI_PASSWORD = "UriPassw0rd-6502";
    static final List<String> MARKERS = List.of(S3_SECRET, AZURE_KEY, S3_ACCESS, SESSION_TOKEN, URI_PASSWORD);

    /** Everything log4j logs at INFO and above while open (Spark's, Hadoop's and ours). */
    static final class LogCapture implements AutoCloseable {
        final StringWriter text = new StringWriter();
        private final LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
        private final WriterAppender appender;
        private final Level before;

        LogCapture() {
            // Spark configures log4j once, on its first log line; do that now, or it would replace this appender
            new org.apache.spark.SparkConf(false).initializeLogIfNecessary(false);
            appender = WriterAppender.newBuilder().setName("secrets-capture").setTarget(text)
                    .setLayout(PatternLayout.newBuilder().withPattern("%p %c: %m%n%ex").build()).build();
            appender.start();
            LoggerConfig root = ctx.getConfiguration().getRootLogger();
            before = root.getLevel();
            root.addAppender(appender, Level.INFO, null);
            root.setLevel(Level.INFO);
            ctx.updateLoggers();
        }

        @Override
        public void close() {
            LoggerConfig root = ctx.getConfiguration().getRootLogger();
            root.removeAppender(appender.getName());
            root.setLevel(before);
            ctx.updateLoggers();
            appender.stop();
        }
    }

    static void assertNoMarker(String where, String text) {
        for (String m : MARKERS) assertFalse(text.contains(m), "secret " + m + " leaked into " + where);
    }

    @Test
    void credentialsInTheConfigurationsAppearInNoOutput(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: secrets",
                "output: " + out,
                "spark: {conf: {spark.hadoop.fs.s3a.secret.key: " + S3_SECRET + ", spark.logConf: 'true',"
                        + " spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net: " + AZURE_KEY + "}}",
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}",
                "adapter: {type: lora, r: 2, targets: [c_attn]}",
                "train: {rounds: 2, batch_size: 4, lr: 1.0e-2, warmup: 0, checkpoint_every: 1}",
                "lora_drop: {enabled: false}",
                "evaluate: {samples: 1, sample_tokens: 4, sample_prompt_tokens: 4}", ""), "secrets.yaml");
        ByteArrayOutputStream console = new ByteArrayOutputStream(), std = new ByteArrayOutputStream();
        String log, sparkConfText;
        PrintStream stdout = System.out, stderr = System.err;
        System.setOut(new PrintStream(std, true, StandardCharsets.UTF_8));
        System.setErr(System.out);
        try (LogCapture capture = new LogCapture()) {
            try (JavaSparkContext sc = SparkSetup.context("secrets", "local[2]", cfg.spark.conf)) {
                sc.hadoopConfiguration().set("fs.s3a.access.key", S3_ACCESS);
                sc.hadoopConfiguration().set("fs.s3a.session.token", SESSION_TOKEN);
                new PipelineRunner(sc, cfg, new PrintStream(console, true, StandardCharsets.UTF_8)).run(Set.of());
                sparkConfText = sc.getConf().toDebugString();
            }
            log = capture.text.toString();
        } finally {
            System.setOut(stdout);
            System.setErr(stderr);
        }
        // the run did write what is checked; Spark's text of its configuration shows the keys with their values redacted
        assertEquals("done", new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.resolve("report.json").toFile())
                .path("eval").path("status").asText());
        assertTrue(sparkConfText.contains("spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net=" + Redaction.REDACTED), sparkConfText);
        assertTrue(console.toString(StandardCharsets.UTF_8).contains("[train] done"), console.toString(StandardCharsets.UTF_8));

        assertNoMarker("Spark's configuration text (spark.logConf, UI, event log)", sparkConfText);
        assertNoMarker("the log", log);
        assertNoMarker("the console", console.toString(StandardCharsets.UTF_8));
        assertNoMarker("stdout and stderr", std.toString(StandardCharsets.UTF_8));
        List<Path> written = new ArrayList<>(List.of(out.resolve("report.json"), out.resolve("report.html"), out.resolve("metrics.jsonl")));
        try (var files = Files.walk(out.resolve("stages"))) {
            files.filter(p -> p.getFileName().toString().equals("result.json")).forEach(written::add);
        }
        assertTrue(written.size() >= 6, written.toString());
        for (Path f : written) assertNoMarker(out.relativize(f).toString(), Files.readString(f));
    }

    @Test
    void aFailingStageReportsAUriWithItsPasswordRedacted(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path out = tmp.resolve("run");
        // a URI with user-info, which the local file system refuses with a message that quotes it whole
        String adapt = "file://etl:" + URI_PASSWORD + "@datahost" + tmp.resolve("data/dataset.yaml");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: failing",
                "output: " + out,
                "datasets: {adapt: '" + adapt + "'}",
                "base: {path: " + base + "}",
                "lora_drop: {enabled: false}", ""), "failing.yaml");
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        PipelineRunner.StageFailedException e;
        try (JavaSparkContext sc = SparkSetup.context("secrets", "local[1]", Map.of())) {
            PipelineRunner runner = new PipelineRunner(sc, cfg, new PrintStream(console, true, StandardCharsets.UTF_8));
            e = assertThrows(PipelineRunner.StageFailedException.class, () -> runner.run(Set.of()));
        }
        // the original error quoted the URI whole; the cause the stage's exception carries is its scrubbed copy, so
        // a stack trace that a scheduler or notebook logs cannot leak it either
        java.io.StringWriter trace = new java.io.StringWriter();
        e.printStackTrace(new java.io.PrintWriter(trace));
        assertNoMarker("the stage's stack trace", trace.toString());
        assertInstanceOf(Redaction.RedactedException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("file://" + Redaction.REDACTED + "@datahost"), e.getCause().getMessage());
        assertTrue(trace.toString().contains(((Redaction.RedactedException) e.getCause()).originalClass() + ": "),
                "the trace still names the original exception's class: " + trace);
        assertTrue(e.getMessage().startsWith("tokenize: ") && e.getMessage().contains("file://" + Redaction.REDACTED + "@datahost"),
                e.getMessage());
        assertNoMarker("the stage's error", e.getMessage());
        String report = Files.readString(out.resolve("report.json"));
        assertTrue(report.contains("\"failed\""), report);
        assertNoMarker("report.json", report);
        assertNoMarker("report.html", Files.readString(out.resolve("report.html")));
        assertNoMarker("the console", console.toString(StandardCharsets.UTF_8));
    }
}
