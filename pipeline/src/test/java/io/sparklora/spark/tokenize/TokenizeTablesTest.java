package io.sparklora.spark.tokenize;

import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Spark sources (parquet, orc, csv, json, catalog tables) through the tokenize stage. */
class TokenizeTablesTest {
    private static final int SEQ = 32;
    private static final List<String> WORDS = List.of("river", "mill", "stone", "morning", "bread", "wheel", "water",
            "miller", "daughter", "story", "field", "market", "price", "offer", "free", "winner");
    private static final StructType EVENTS = new StructType()
            .add("text", DataTypes.StringType).add("label", DataTypes.StringType)
            .add("n", DataTypes.IntegerType).add("k", DataTypes.IntegerType).add("lang", DataTypes.StringType);
    /** Rows of {@link #events}: 60, of which 3 have an empty text (null, "", blanks) and 1 a null label. */
    private static final int EVENT_ROWS = 60, EMPTY = 3, NO_LABEL = 1;

    private static JavaSparkContext sc;
    private static SparkSession spark;
    private static Configuration conf;
    private static String tokenizerUri;
    private static TextTokenizer tokenizer;
    /** {@link #events()} as Parquet partitioned by lang, in 3 files per language, shared by the tests (read only). */
    private static Path events;

    @TempDir
    static Path shared;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.context("tables-test", "local[2]", Map.of("spark.sql.warehouse.dir", shared.resolve("warehouse").toString(),
                "spark.sql.shuffle.partitions", "2", "spark.sql.codegen.wholeStage", "false", "spark.sql.adaptive.enabled", "false"));
        spark = TokenizeTables.session(sc);
        conf = sc.hadoopConfiguration();
        tokenizerUri = Path.of(TokenizeTablesTest.class.getResource("/tokenizers/tiny-bpe/tokenizer.json").toURI()).toString();
        tokenizer = TokenizerCache.load(conf, tokenizerUri);
        events = writeEvents(shared.resolve("events"), events(), 3);
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    private static String sentence(int seed, int words) {
        StringBuilder s = new StringBuilder("Document " + seed + ":");
        for (int i = 0; i < words; i++) s.append(' ').append(WORDS.get(Math.floorMod(seed * 31 + i * 7 + i * i, WORDS.size())));
        return s.append('.').toString();
    }

