package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.AdapterSet;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.ByteLevelBpeTrainer;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code generate} and {@code score} over a table whose rows name different adapters (LoRA, DoRA, the base): every row's
 * output equals that row run alone under its adapter, in this process (--local, JSON lines) and on Spark (local[2],
 * the same table read and written by Spark).
 */
class InferCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path dir;
    static String base, lora, dora;
    static final String[][] ROWS = {
            {"The pipeline reads shards", "lora"}, {"Mail asks for the quarterly report", "dora"}, {"Record 3: the pipeline", AdapterSet.BASE},
            {"Adapters train on", "lora"}, {"Friday", null}, {"The quarterly report", "dora"}, {"Shards and reports", ""}};

    @BeforeAll
    static void setUp() throws Exception {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 30; i++) docs.add("Record " + i + ": the pipeline reads shards, trains adapters and writes the quarterly report by Friday.");
        Path tok = dir.resolve("tok");
        Files.createDirectories(tok);
        ByteLevelBpeTrainer.train(docs, 300, tok.resolve("tokenizer.json"));
        TransformerLM model = TransformerLM.randomInit(ModelConfig.gpt2(300, 16, 2, 2, 64), 5);
        HfModelDirectory.save(model, dir.resolve("base"), DataType.FLOAT, tok);
        base = dir.resolve("base").toString();
        lora = adapter(model, "lora", AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")), 1);
        dora = adapter(model, "dora", AdapterConfig.of("dora", 2, 4, List.of("c_attn")), 2);
        StringBuilder in = new StringBuilder();
        for (String[] r : ROWS) {
            var o = JSON.createObjectNode().put("text", r[0]);
            if (r[1] == null) o.putNull("adapter");
            else o.put("adapter", r[1]);
            in.append(JSON.writeValueAsString(o)).append('\n');
        }
        in.append("{\"text\": null, \"adapter\": \"lora\"}\n");
        Files.writeString(dir.resolve("rows.jsonl"), in.toString());
    }

    /** A saved adapter whose B is random (so it changes the output), detached from the model afterwards. */
    static String adapter(TransformerLM model, String name, AdapterConfig c, long seed) {
        AttachedAdapter a = AttachedAdapter.attach(model, name, c, seed);
        var rng = io.sparklora.model.Seeds.rng(seed + 100);
        for (Parameter p : a.trainableParameters()) p.set(p.value().add(Nd4j.randn(rng, p.value().shape()).castTo(p.value().dataType()).muli(0.3)));
        Path out = dir.resolve("adapter-" + name);
        PeftAdapterFormat.save(a, out, base);
        a.detach();
        return out.toString();
    }

    static List<JsonNode> readLines(Path file) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String l : Files.readAllLines(file)) if (!l.isBlank()) out.add(JSON.readTree(l));
        return out;
    }

    /** Spark's JSON output: every part file's rows, keyed by text (null text last). */
    static Map<String, JsonNode> readSpark(Path dirOut) throws Exception {
        Map<String, JsonNode> out = new TreeMap<>();
        try (Stream<Path> s = Files.list(dirOut)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("part-")).toList()) {
                for (JsonNode n : readLines(p)) out.put(n.path("text").asText("<null>"), n);
            }
        }
        return out;
    }

    String[] args(String command, String out, String... more) {
        List<String> a = new ArrayList<>(List.of(command, "--model", base, "--adapters", "lora=" + lora + ",dora=" + dora,
                "--input", dir.resolve("rows.jsonl").toString(), "--out", out, "--batch-rows", "3"));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    @Test
    void eachRowEqualsItselfAloneUnderItsAdapterLocallyAndOnSpark() throws Exception {
        assertEquals(0, SparkLoraCli.run(args("generate", dir.resolve("gen.jsonl").toString(), "--local", "--max-new", "6", "--threads", "1")));
        assertEquals(0, SparkLoraCli.run(args("score", dir.resolve("score.jsonl").toString(), "--local", "--threads", "1")));
        List<JsonNode> gen = readLines(dir.resolve("gen.jsonl")), score = readLines(dir.resolve("score.jsonl"));
        assertEquals(ROWS.length + 1, gen.size());
        AdapterSet alone = AdapterSet.on(new Configuration(), base).add("lora", lora).add("dora", dora);
        java.util.Set<String> distinct = new java.util.HashSet<>();
        for (int i = 0; i < ROWS.length; i++) {
            String name = ROWS[i][1] == null || ROWS[i][1].isEmpty() ? AdapterSet.BASE : ROWS[i][1];
            String want = alone.generate(List.of(ROWS[i][0]), List.of(name), 6).get(0);
            assertEquals(want, gen.get(i).path("continuation").asText(), "row " + i + " (" + name + ")");
            assertEquals(alone.meanLoss(List.of(ROWS[i][0]), List.of(name))[0], score.get(i).path("loss").asDouble(), 1e-5, "row " + i);
            assertEquals(ROWS[i][0], gen.get(i).path("text").asText(), "input fields are kept");
            distinct.add(name + ":" + score.get(i).path("loss").asDouble());
        }
        // the adapters really differ from the base on the same text
        double viaLora = alone.meanLoss(List.of(ROWS[0][0]), List.of("lora"))[0], viaBase = alone.meanLoss(List.of(ROWS[0][0]), List.of(AdapterSet.BASE))[0];
        assertNotEquals(viaLora, viaBase, 1e-4);
        assertTrue(gen.get(ROWS.length).path("continuation").isNull(), "a null text gives null");

        // Spark: the same table, read and written by Spark in local[2]
        Path sparkGen = dir.resolve("spark-gen"), sparkScore = dir.resolve("spark-score");
        assertEquals(0, SparkLoraCli.run(args("generate", sparkGen.toString(), "--master", "local[2]", "--max-new", "6")));
        assertEquals(0, SparkLoraCli.run(args("score", sparkScore.toString(), "--master", "local[2]")));
        assertTrue(Files.exists(sparkGen.resolve("_SUCCESS")));
        Map<String, JsonNode> sg = readSpark(sparkGen), ss = readSpark(sparkScore);
        for (int i = 0; i < ROWS.length; i++) {
            assertEquals(gen.get(i).path("continuation").asText(), sg.get(ROWS[i][0]).path("continuation").asText(), "spark row " + i);
            assertEquals(score.get(i).path("loss").asDouble(), ss.get(ROWS[i][0]).path("loss").asDouble(), 1e-5, "spark row " + i);
        }
    }

    @Test
    void badRowsAndArgumentsAreNamed() throws Exception {
        Files.writeString(dir.resolve("bad.jsonl"), "{\"text\": \"x\", \"adapter\": \"lora\"}\n{\"text\": \"y\", \"adapter\": \"nope\"}\n");
        var err = new java.io.ByteArrayOutputStream();
        var old = System.err;
        System.setErr(new java.io.PrintStream(err));
        int code, spark;
        try {
            code = SparkLoraCli.run(new String[]{"score", "--local", "--model", base, "--adapters", "lora=" + lora, "--input",
                    dir.resolve("bad.jsonl").toString(), "--out", dir.resolve("bad-out.jsonl").toString()});
            spark = SparkLoraCli.run(new String[]{"score", "--master", "local[1]", "--model", base, "--adapters", "lora=" + lora, "--input",
                    dir.resolve("bad.jsonl").toString(), "--out", dir.resolve("bad-spark").toString()});
        } finally {
            System.setErr(old);
        }
        assertEquals(1, code);
        assertTrue(err.toString().contains("bad.jsonl:2") && err.toString().contains("'nope'"), err.toString());
        assertFalse(Files.exists(dir.resolve("bad-out.jsonl")), "nothing is written");
        assertEquals(1, spark);
        assertTrue(err.toString().contains("rows name adapters [nope]"), err.toString());
        assertFalse(Files.exists(dir.resolve("bad-spark")), "nothing is written");
        assertEquals(2, SparkLoraCli.run(new String[]{"score", "--local", "--model", base, "--adapters", "lora", "--input", "x.jsonl", "--out", "y"}));
        assertEquals(2, SparkLoraCli.run(new String[]{"score", "--model", base, "--adapters", "a=" + lora + ",a=" + dora, "--input", "x.jsonl", "--out", "y"}));
    }
}
