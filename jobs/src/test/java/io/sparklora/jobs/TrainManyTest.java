package io.sparklora.jobs;

import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.ByteLevelBpeTrainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * train-many --local end to end: two adapters of different methods on different data trained together write the
 * same adapter bytes as train --local writes for each alone; a job whose data cannot be read fails alone.
 */
class TrainManyTest {

    private static void setUp(Path dir) throws Exception {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 40; i++) docs.add("Record " + i + ": the pipeline reads shards, trains adapters and writes reports.");
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        ByteLevelBpeTrainer.train(docs, 300, model.resolve("tokenizer.json"));
        HfModelDirectory.save(TransformerLM.randomInit(ModelConfig.gpt2(300, 16, 2, 2, 64), 5), dir.resolve("base"), DataType.FLOAT, model);
        StringBuilder a = new StringBuilder(), b = new StringBuilder();
        for (String d : docs) a.append("{\"text\": \"").append(d).append("\"}\n");
        for (int i = 0; i < 40; i++) b.append("{\"text\": \"Mail ").append(i).append(" asks for the quarterly report by Friday.\"}\n");
        Files.writeString(dir.resolve("records.jsonl"), a.toString());
        Files.writeString(dir.resolve("mail.jsonl"), b.toString());
    }

    private static final String LORA = "type=lora,r=4,alpha=8,targets=c_attn+c_fc,dropout=0.1";
    private static final String DORA = "type=dora,r=2,alpha=4,targets=c_attn";

    @Test
    void eachAdapterMatchesTrainingItAloneAndABadJobFailsAlone(@TempDir Path dir) throws Exception {
        setUp(dir);
        Files.writeString(dir.resolve("jobs.yaml"), String.join("\n",
                "jobs:",
                "  - {name: records, data: " + dir.resolve("records.jsonl") + ", adapter: \"" + LORA + "\"}",
                "  - {name: missing, data: " + dir.resolve("nowhere.jsonl") + ", adapter: \"" + LORA + "\"}",
                "  - {name: mail, data: " + dir.resolve("mail.jsonl") + ", adapter: \"" + DORA + "\", steps: 4, lr: 1.0e-2}",
                ""));
        String[] common = {"--model", dir.resolve("base").toString(), "--batch", "2", "--seq", "32", "--lr", "5e-3", "--seed", "7", "--steps", "6",
                "--threads", "1"};
        List<String> many = new ArrayList<>(List.of("train-many", "--local", "--jobs", dir.resolve("jobs.yaml").toString(), "--out", dir.resolve("many").toString()));
        many.addAll(List.of(common));
        io.sparklora.model.EngineThreads.set(2);
        assertEquals(1, SparkLoraCli.run(many.toArray(String[]::new)), "one job failed, so the run reports failure");
        assertEquals(1, io.sparklora.model.EngineThreads.current(), "--threads sets the engine's threads");
        String summary = Files.readString(dir.resolve("many/summary.json"));
        assertTrue(summary.contains("\"name\" : \"missing\"") && summary.contains("\"status\" : \"failed\"") && summary.contains("does not exist"), summary);
        assertFalse(Files.exists(dir.resolve("many/missing")));

        for (String[] job : new String[][]{{"records", LORA, "6", "5e-3"}, {"mail", DORA, "4", "1.0e-2"}}) {
            List<String> alone = new ArrayList<>(List.of("train", "--local", "--data", dir.resolve(job[0] + ".jsonl").toString(), "--adapter", job[1],
                    "--out", dir.resolve("alone-" + job[0]).toString()));
            alone.addAll(List.of(common));
            alone.addAll(List.of("--steps", job[2], "--lr", job[3]));
            assertEquals(0, SparkLoraCli.run(alone.toArray(String[]::new)));
            byte[] want = Files.readAllBytes(dir.resolve("alone-" + job[0] + "/adapter/adapter_model.safetensors"));
            byte[] got = Files.readAllBytes(dir.resolve("many/" + job[0] + "/adapter/adapter_model.safetensors"));
            assertEquals(want.length, got.length, job[0]);
            // the shared matmuls run over a larger batch, so fp32 rounding may differ in the last bits: compare values
            try (var w = io.sparklora.checkpoint.SafetensorsReader.open(dir.resolve("alone-" + job[0] + "/adapter/adapter_model.safetensors"));
                 var g = io.sparklora.checkpoint.SafetensorsReader.open(dir.resolve("many/" + job[0] + "/adapter/adapter_model.safetensors"))) {
                assertEquals(w.names(), g.names());
                for (String k : w.names()) assertEquals(0, w.read(k).sub(g.read(k)).amaxNumber().doubleValue(), 1e-5, job[0] + ": " + k);
            }
            assertEquals(Integer.parseInt(job[2]), Files.readAllLines(dir.resolve("many/" + job[0] + "/metrics.jsonl")).size());
            assertTrue(Files.readString(dir.resolve("many/" + job[0] + "/summary.json")).contains("eval_loss_after"));
        }
    }

    @Test
    void onSparkEveryAdapterIsWrittenWithItsMetricsAndABadJobFailsAlone(@TempDir Path dir) throws Exception {
        setUp(dir);
        Files.writeString(dir.resolve("jobs.yaml"), String.join("\n",
                "jobs:",
                "  - {name: records, data: " + dir.resolve("records.jsonl") + ", adapter: \"" + LORA + "\"}",
                "  - {name: mail, data: " + dir.resolve("mail.jsonl") + ", adapter: \"" + DORA + "\", steps: 4, lr: 1.0e-2}",
                "  - {name: elsewhere, shards: " + dir.resolve("no-shards") + ", adapter: \"" + LORA + "\"}",
                ""));
        int rc = SparkLoraCli.run(new String[]{"train-many", "--master", "local[2]", "--partitions", "2", "--jobs", dir.resolve("jobs.yaml").toString(),
                // URIs, as on a cluster (hdfs://...): the model and the outputs go through Hadoop's file systems
                "--out", dir.resolve("spark").toUri().toString(), "--model", dir.resolve("base").toUri().toString(), "--batch", "2", "--seq", "32", "--lr", "5e-3",
                "--seed", "7", "--steps", "6", "--checkpoint-every", "3"});
        assertEquals(1, rc, "one job failed, so the run reports failure");
        String summary = Files.readString(dir.resolve("spark/summary.json"));
        assertTrue(summary.contains("\"name\" : \"elsewhere\"") && summary.contains("\"status\" : \"failed\""), summary);
        for (String[] job : new String[][]{{"records", "6"}, {"mail", "4"}}) {
            Path d = dir.resolve("spark/" + job[0]);
            assertTrue(Files.exists(d.resolve("adapter/adapter_model.safetensors")), job[0]);
            assertEquals(Integer.parseInt(job[1]), Files.readAllLines(d.resolve("metrics.jsonl")).size(), job[0] + ": one metrics line per round");
            String s = Files.readString(d.resolve("summary.json"));
            assertTrue(s.contains("\"status\" : \"trained\"") && s.contains("\"rounds\" : " + job[1]), s);
            assertTrue(Files.exists(d.resolve("checkpoints")), job[0] + ": its own checkpoints");
        }
    }

    @Test
    void refusesAJobsFileWithAnUnknownKeyNamingTheJob(@TempDir Path dir) throws Exception {
        setUp(dir);
        Files.writeString(dir.resolve("jobs.yaml"), "jobs:\n  - {name: a, data: x, adapter: \"" + LORA + "\", learning_rate: 1}\n");
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        java.io.PrintStream old = System.err;
        System.setErr(new java.io.PrintStream(err, true));
        try {
            assertEquals(1, SparkLoraCli.run(new String[]{"train-many", "--local", "--model", dir.resolve("base").toString(),
                    "--jobs", dir.resolve("jobs.yaml").toString(), "--out", dir.resolve("o").toString()}));
        } finally {
            System.setErr(old);
        }
        assertTrue(err.toString().contains("jobs[0]: unknown key 'learning_rate'"), err.toString());
        assertFalse(Files.exists(dir.resolve("o")), "nothing is written for a refused jobs file");
    }
}
