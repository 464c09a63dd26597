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

/** train --local and evaluate --local end to end on a small model and corpus made here. */
class TrainLocalTest {

    private static Path setUp(Path dir) throws Exception {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            docs.add("Record " + i + ": the pipeline reads shards, trains adapters and writes reports. "
                    + "Only the small matrices move between executors, never the frozen base.");
        }
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        ByteLevelBpeTrainer.train(docs, 300, model.resolve("tokenizer.json"));
        HfModelDirectory.save(TransformerLM.randomInit(ModelConfig.gpt2(300, 16, 2, 2, 64), 5), dir.resolve("base"), DataType.FLOAT, model);
        Path data = dir.resolve("data.jsonl");
        StringBuilder sb = new StringBuilder();
        for (String d : docs) sb.append("{\"text\": \"").append(d).append("\"}\n");
        Files.writeString(data, sb.toString());
        return data;
    }

    private static String[] train(Path dir, Path data, String out) {
        return new String[]{"train", "--local", "--model", dir.resolve("base").toString(), "--data", data.toString(),
                "--adapter", "type=lora,r=4,alpha=8,targets=c_attn+c_fc,dropout=0.1", "--out", dir.resolve(out).toString(),
                "--steps", "6", "--batch", "2", "--seq", "32", "--lr", "5e-3", "--seed", "7"};
    }

    @Test
    void trainsReproduciblyAndWritesAdapterMetricsAndSummary(@TempDir Path dir) throws Exception {
        Path data = setUp(dir);
        assertEquals(0, SparkLoraCli.run(train(dir, data, "run1")));
        assertEquals(0, SparkLoraCli.run(train(dir, data, "run2")));
        Path a1 = dir.resolve("run1/adapter/adapter_model.safetensors"), a2 = dir.resolve("run2/adapter/adapter_model.safetensors");
        assertArrayEquals(Files.readAllBytes(a1), Files.readAllBytes(a2), "same seed, same adapter bytes");
        List<String> metrics = Files.readAllLines(dir.resolve("run1/metrics.jsonl"));
        assertEquals(6, metrics.size());
        assertTrue(metrics.get(5).contains("\"step\":6"));
        String summary = Files.readString(dir.resolve("run1/summary.json"));
        assertTrue(summary.contains("eval_perplexity_after") && summary.contains("trainable_params"), summary);
        assertFalse(Files.exists(dir.resolve("run1/metrics.jsonl.tmp")));
        assertEquals(0, SparkLoraCli.run(new String[]{"evaluate", "--local", "--model", dir.resolve("base").toString(),
                "--data", data.toString(), "--adapter", dir.resolve("run1/adapter").toString(), "--seq", "32"}));
    }

    @Test
    void badDataIsReportedWithItsLocation(@TempDir Path dir) throws Exception {
        setUp(dir);
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"text\": \"fine\"}\n{\"body\": \"no text field\"}\n");
        assertEquals(1, SparkLoraCli.run(train(dir, bad, "bad-run")));
        Path latin1 = dir.resolve("latin1.txt");
        Files.write(latin1, new byte[]{'c', 'a', 'f', (byte) 0xE9});
        assertEquals(1, SparkLoraCli.run(train(dir, latin1, "bad-run2")));
        assertFalse(Files.exists(dir.resolve("bad-run/adapter")));
    }
}
