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

    /** QLoRA in one process: over the NF4 base, with AdamW's moments memory-mapped or not, the same adapter bytes. */
    @Test
    void qloraWithMappedOptimizerStateTrainsTheSameAdapterAsInMemory(@TempDir Path dir) throws Exception {
        Path data = setUp(dir);
        List<String> mem = new ArrayList<>(List.of(train(dir, data, "qlora-mem")));
        mem.addAll(List.of("--quantization", "nf4"));
        List<String> mapped = new ArrayList<>(List.of(train(dir, data, "qlora-mapped")));
        Path spill = dir.resolve("spill");
        Files.createDirectories(spill);
        mapped.addAll(List.of("--quantization", "nf4", "--optimizer-state", "mapped", "--spill-dir", spill.toString()));
        assertEquals(0, SparkLoraCli.run(mem.toArray(String[]::new)));
        assertEquals(0, SparkLoraCli.run(mapped.toArray(String[]::new)));
        byte[] a = Files.readAllBytes(dir.resolve("qlora-mem/adapter/adapter_model.safetensors"));
        assertArrayEquals(a, Files.readAllBytes(dir.resolve("qlora-mapped/adapter/adapter_model.safetensors")), "mapped moments step exactly as in memory");
        assertEquals(0, SparkLoraCli.run(train(dir, data, "fp32")));
        assertFalse(java.util.Arrays.equals(a, Files.readAllBytes(dir.resolve("fp32/adapter/adapter_model.safetensors"))),
                "over the NF4 base the adapter trains differently from over fp32: the quantization took effect");
        try (var files = Files.list(spill)) {
            assertEquals(0, files.count(), "the moment files are deleted when training ends");
        }
        List<String> bad = new ArrayList<>(List.of(train(dir, data, "bad")));
        bad.addAll(List.of("--optimizer-state", "disk"));
        assertEquals(1, SparkLoraCli.run(bad.toArray(String[]::new)));
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