    /** 60 rows (id n, k = n % 3): even ids lang=en, odd lang=fr; ids 5, 10, 15 have null, "" and "  \n" texts; id 7 a null label. */
    private static List<Row> events() {
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < EVENT_ROWS; i++) {
            String text = switch (i) {
                case 5 -> null;
                case 10 -> "";
                case 15 -> "  \n";
                default -> sentence(i, 4 + i % 7);
            };
            String label = i == 7 ? null : i % 3 == 0 ? "spam" : "ham";
            rows.add(RowFactory.create(text, label, i, i % 3, i % 2 == 0 ? "en" : "fr"));
        }
        return rows;
    }

    /** Writes {@code rows} as Parquet partitioned by lang, in {@code files} partitions and the given row order. */
    private static Path writeEvents(Path at, List<Row> rows, int files) {
        spark.createDataFrame(rows, EVENTS).repartition(files).write().partitionBy("lang").parquet(at.toString());
        return at;
    }

    private static Path manifest(Path at, String labels, String sources) throws IOException {
        Files.createDirectories(at.getParent());
        Files.writeString(at, "name: tables\n" + (labels == null ? "" : "labels: " + labels + "\n") + "sources:\n" + sources);
        return at;
    }

    private static ShardManifest run(Path manifest, Path out, double validation, int partitions) throws IOException {
        // the language-model layout (documents packed, each ending in a target end-of-text), which shardDocuments reads back
        return TokenizeStage.run(sc, new TokenizeSpec(manifest.toString(), tokenizerUri, SEQ, validation, partitions, out.toString(),
                io.sparklora.data.CorpusReader.DEFAULT_MAX_LINE_BYTES, 0L, io.sparklora.data.TrainingObjective.LANGUAGE_MODEL));
    }

    /** Every file under {@code out}, by relative path. */
    private static Map<String, byte[]> files(Path out) throws IOException {
        Map<String, byte[]> files = new TreeMap<>();
        try (Stream<Path> all = Files.walk(out)) {
            for (Path p : all.filter(Files::isRegularFile).toList()) files.put(out.relativize(p).toString(), Files.readAllBytes(p));
        }
        return files;
    }

    private static void assertSameFiles(Map<String, byte[]> expected, Map<String, byte[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (String f : expected.keySet()) assertArrayEquals(expected.get(f), actual.get(f), f);
    }

    /** Per shard file: its documents (token lists, decoded) sorted, so two shards can be compared as multisets. */
    private static Map<String, List<String>> shardDocuments(Path out, ShardManifest m) throws IOException {
        Map<String, List<String>> docs = new TreeMap<>();
        for (String split : List.of(ShardManifest.TRAIN, ShardManifest.VALIDATION)) {
            for (ShardManifest.Shard s : m.split(split)) {
                TokenBlocks blocks = ArrowShardReader.readBlocks(conf, out.toString(), m, s);
                List<String> texts = new ArrayList<>();
                StringBuilder mask = new StringBuilder();
                List<Integer> cur = new ArrayList<>();
                for (int b = 0; b < blocks.size(); b++) {
                    for (int i = b == 0 ? 0 : 1; i <= blocks.seqLen(); i++) {
                        int t = blocks.block(b)[i];
                        boolean target = blocks.mask(b)[i];
                        if (t == m.eosTokenId() && target) {
                            texts.add(tokenizer.decode(cur.stream().mapToInt(Integer::intValue).toArray()) + " | targets " + mask);
                            cur.clear();
                            mask.setLength(0);
                        } else if (t != m.eosTokenId()) {
                            cur.add(t);
                            mask.append(target ? '1' : '0');
                        }
                    }
                }
                texts.sort(null);
                docs.put(s.file(), texts);
            }
        }
        return docs;
    }

    @Test
    void partitionedParquetSkipsEmptyCellsCountsThemAndMatchesTheSameDocumentsReadAsJsonl() throws IOException {
        // a glob below the table root: lang must still be a column (basePath), so the filter on it works
        Path manifest = manifest(dir.resolve("data/m.yaml"), "[ham, spam]", """
                  - {name: events, uri: "%s/lang=*/*.parquet", format: parquet, text_field: text, label_field: label, filter: "lang <> 'de'"}
                """.formatted(events.toUri()));
        Path out = dir.resolve("out");
        ShardManifest m = run(manifest, out, 0.25, 3);
        int kept = EVENT_ROWS - EMPTY - NO_LABEL;
        assertEquals(List.of(new ShardManifest.SourceCounts("events", kept, EMPTY, NO_LABEL)), m.sources());
        assertEquals(kept, m.documents(ShardManifest.TRAIN) + m.documents(ShardManifest.VALIDATION));
        assertTrue(m.documents(ShardManifest.VALIDATION) > 0 && m.rows(ShardManifest.VALIDATION_EXAMPLES) == m.documents(ShardManifest.VALIDATION));
        assertEquals(m.sources(), ShardManifest.read(conf, out.toString()).sources(), "the counts are in manifest.json");
        assertTrue(Files.readString(out.resolve("manifest.json")).contains("\"skipped_empty\" : 3"));

        // the same rows as a jsonl file: the same documents in the same shards (in another order within a shard)
        StringBuilder jsonl = new StringBuilder();
        for (Row r : events()) {
            if (r.isNullAt(0) || r.getString(0).isBlank() || r.isNullAt(1)) continue;
            jsonl.append("{\"text\": \"").append(r.getString(0)).append("\", \"label\": \"").append(r.getString(1)).append("\"}\n");
        }
        Files.writeString(dir.resolve("data/events.jsonl"), jsonl);
        Path fileManifest = manifest(dir.resolve("data/f.yaml"), "[ham, spam]", """
                  - {name: events, uri: events.jsonl, format: jsonl, label_field: label}
                """);
        Path fileOut = dir.resolve("file-out");
        ShardManifest f = run(fileManifest, fileOut, 0.25, 3);
        assertEquals(shardDocuments(fileOut, f), shardDocuments(out, m));
        assertEquals(List.of(), f.sources(), "file sources are not listed");
        assertFalse(Files.readString(fileOut.resolve("manifest.json")).contains("sources"));

        // rerun, and the same rows written in another row order as 7 files: byte-identical output
        Map<String, byte[]> first = files(out);
        Path again = dir.resolve("again");
        run(manifest, again, 0.25, 3);
        assertSameFiles(first, files(again));
        List<Row> shuffled = new ArrayList<>(events());
        java.util.Collections.rotate(shuffled, 17);
        Path other = writeEvents(dir.resolve("events-7"), shuffled, 7);
        try (Stream<Path> parts = Files.walk(other)) {
            assertTrue(parts.filter(p -> p.toString().endsWith(".parquet")).count() > 7, "more files than the first input's");
        }
        Path otherManifest = dir.resolve("m7.yaml");
        Files.writeString(otherManifest, Files.readString(manifest).replace(events.toUri().toString(), other.toUri().toString()));
        assertNotEquals(Files.readString(manifest), Files.readString(otherManifest));
        run(otherManifest, dir.resolve("out-7"), 0.25, 3);
        assertSameFiles(first, files(dir.resolve("out-7")));
    }

    @Test
    void filterOnAPartitionColumnAndALabelColumnOfIntegers() throws IOException {
        Path manifest = manifest(dir.resolve("filter/m.yaml"), "['0', '1', '2']", """
                  - {name: en, uri: "%s", format: parquet, filter: "lang = 'en' AND n >= 0", label_field: k}
                """.formatted(events.toUri()));
        Path out = dir.resolve("out");
        ShardManifest m = run(manifest, out, 0.0, 1);
        // en = the 30 even ids, of which 10 has an empty text (5 and 15 are odd); k is never null
        assertEquals(List.of(new ShardManifest.SourceCounts("en", 29, 1, 0)), m.sources());
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < EVENT_ROWS; i += 2) if (i != 10) expected.add(sentence(i, 4 + i % 7) + "\nLabel: " + (i % 3));
        assertEquals(sorted(expected), texts(out, m));
    }

    @Test
    void promptResponseColumnsKeepThePromptOutOfTheLoss() throws IOException {
        StructType schema = new StructType().add("q", DataTypes.StringType).add("a", DataTypes.StringType);
        List<Row> rows = new ArrayList<>();
        StringBuilder jsonl = new StringBuilder();
        for (int i = 0; i < 12; i++) {
            String q = "Question: " + sentence(600 + i, 3) + "\\nAnswer:", a = " " + sentence(700 + i, 2);
            rows.add(RowFactory.create(q.replace("\\n", "\n"), a));
            jsonl.append("{\"q\": \"").append(q).append("\", \"a\": \"").append(a).append("\"}\n");
        }
        rows.add(RowFactory.create("Question: none", null));
        rows.add(RowFactory.create(null, " an answer"));
        spark.createDataFrame(rows, schema).createOrReplaceTempView("qa_pairs");
        Files.createDirectories(dir.resolve("qa"));
        Files.writeString(dir.resolve("qa/pairs.jsonl"), jsonl);
        Path manifest = manifest(dir.resolve("qa/m.yaml"), null, """
                  - {name: qa, table: qa_pairs, prompt_field: q, response_field: a}
                """);
        Path files = manifest(dir.resolve("qa/f.yaml"), null, """
                  - {name: qa, uri: pairs.jsonl, format: jsonl, prompt_field: q, response_field: a}
                """);
        ShardManifest m = run(manifest, dir.resolve("t"), 0.0, 2);
        ShardManifest f = run(files, dir.resolve("f"), 0.0, 2);
        assertEquals(List.of(new ShardManifest.SourceCounts("qa", 12, 2, 0)), m.sources());
        Map<String, List<String>> docs = shardDocuments(dir.resolve("t"), m);
        assertEquals(shardDocuments(dir.resolve("f"), f), docs);
        long targets = m.split("train").stream().mapToLong(ShardManifest.Shard::targets).sum();
        long tokens = m.split("train").stream().mapToLong(ShardManifest.Shard::tokens).sum();
        long promptTokens = 0;
        for (Row r : rows.subList(0, 12)) promptTokens += tokenizer.encode(r.getString(0)).length;
        assertEquals(tokens - promptTokens, targets, "every token but the prompts' is a target");
        for (List<String> shard : docs.values()) {
            for (String d : shard) assertTrue(d.matches("(?s)Question: .* \\| targets 0+1+"), d);
        }
    }

    /**
     * {@code chat_template: tokenizer}: pairs from a table and from JSON Lines are rendered through the Llama 3
     * template found beside the tokenizer, with the manifest's system prompt, and only the assistant's turn is
     * trained on.
     */
    @Test
    void chatTemplatePairsTrainOnlyTheAssistantTurn() throws Exception {
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        Path chat = Path.of(TokenizeTablesTest.class.getResource("/chat/tokenizer.json").toURI());
        Files.copy(chat, model.resolve("tokenizer.json"));
        var fixtures = new com.fasterxml.jackson.databind.ObjectMapper().readTree(chat.resolveSibling("fixtures.json").toFile());
        var llama3 = fixtures.get("templates").get("llama3");
        var cfg = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode()
                .put("bos_token", llama3.get("bos_token").asText()).put("eos_token", llama3.get("eos_token").asText())
                .put("chat_template", llama3.get("template").asText());
        Files.writeString(model.resolve("tokenizer_config.json"), cfg.toString());
        StructType schema = new StructType().add("q", DataTypes.StringType).add("a", DataTypes.StringType);
        List<Row> rows = new ArrayList<>();
        StringBuilder jsonl = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            String q = sentence(800 + i, 3) + "?", a = sentence(900 + i, 2);
            rows.add(RowFactory.create(q, a));
            jsonl.append("{\"q\": \"").append(q).append("\", \"a\": \"").append(a).append("\"}\n");
        }
        spark.createDataFrame(rows, schema).createOrReplaceTempView("chat_pairs");
        Files.createDirectories(dir.resolve("chat"));
        Files.writeString(dir.resolve("chat/pairs.jsonl"), jsonl);
        String head = "name: chat\nchat_template: tokenizer\nsystem_prompt: Be brief.\nsources:\n";
        Path tableManifest = dir.resolve("chat/t.yaml"), fileManifest = dir.resolve("chat/f.yaml");
        Files.writeString(tableManifest, head + "  - {name: qa, table: chat_pairs, prompt_field: q, response_field: a}\n");
        Files.writeString(fileManifest, head + "  - {name: qa, uri: pairs.jsonl, format: jsonl, prompt_field: q, response_field: a}\n");
        String tok = model.resolve("tokenizer.json").toString();
        ShardManifest m = TokenizeStage.run(sc, new TokenizeSpec(tableManifest.toString(), tok, 256, 0.0, 2, dir.resolve("ct").toString(),
                io.sparklora.data.CorpusReader.DEFAULT_MAX_LINE_BYTES, 0L, io.sparklora.data.TrainingObjective.LANGUAGE_MODEL));
        ShardManifest f = TokenizeStage.run(sc, new TokenizeSpec(fileManifest.toString(), tok, 256, 0.0, 2, dir.resolve("cf").toString(),
                io.sparklora.data.CorpusReader.DEFAULT_MAX_LINE_BYTES, 0L, io.sparklora.data.TrainingObjective.LANGUAGE_MODEL));
        // a table's documents are ordered by content hash, a file's by position: the same documents, not the same bytes
        for (java.util.function.ToLongFunction<ShardManifest.Shard> count : List.<java.util.function.ToLongFunction<ShardManifest.Shard>>of(
                ShardManifest.Shard::documents, ShardManifest.Shard::tokens, ShardManifest.Shard::targets)) {
            assertEquals(m.split("train").stream().mapToLong(count).sum(), f.split("train").stream().mapToLong(count).sum(),
                    "a table and JSON Lines give the same documents, tokens and targets");
        }
        io.sparklora.tokenize.ChatTemplate template = io.sparklora.tokenize.ChatTemplate.read(conf, "tokenizer", tok);
        try (TextTokenizer chatTok = TextTokenizer.fromFile(model.resolve("tokenizer.json"))) {
            long prompt = 0, response = 0;
            for (Row r : rows) {
                var turn = template.renderPair("Be brief.", r.getString(0), r.getString(1));
                assertTrue(turn.prompt().contains("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"), turn.prompt());
                assertTrue(turn.response().endsWith("<|eot_id|>"), turn.response());
                prompt += chatTok.encode(turn.prompt()).length;
                response += chatTok.encode(turn.response()).length;
            }
            long targets = m.split("train").stream().mapToLong(ShardManifest.Shard::targets).sum();
            long tokens = m.split("train").stream().mapToLong(ShardManifest.Shard::tokens).sum();
            assertEquals(prompt + response + rows.size(), tokens, "rendered prompt, response and one end-of-text per pair");
            assertEquals(response + rows.size(), targets, "only the assistant's turn (and the end of text) is trained on");
        }
    }

    @Test
    void catalogTablesAndTempViewsAreReadThroughTheSession() throws IOException {
        Dataset<Row> df = spark.createDataFrame(events(), EVENTS);
        df.write().mode(SaveMode.Overwrite).saveAsTable("default.saved_events");
        df.where("n < 20").createOrReplaceTempView("recent_events");
        Path manifest = manifest(dir.resolve("t/m.yaml"), "[ham, spam]", """
                  - {name: saved, table: default.saved_events, label_field: label, filter: "lang = 'fr'"}
                  - {name: view, table: recent_events, label: spam}
                """);
        Path out = dir.resolve("out");
        ShardManifest m = run(manifest, out, 0.0, 2);
        // saved, fr: the 30 odd ids, of which 5 and 15 are empty and 7 has no label; view: ids 0..19, of which 5, 10, 15 are empty
        assertEquals(List.of(new ShardManifest.SourceCounts("saved", 27, 2, 1), new ShardManifest.SourceCounts("view", 17, 3, 0)),
                m.sources());
        List<String> expected = new ArrayList<>();
        for (Row r : events()) {
            int i = r.getInt(2);
            boolean empty = r.isNullAt(0) || r.getString(0).isBlank();
            if (i % 2 == 1 && !empty && !r.isNullAt(1)) expected.add(r.getString(0) + "\nLabel: " + r.getString(1));
            if (i < 20 && !empty) expected.add(r.getString(0) + "\nLabel: spam");
        }
        assertEquals(44, expected.size());
        assertEquals(sorted(expected), texts(out, m));
    }

    private static List<String> sorted(List<String> texts) {
        List<String> s = new ArrayList<>(texts);
        s.sort(null);
        return s;
    }

    /** Every document's text in the train and validation shards, sorted. */
    private static List<String> texts(Path out, ShardManifest m) throws IOException {
        List<String> texts = new ArrayList<>();
        for (List<String> shard : shardDocuments(out, m).values()) for (String d : shard) texts.add(d.substring(0, d.lastIndexOf(" | targets ")));
        return sorted(texts);
    }

    @Test
    void orcCsvAndJsonSources() throws IOException {
        Dataset<Row> df = spark.createDataFrame(events(), EVENTS).where("n < 10");
        df.write().orc(dir.resolve("o/orc").toString());
        // JSON Lines by hand, as another tool would write it (n < 5 are ids 0..4, the json source's filter keeps them all)
        StringBuilder json = new StringBuilder();
        for (Row r : events().subList(0, 10)) {
            json.append("{\"n\": ").append(r.getInt(2)).append(r.isNullAt(0) ? "" : ", \"text\": \"" + r.getString(0).replace("\n", "\\n") + "\"")
                    .append("}\n");
        }
        Files.createDirectories(dir.resolve("o/json"));
        Files.writeString(dir.resolve("o/json/part-0.json"), json);
        // CSV by hand, RFC 4180: a quoted cell with a comma, doubled quotes and a line break; an empty cell
        Files.createDirectories(dir.resolve("o/csv"));
        Files.writeString(dir.resolve("o/csv/part-0.csv"), """
                id,body
                1,"Say ""free"", then
                bread and water"
                2,plain river
                3,
                """);
        Files.writeString(dir.resolve("o/nohead.csv"), "x,mill stone\n");
        Path manifest = manifest(dir.resolve("o/m.yaml"), null, """
                  - {name: orc, uri: orc, format: orc}
                  - {name: json, uri: json, format: json, filter: "n < 5"}
                  - {name: csv, uri: csv, format: csv, text_field: body}
                  - {name: nohead, uri: nohead.csv, format: csv, csv_header: false, text_field: _c1}
                """);
        ShardManifest m = run(manifest, dir.resolve("out"), 0.0, 1);
        // ids 0..9: 5 null; json n < 5: 0..4 all kept
        assertEquals(List.of(new ShardManifest.SourceCounts("orc", 9, 1, 0), new ShardManifest.SourceCounts("json", 5, 0, 0),
                new ShardManifest.SourceCounts("csv", 2, 1, 0), new ShardManifest.SourceCounts("nohead", 1, 0, 0)), m.sources());
        List<String> docs = shardDocuments(dir.resolve("out"), m).get("train/part-00000.arrow");
        assertEquals(17, docs.size());
        assertTrue(docs.contains("Say \"free\", then\nbread and water | targets " + "1".repeat(tokenizer.encode("Say \"free\", then\nbread and water").length)));
        assertTrue(docs.stream().anyMatch(d -> d.startsWith("mill stone | ")));
        assertEquals(2, docs.stream().filter(d -> d.startsWith(sentence(3, 7) + " | ")).count(), "orc and json both hold document 3");
    }

    @Test
    void wrongColumnsTypesLabelsAndFiltersAreErrorsNamingThemAndLeaveNothing() throws IOException {
        Path out = dir.resolve("out");
        String[][] cases = {
                {"{name: ev, uri: events, format: parquet, text_field: body}", "text_field column 'body' does not exist"},
                {"{name: ev, uri: events, format: parquet, text_field: n}", "text_field column 'n' is int, expected string"},
                {"{name: ev, uri: events, format: parquet, label_field: lang}", "label 'en' in label_field column is not in labels [ham, spam]"},
                {"{name: ev, uri: events, format: parquet, filter: \"nope > 1\"}", "filter \"nope > 1\" is not a valid Spark SQL condition"},
                {"{name: ev, uri: missing, format: parquet}", "cannot read "},
                {"{name: ev, table: no_such_table}", "cannot read table 'no_such_table'"},
        };
        for (String[] c : cases) {
            Path manifest = manifest(dir.resolve("e/m.yaml"), "[ham, spam]", "  - " + c[0].replace("uri: events", "uri: " + events.toUri()) + "\n");
            IOException e = assertThrows(IOException.class, () -> run(manifest, out, 0.0, 1), c[0]);
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
            assertTrue(e.getMessage().contains("source 'ev'") && e.getMessage().contains(manifest.toString()), e.getMessage());
            if (!c[0].contains("missing") && !c[0].contains("table")) {
                assertTrue(e.getMessage().contains("[text string, label string, n int, k int, lang string]") || c[1].startsWith("label"), e.getMessage());
            }
            assertFalse(Files.exists(out), "nothing is written");
        }
    }
}
