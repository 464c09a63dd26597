package io.sparklora.runner;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.TinyBase;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.TrainCheckpoint;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A pipeline with {@code jobs:} on local[2] over a tiny base: each job's adapter is the one the one-adapter pipeline
 * trains with that job's settings alone (fp32 rounding), and its evaluation (one mixed-adapter pass for all jobs and the
 * base) gives the one-adapter evaluate stage's figures for "adapted" and "base"; a job whose dataset is bad fails alone,
 * the run fails at its end, and a rerun after the fix trains only that job.
 */
class PipelineJobsTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    static final ObjectMapper JSON = new ObjectMapper();
    static JavaSparkContext sc;
    @TempDir static Path tmp;
    static Path base, mail, prose;

    static final String MAIL_ADAPTER = "{type: lora, r: 4, alpha: 8, dropout: 0.1, targets: [c_attn, c_fc]}";
    static final String MAIL_TRAIN = "{rounds: 3, sync: gradients, batch_size: 4, lr: 1.0e-2, warmup: 1, checkpoint_every: 2}";
    static final String PROSE_ADAPTER = "{type: dora, r: 2, targets: [c_attn]}";

    @BeforeAll
    static void start() throws IOException {
        sc = SparkSetup.local(2);
        base = TinyBase.write(tmp.resolve("base"), 7);
        mail = labelled(tmp.resolve("mail"));
        prose = TinyBase.writeDataset(tmp.resolve("prose"), TinyBase.documents(30, 2));
    }

    @AfterAll
    static void stop() { sc.stop(); }

    /** A labelled dataset: short sentences about the sea labelled "sea", about the hills labelled "hill". */
    static Path labelled(Path dir) throws IOException {
        Files.createDirectories(dir);
        Random r = new Random(3);
        String[] subjects = {"the river", "a stone", "the light", "our ship", "the north wind"};
        for (String label : List.of("sea", "hill")) {
            List<String> lines = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                String text = subjects[r.nextInt(subjects.length)] + (label.equals("sea") ? " sails past the sea" : " falls on the green hill");
                lines.add(JSON.createObjectNode().put("text", text).toString());
            }
            Files.write(dir.resolve(label + ".jsonl"), lines);
        }
        Path m = dir.resolve("dataset.yaml");
        Files.writeString(m, String.join("\n", "name: mail", "labels: [sea, hill]", "label_prompt: \"\\nLabel:\"", "sources:",
                "  - {name: sea, uri: sea.jsonl, format: jsonl, text_field: text, label: sea}",
                "  - {name: hill, uri: hill.jsonl, format: jsonl, text_field: text, label: hill}", ""));
        return m;
    }

    static String head(String name, Path out) {
        return String.join("\n", "name: " + name, "output: " + out, "base: {path: " + base + "}",
                "data: {seq_len: 32, partitions: 2, validation_fraction: 0.25}", "");
    }

    static JsonNode run(String yaml) throws IOException {
        return new PipelineRunner(sc, PipelineConfig.parse(yaml, "test.yaml"), QUIET).run(Set.of());
    }

    static Map<String, INDArray> tensors(Path adapterDir) {
        return TrainCheckpoint.readAll(adapterDir.resolve(PeftAdapterFormat.WEIGHTS_FILE));
    }

    static void assertSameTensors(Path want, Path got, String job) {
        Map<String, INDArray> w = tensors(want), g = tensors(got);
        assertEquals(w.keySet(), g.keySet(), job);
        for (String k : w.keySet()) {
            double scale = Math.max(1, w.get(k).amaxNumber().doubleValue());
            assertEquals(0, g.get(k).sub(w.get(k)).amaxNumber().doubleValue(), 1e-5 * scale, job + ": " + k);
        }
    }

    static void assertSameFigures(JsonNode want, JsonNode got, String what) {
        assertTrue(want.path("loss").isNumber() && got.path("loss").isNumber(), what + ": " + want + " / " + got);
        assertEquals(want.path("loss").asDouble(), got.path("loss").asDouble(), 1e-5 * want.path("loss").asDouble(), what + " loss");
        assertEquals(want.path("tokens").asLong(), got.path("tokens").asLong(), what + " tokens");
        assertEquals(want.path("examples").asLong(), got.path("examples").asLong(), what + " examples");
        if (want.has("accuracy")) {
            assertEquals(want.path("accuracy").asDouble(), got.path("accuracy").asDouble(), 1e-12, what + " accuracy");
            assertEquals(want.path("accuracy_norm").asDouble(), got.path("accuracy_norm").asDouble(), 1e-12, what + " accuracy_norm");
        }
    }

    @Test
    void eachJobTrainsAndEvaluatesAsTheOneAdapterPipelineDoesWithItsSettings() throws Exception {
        Path out = tmp.resolve("many");
        JsonNode report = run(head("many", out) + String.join("\n",
                "datasets: {adapt: " + mail + "}",
                "adapter: " + MAIL_ADAPTER,
                "train: " + MAIL_TRAIN,
                "evaluate: {samples: 1, sample_tokens: 4, batch_size: 3}",
                "jobs:",
                "  - {name: mail}",
                "  - name: prose",
                "    dataset: " + prose,
                "    adapter: " + PROSE_ADAPTER,
                "    train: {rounds: 2, lr: 5.0e-3, seed: 7, batch_size: 2}", ""));
        JsonNode jobsTrained = report.path("train").path("jobs");
        assertEquals("done", report.path("train").path("status").asText(), report.path("train").toPrettyString());
        List<String> names = new ArrayList<>();
        jobsTrained.fieldNames().forEachRemaining(names::add);
        assertEquals(List.of("mail", "prose"), names);
        assertEquals("dora", jobsTrained.path("prose").path("method").asText());
        assertTrue(Files.isDirectory(out.resolve("jobs/mail/checkpoints")), "each job checkpoints under its own directory");
        assertTrue(Files.exists(out.resolve("jobs/prose/metrics.jsonl")));
        assertFalse(Files.exists(out.resolve("adapter")), "no one-adapter output with jobs");

        Path aloneMail = tmp.resolve("alone-mail"), aloneProse = tmp.resolve("alone-prose");
        JsonNode mailAlone = run(head("alone-mail", aloneMail) + String.join("\n", "datasets: {adapt: " + mail + "}", "adapter: " + MAIL_ADAPTER,
                "train: " + MAIL_TRAIN, "lora_drop: {enabled: false}", "evaluate: {samples: 0, batch_size: 8}", ""));
        JsonNode proseAlone = run(head("alone-prose", aloneProse) + String.join("\n", "datasets: {adapt: " + prose + "}", "adapter: " + PROSE_ADAPTER,
                "train: {rounds: 2, sync: gradients, batch_size: 2, lr: 5.0e-3, warmup: 1, seed: 7, checkpoint_every: 2}",
                "lora_drop: {enabled: false}", "evaluate: {samples: 0}", ""));

        // (a) the same tensors as the pipeline trains alone with the job's settings
        assertSameTensors(aloneMail.resolve("adapter"), out.resolve("adapters/mail"), "mail");
        assertSameTensors(aloneProse.resolve("adapter"), out.resolve("adapters/prose"), "prose");
        double moved = tensors(out.resolve("adapters/mail")).entrySet().stream().filter(e -> e.getKey().contains("lora_B"))
                .mapToDouble(e -> e.getValue().amaxNumber().doubleValue()).max().orElse(0);
        assertTrue(moved > 1e-4, "training must move lora_B off zero for the comparison to mean anything: " + moved);

        // (b) the same figures as the one-adapter evaluate stage, for the adapter and for the base on the same data
        JsonNode evalJobs = report.path("eval").path("jobs");
        for (String target : List.of("adapted", "base")) {
            assertSameFigures(mailAlone.path("eval").path(target), evalJobs.path("mail").path(target), "mail " + target);
            assertSameFigures(proseAlone.path("eval").path(target), evalJobs.path("prose").path(target), "prose " + target);
        }
        assertTrue(evalJobs.path("mail").path("adapted").path("examples").asLong() > 0, "the labelled job is scored on labels: " + evalJobs);
        assertEquals(mailAlone.path("eval").path("majority_class_accuracy").asDouble(), evalJobs.path("mail").path("majority_class_accuracy").asDouble(), 1e-12);
        assertEquals(mailAlone.path("eval").path("validation_examples_per_label"), evalJobs.path("mail").path("validation_examples_per_label"));
        assertEquals(1, evalJobs.path("prose").path("samples").size(), "one sample per job, generated in the mixed batch");
        assertFalse(evalJobs.path("prose").path("samples").get(0).path("adapted").asText().isEmpty());

        String html = Files.readString(out.resolve("report.html"));
        assertTrue(html.contains("id=\"job-mail\"") && html.contains("id=\"job-prose\"") && html.contains("Training loss by job"), "one section per job");
    }

    @Test
    void aJobWithBadDataFailsAloneAndARerunAfterTheFixTrainsOnlyIt() throws Exception {
        Path broken = tmp.resolve("broken");
        Files.createDirectories(broken);
        Path manifest = broken.resolve("dataset.yaml");
        Files.writeString(manifest, "name: broken\nsources: [{name: missing, uri: missing.txt, format: text}]\n");
        Path out = tmp.resolve("partial");
        String yaml = head("partial", out) + String.join("\n",
                "adapter: {type: lora, r: 2, targets: [c_attn]}",
                "train: {rounds: 2, batch_size: 2, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "evaluate: {samples: 0}",
                "jobs:",
                "  - {name: good, dataset: " + prose + "}",
                "  - {name: broken, dataset: " + manifest + "}", "");
        PipelineRunner.StageFailedException e = assertThrows(PipelineRunner.StageFailedException.class, () -> run(yaml));
        assertTrue(e.getMessage().contains("1 of 2 jobs failed") && e.getMessage().contains("job 'broken'") && e.getMessage().contains("missing.txt"),
                e.getMessage());
        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        assertEquals("partial", report.path("status").asText());
        assertEquals("partial", report.path("train").path("status").asText());
        assertEquals("done", report.path("train").path("jobs").path("good").path("status").asText(), report.path("train").toPrettyString());
        assertEquals("failed", report.path("train").path("jobs").path("broken").path("status").asText());
        assertTrue(report.path("train").path("jobs").path("broken").path("error").asText().contains("missing.txt"), report.path("train").toPrettyString());
        assertTrue(Double.isFinite(report.path("eval").path("jobs").path("good").path("adapted").path("loss").asDouble(Double.NaN)),
                "the good job is evaluated: " + report.path("eval").toPrettyString());
        assertEquals("failed", report.path("eval").path("jobs").path("broken").path("status").asText());
        assertTrue(Files.exists(out.resolve("adapters/good").resolve(PeftAdapterFormat.WEIGHTS_FILE)));
        assertFalse(Files.exists(out.resolve("adapters/broken")));
        assertFalse(Files.exists(out.resolve("stages/train/_SUCCESS")), "a partial stage is not complete");
        assertTrue(Files.readString(out.resolve("report.html")).contains("Some jobs failed"));

        Files.writeString(broken.resolve("missing.txt"), String.join("\n\n", TinyBase.documents(20, 9)) + "\n");
        Map<String, INDArray> goodBefore = tensors(out.resolve("adapters/good"));
        JsonNode fixed = run(yaml);
        assertEquals("skipped", fixed.path("train").path("jobs").path("good").path("status").asText(), "the trained job is not trained again");
        assertEquals("done", fixed.path("train").path("jobs").path("broken").path("status").asText());
        assertEquals("done", fixed.path("eval").path("status").asText());
        assertTrue(Files.exists(out.resolve("stages/train/_SUCCESS")));
        assertEquals(goodBefore.keySet(), tensors(out.resolve("adapters/good")).keySet());
        for (String k : goodBefore.keySet()) assertEquals(goodBefore.get(k), tensors(out.resolve("adapters/good")).get(k), k);
    }


    @Test
    void aJobWhoseTrainingFailsFailsAloneAndTheOthersAreEvaluated() throws Exception {
        Path out = tmp.resolve("diverges");
        String yaml = head("diverges", out) + String.join("\n",
                "datasets: {adapt: " + prose + "}",
                "adapter: {type: lora, r: 2, targets: [c_attn]}",
                "train: {rounds: 3, batch_size: 2, lr: 1.0e-2, warmup: 0, checkpoint_every: 0, max_grad_norm: 0}",
                "evaluate: {samples: 0}",
                "jobs:",
                "  - {name: steady}",
                "  - {name: blowup, train: {lr: 1.0e+30}}", "");
        PipelineRunner.StageFailedException e = assertThrows(PipelineRunner.StageFailedException.class, () -> run(yaml));
        assertTrue(e.getMessage().contains("1 of 2 jobs failed") && e.getMessage().contains("job 'blowup'"), e.getMessage());
        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        JsonNode blowup = report.path("train").path("jobs").path("blowup");
        assertEquals("failed", blowup.path("status").asText(), report.path("train").toPrettyString());
        assertTrue(blowup.path("error").asText().startsWith("job 'blowup'"), blowup.toPrettyString());
        assertEquals("done", report.path("train").path("jobs").path("steady").path("status").asText());
        assertTrue(Double.isFinite(report.path("eval").path("jobs").path("steady").path("adapted").path("loss").asDouble(Double.NaN)), report.path("eval").toPrettyString());
        assertTrue(report.path("eval").path("jobs").path("blowup").path("error").asText().contains("not trained"), report.path("eval").toPrettyString());
    }
}
