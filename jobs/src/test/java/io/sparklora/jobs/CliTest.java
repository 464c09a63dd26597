package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

class CliTest {

    private static String[] runCapturing(String... argv) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true));
        System.setErr(new PrintStream(err, true));
        int code;
        try {
            code = SparkLoraCli.run(argv);
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
        return new String[]{String.valueOf(code), out.toString(), err.toString()};
    }

    @Test
    void inspectNeedsOnlyConfigJsonAndPrintsTheKnownGpt2SmallCounts(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), ModelConfig.gpt2(50257, 768, 12, 12, 1024).toJson().toString());
        String[] r = runCapturing("inspect", "--model", dir.toString(), "--adapter", "type=lora,r=8,alpha=16,targets=c_attn");
        assertEquals("0", r[0], r[2]);
        assertEquals("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364", r[1].strip());
    }

    /** Counts worked out by hand for GPT-2 small (12 × c_attn, 768 → 2304), from config.json alone. */
    @Test
    void inspectCountsEveryMethodFromConfigJsonAlone(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), ModelConfig.gpt2(50257, 768, 12, 12, 1024).toJson().toString());
        String[][] expected = {
                // LoRA+ trains what LoRA trains; only the optimizer differs
                {"type=loraplus,r=8,alpha=16,targets=c_attn", "trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364"},
                // LoRA-FA: B only (8 × 2304 × 12); the frozen A still counts in all params
                {"type=lora_fa,r=8,alpha=16,targets=c_attn", "trainable params: 221,184 || all params: 124,734,720 || trainable%: 0.1773"},
                // DoRA: LoRA plus one magnitude per output (2304 × 12)
                {"type=lora,use_dora=true,r=8,alpha=16,targets=c_attn", "trainable params: 322,560 || all params: 124,762,368 || trainable%: 0.2585"},
                // VeRA: (r + out) per layer; the shared pair 256 × 768 + 2304 × 256 counts once in all params
                {"type=vera,r=256,targets=c_attn", "trainable params: 30,720 || all params: 125,256,960 || trainable%: 0.0245"}};
        for (String[] e : expected) {
            String[] r = runCapturing("inspect", "--model", dir.toString(), "--adapter", e[0]);
            assertEquals("0", r[0], r[2]);
            assertEquals(e[1], r[1].strip(), e[0]);
        }
        String[] unknown = runCapturing("inspect", "--model", dir.toString(), "--adapter", "type=dorra,r=8");
        assertEquals("1", unknown[0]);
        assertTrue(unknown[2].contains("unknown adapter type 'dorra'") && unknown[2].contains("dora, vera"), unknown[2]);
    }

    @Test
    void badInputGetsAClearMessageAndExitCode(@TempDir Path dir) throws Exception {
        String[] missing = runCapturing("inspect", "--model", dir.toString(), "--adapter", "r=8");
        assertEquals("1", missing[0]);
        assertTrue(missing[2].contains("config.json not found"), missing[2]);
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"gpt2\", \"n_embd\": 64,");
        String[] malformed = runCapturing("inspect", "--model", dir.toString(), "--adapter", "r=8");
        assertTrue(malformed[2].contains("malformed JSON") && malformed[2].contains("config.json"), malformed[2]);
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"bert\"}");
        assertTrue(runCapturing("inspect", "--model", dir.toString(), "--adapter", "r=8")[2].contains("unknown architecture model_type='bert'"));
        Files.writeString(dir.resolve("config.json"), ModelConfig.gpt2(100, 16, 2, 2, 32).toJson().toString());
        String[] badTarget = runCapturing("inspect", "--model", dir.toString(), "--adapter", "r=4,targets=q_proj");
        assertTrue(badTarget[2].contains("target module 'q_proj'") && badTarget[2].contains("c_attn"), badTarget[2]);
        String[] bigRank = runCapturing("inspect", "--model", dir.toString(), "--adapter", "r=32,targets=c_attn");
        assertTrue(bigRank[2].contains("r=32 exceeds"), bigRank[2]);
        String[] typo = runCapturing("inspect", "--modle", dir.toString());
        assertEquals("2", typo[0]);
        assertTrue(typo[2].contains("unknown option --modle"), typo[2]);
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"lora", "lora_fa", "dora", "vera"})
    void mergeWritesAHuggingFaceCheckpointThatEqualsTheAdaptedModel(String method, @TempDir Path dir) {
        ModelConfig cfg = ModelConfig.llama(40, 16, 2, 4, 2, 24, 32);
        TransformerLM base = TransformerLM.randomInit(cfg, 3);
        HfModelDirectory.save(base, dir.resolve("base"), DataType.FLOAT, null);
        TransformerLM adapted = HfModelDirectory.load(dir.resolve("base"));
        AttachedAdapter a = AttachedAdapter.attach(adapted, "default", AdapterConfig.of(method, 4, 8, List.of("q_proj", "v_proj", "down_proj")), 1);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(2);
        a.layers().values().forEach(l -> l.parameters().forEach(p -> p.value().assign(Nd4j.randn(rng, p.value().shape()).muli(0.2))));
        PeftAdapterFormat.save(a, dir.resolve("adapter"), "base");
        String[] r = runCapturing("merge", "--model", dir.resolve("base").toString(), "--adapter", dir.resolve("adapter").toString(),
                "--out", dir.resolve("merged").toString());
        assertEquals("0", r[0], r[2]);
        TransformerLM merged = HfModelDirectory.load(dir.resolve("merged"));
        TokenBatch b = TokenBatch.of(new int[][]{{1, 5, 7, 9, 2}}, new int[][]{{5, 7, 9, 2, 3}});
        INDArray expected = adapted.logits(b);
        assertTrue(expected.equalsWithEps(merged.logits(b), 1e-4));
        assertFalse(expected.equalsWithEps(base.logits(b), 1e-3));
        assertFalse(Files.exists(dir.resolve("merged.tmp")));
    }

    @Test
    void sparkDefaultsCarryExactlyTheJvmOptionsFile() throws Exception {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        List<String> options = Files.readAllLines(root.resolve("conf/jvm.options")).stream()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        List<String> conf = Files.readAllLines(root.resolve("conf/spark-defaults.conf"));
        for (String key : List.of("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")) {
            String line = conf.stream().filter(l -> l.startsWith(key)).findFirst().orElseThrow(() -> new AssertionError(key + " missing"));
            List<String> values = Arrays.stream(line.substring(key.length()).strip().split("\\s+")).collect(Collectors.toList());
            assertEquals(options, values, key + " must equal conf/jvm.options");
        }
    }
}
