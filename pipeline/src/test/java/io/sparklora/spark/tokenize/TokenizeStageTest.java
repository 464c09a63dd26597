package io.sparklora.spark.tokenize;

import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.StageErrors;
import io.sparklora.spark.TokenizerCache;

import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.CorpusReader;
import io.sparklora.data.DatasetManifest;
import io.sparklora.data.Document;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.TrainingObjective;
import io.sparklora.data.ValidationExample;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkException;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenizeStageTest {
    private static final int SEQ = 32;
    private static final List<String> WORDS = List.of("river", "mill", "stone", "morning", "bread", "wheel", "water",
            "miller", "daughter", "story", "field", "market", "price", "offer", "free", "winner");

    private static JavaSparkContext sc;
    private static Configuration conf;
    private static String tokenizerUri;
    private static TextTokenizer tokenizer;

    @TempDir
    static Path shared;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        conf = sc.hadoopConfiguration();
        tokenizerUri = Path.of(TokenizeStageTest.class.getResource("/tokenizers/tiny-bpe/tokenizer.json").toURI()).toString();
        tokenizer = TokenizerCache.load(conf, tokenizerUri);
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

    /** A labelled corpus with all four kinds of source; returns the manifest's path. */
    private static Path mixedCorpus(Path root) throws IOException {
        Files.createDirectories(root);
        StringBuilder ham = new StringBuilder();
        for (int i = 0; i < 40; i++) ham.append("{\"text\": \"").append(sentence(i, 5 + i % 9)).append("\"}\n");
        Files.writeString(root.resolve("ham.jsonl"), ham);
        StringBuilder books = new StringBuilder();
        for (int i = 0; i < 30; i++) books.append(sentence(100 + i, 10 + i % 20)).append("\n").append(sentence(200 + i, 4)).append("\n\n");
        Files.writeString(root.resolve("books.txt"), books);
        for (int i = 0; i < 10; i++) {
            Files.createDirectories(root.resolve("mail/ham"));
            Files.createDirectories(root.resolve("mail/spam"));
            Files.writeString(root.resolve("mail/ham/" + i + ".txt"), sentence(300 + i, 6) + "\n\n" + sentence(400 + i, 3));
            Files.writeString(root.resolve("mail/spam/" + i + ".txt"), "FREE offer! " + sentence(500 + i, 8));
        }
        StringBuilder qa = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            qa.append("{\"prompt\": \"Question: ").append(sentence(600 + i, 4)).append("\\nAnswer:\", \"response\": \" ")
                    .append(sentence(700 + i, 3)).append("\"}\n");
        }
        Files.writeString(root.resolve("qa.jsonl"), qa);
        Path manifest = root.resolve("dataset.yaml");
        Files.writeString(manifest, """
                name: mixed
                description: every kind of source
                labels: [ham, spam]
                sources:
                  - {name: ham, uri: ham.jsonl, format: jsonl, label: ham}
                  - {name: books, uri: books.txt, format: text}
                  - {name: mail, uri: mail, format: labelled_dir}
                  - {name: qa, uri: qa.jsonl, format: jsonl}
                """);
        return manifest;
    }

    /** The language-model objective: every document packed, as these tests check the packing. */
    private static TokenizeSpec spec(Path manifest, Path out, double validation, int partitions) {
        return spec(manifest, out, validation, partitions, TrainingObjective.LANGUAGE_MODEL);
    }

    private static TokenizeSpec spec(Path manifest, Path out, double validation, int partitions, TrainingObjective objective) {
        return new TokenizeSpec(manifest.toString(), tokenizerUri, SEQ, validation, partitions, out.toString(),
                CorpusReader.DEFAULT_MAX_LINE_BYTES, 0L, objective);
    }

    private static List<Document> documents(Path manifest) throws IOException {
        DatasetManifest m = DatasetManifest.read(conf, manifest.toString());
        try (Stream<Document> docs = CorpusReader.documents(conf, m, CorpusReader.DEFAULT_MAX_LINE_BYTES)) {
            return docs.toList();
        }
    }

    @Test
    void manifestCountsMatchWhatTheShardsHoldAndEveryDocumentIsInOneSplit() throws IOException {
        Path manifestPath = mixedCorpus(shared.resolve("mixed"));
        Path out = dir.resolve("out");
        ShardManifest m = TokenizeStage.run(sc, spec(manifestPath, out, 0.25, 3));

        assertEquals(m.toJson().length, Files.size(out.resolve("manifest.json")));
        assertArrayEquals(m.toJson(), ShardManifest.read(conf, out.toString()).toJson());
        assertTrue(Files.exists(out.resolve("_SUCCESS")));
        assertEquals(tokenizer.fingerprint(), m.tokenizerFingerprint());
        assertEquals(List.of("train", "validation", "validation-examples"), List.copyOf(m.splits().keySet()));
        for (String split : m.splits().keySet()) {
            assertEquals(3, m.split(split).size());
            for (int p = 0; p < 3; p++) {
                assertEquals(split + "/part-0000" + p + ".arrow", m.split(split).get(p).file());
                assertTrue(Files.isRegularFile(out.resolve(m.split(split).get(p).file())));
            }
        }
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(List.of(out), siblings.toList(), "no temporary directory is left beside the output");
        }

        List<Document> docs = documents(manifestPath);
        assertEquals(110, docs.size());
        assertEquals(docs.size(), m.documents("train") + m.documents("validation"));
        List<EncodedDocument> encoded = new DocumentEncoder(tokenizer, List.of("ham", "spam"), "\nLabel:").encode(docs);
        assertEquals(encoded.stream().mapToLong(e -> e.tokens().length + 1).sum(),
                m.split("train").stream().mapToLong(ShardManifest.Shard::tokens).sum()
                        + m.split("validation").stream().mapToLong(ShardManifest.Shard::tokens).sum());
        assertTrue(m.documents("validation") > 10 && m.documents("validation") < 80, "about a quarter in validation: " + m.documents("validation"));

        for (String split : List.of("train", "validation")) {
            for (ShardManifest.Shard s : m.split(split)) {
                TokenBlocks blocks = ArrowShardReader.readBlocks(conf, out.toString(), m, s);
                assertEquals(s.rows(), blocks.size(), s.file());
                long targets = 0;
                for (int b = 0; b < blocks.size(); b++) for (int i = 1; i <= SEQ; i++) if (blocks.mask(b)[i]) targets++;
                assertEquals(s.targets(), targets, s.file());
                assertEquals(s.documents(), splitDocuments(blocks, m.eosTokenId()).size(), s.file());
            }
        }

        // validation examples: each labelled validation document, in shard order, as its prompt (the start of
        // its text, cut to leave room for the label prompt and the longest label in one block) and its label
        int longest = Math.max(m.labels().get(0).ids().length, m.labels().get(1).ids().length);
        int[] suffix = tokenizer.encode("\nLabel:");
        List<String> expectedExamples = new ArrayList<>();
        for (ShardManifest.Shard s : m.split("validation")) {
            for (int[] doc : splitDocuments(ArrowShardReader.readBlocks(conf, out.toString(), m, s), m.eosTokenId())) {
                String text = tokenizer.decode(doc);
                int label = text.endsWith("\nLabel: spam") ? 1 : text.endsWith("\nLabel: ham") ? 0 : -1;
                if (label < 0) continue;
                int textLen = doc.length - m.labels().get(label).ids().length - suffix.length;
                int keep = Math.min(textLen, SEQ + 1 - longest - suffix.length);
                int[] prompt = Arrays.copyOf(doc, keep + suffix.length);
                System.arraycopy(suffix, 0, prompt, keep, suffix.length);
                expectedExamples.add(Arrays.toString(prompt) + " -> " + label);
            }
        }
        List<ValidationExample> examples = ArrowShardReader.readValidationExamples(conf, out.toString(), m);
        assertEquals(expectedExamples, examples.stream().map(e -> Arrays.toString(e.promptIds()) + " -> " + e.label()).toList());
        assertEquals(examples.size(), m.rows("validation-examples"));
        assertTrue(examples.stream().anyMatch(e -> e.label() == 1) && examples.stream().anyMatch(e -> e.label() == 0));
        assertTrue(examples.stream().anyMatch(e -> e.promptIds().length == SEQ + 1 - longest), "some prompts were truncated");
        for (ValidationExample e : examples) assertTrue(tokenizer.decode(e.promptIds()).endsWith("\nLabel:"));
        assertArrayEquals(tokenizer.encode(" spam"), m.labels().get(1).ids());
    }

    @Test
    void labelObjectiveGivesEachLabelledDocumentOneBlockWhoseOnlyTargetsAreItsLabel() throws IOException {
        Path manifestPath = mixedCorpus(shared.resolve("mixed-label"));
        Path out = dir.resolve("label");
        ShardManifest m = TokenizeStage.run(sc, spec(manifestPath, out, 0.25, 2, TrainingObjective.AUTO));
        assertEquals("label", m.objective(), "a labelled dataset trains text -> label by default");
        int[] suffix = tokenizer.encode("\nLabel:");
        int[][] labelIds = {tokenizer.encode(" ham"), tokenizer.encode(" spam")};
        List<ValidationExample> examples = ArrowShardReader.readValidationExamples(conf, out.toString(), m);
        List<String> validationPrompts = new ArrayList<>();
        int labelBlocks = 0, truncated = 0;
        for (String split : List.of("train", "validation")) {
            for (ShardManifest.Shard s : m.split(split)) {
                TokenBlocks blocks = ArrowShardReader.readBlocks(conf, out.toString(), m, s);
                for (int b = 0; b < blocks.size(); b++) {
                    int[] block = blocks.block(b);
                    boolean[] mask = blocks.mask(b);
                    int first = -1, last = -1;
                    for (int i = 0; i <= SEQ; i++) if (mask[i]) { if (first < 0) first = i; last = i; }
                    if (first < 0) continue;
                    int[] targets = Arrays.copyOfRange(block, first, last + 1);
                    int label = Arrays.equals(targets, labelIds[0]) ? 0 : Arrays.equals(targets, labelIds[1]) ? 1 : -1;
                    if (label < 0) continue; // a packed block of unlabelled text (books, question/answer)
                    labelBlocks++;
                    // the targets are exactly the label, right after the label prompt; the rest is padding
                    assertArrayEquals(suffix, Arrays.copyOfRange(block, first - suffix.length, first), s.file() + " block " + b);
                    for (int i = last + 1; i <= SEQ; i++) assertEquals(m.padTokenId(), block[i]);
                    if (last == SEQ) truncated++;
                    if (split.equals("validation")) validationPrompts.add(Arrays.toString(Arrays.copyOf(block, first)) + " -> " + label);
                }
            }
        }
        // 40 ham.jsonl documents and 10 + 10 in the labelled directory
        assertEquals(60, labelBlocks);
        assertTrue(truncated > 0, "long documents are cut to their start");
        // evaluation scores the labels after exactly the prompts training saw
        assertEquals(validationPrompts, examples.stream().map(e -> Arrays.toString(e.promptIds()) + " -> " + e.label()).toList());

        ShardManifest lm = TokenizeStage.run(sc, spec(manifestPath, dir.resolve("lm"), 0.25, 2, TrainingObjective.LANGUAGE_MODEL));
        assertEquals("language_model", lm.objective());
        long labelTargets = m.split("train").stream().mapToLong(ShardManifest.Shard::targets).sum();
        long lmTargets = lm.split("train").stream().mapToLong(ShardManifest.Shard::targets).sum();
        assertTrue(labelTargets < lmTargets, "the labelled documents' text is no longer a target: " + labelTargets + " vs " + lmTargets);
    }

    @Test
    void oneShardWithoutValidationIsExactlyThePackedCorpusWithPromptTokensOutOfTheLoss() throws IOException {
        Path manifestPath = mixedCorpus(shared.resolve("mixed-1"));
        Path out = dir.resolve("one");
        ShardManifest m = TokenizeStage.run(sc, spec(manifestPath, out, 0.0, 1));
        assertEquals(0, m.rows("validation"));
        assertEquals(0, m.rows("validation-examples"));

        List<EncodedDocument> encoded = new DocumentEncoder(tokenizer, List.of("ham", "spam"), "\nLabel:").encode(documents(manifestPath));
        List<int[]> tokens = encoded.stream().map(EncodedDocument::tokens).toList();
        List<boolean[]> masks = encoded.stream().map(EncodedDocument::lossMask).toList();
        TokenBlocks expected = TokenBlocks.pack(tokens, masks, m.eosTokenId(), SEQ, m.padTokenId());
        TokenBlocks got = ArrowShardReader.readSplit(conf, out.toString(), m, "train");
        assertEquals(expected.size(), got.size());
        for (int b = 0; b < got.size(); b++) {
            assertArrayEquals(expected.block(b), got.block(b), "block " + b);
            assertArrayEquals(expected.mask(b), got.mask(b), "block " + b);
        }

        // the question tokens of a prompt/response document are never targets, the answer tokens always are
        int[] question = tokenizer.encode("Question: " + sentence(600, 4) + "\nAnswer:");
        int[] answer = tokenizer.encode(" " + sentence(700, 3));
        List<Integer> stream = new ArrayList<>();
        List<Boolean> streamMask = new ArrayList<>();
        for (int b = 0; b < got.size(); b++) {
            for (int i = b == 0 ? 0 : 1; i <= SEQ; i++) {
                stream.add(got.block(b)[i]);
                streamMask.add(got.mask(b)[i]);
            }
        }
        int at = Collections.indexOfSubList(stream, Arrays.stream(question).boxed().toList());
        assertTrue(at >= 0, "the first question is in the stream");
        for (int i = 0; i < question.length; i++) assertFalse(streamMask.get(at + i), "question token " + i);
        for (int i = 0; i < answer.length; i++) assertTrue(streamMask.get(at + question.length + i), "answer token " + i);
        assertTrue(streamMask.get(at + question.length + answer.length), "the end-of-text token is a target");
    }

    @Test
    void rerunningGivesByteIdenticalFiles() throws IOException {
        Path manifestPath = mixedCorpus(shared.resolve("mixed-2"));
        TokenizeStage.run(sc, spec(manifestPath, dir.resolve("a"), 0.25, 3));
        TokenizeStage.run(sc, spec(manifestPath, dir.resolve("b"), 0.25, 3));
        Map<String, String> a = fileHashes(dir.resolve("a")), b = fileHashes(dir.resolve("b"));
        assertEquals(11, a.size(), a.keySet().toString()); // 9 shards, manifest.json, _SUCCESS
        assertEquals(a, b);
        // and over an existing output
        TokenizeStage.run(sc, spec(manifestPath, dir.resolve("a"), 0.25, 3));
        assertEquals(a, fileHashes(dir.resolve("a")));
    }

    @Test
    void documentsKeepTheirSplitWhenAnotherDocumentIsAdded() throws IOException {
        Path root = shared.resolve("grow");
        Files.createDirectories(root);
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 60; i++) text.append(sentence(i, 6)).append("\n\n");
        Files.writeString(root.resolve("a.txt"), text);
        Path manifestPath = root.resolve("m.yaml");
        Files.writeString(manifestPath, "name: grow\nsources: [{name: a, uri: a.txt, format: text}]\n");
        ShardManifest before = TokenizeStage.run(sc, spec(manifestPath, dir.resolve("before"), 0.3, 2));
        Set<String> trainBefore = texts(dir.resolve("before"), before, "train");
        Set<String> validationBefore = texts(dir.resolve("before"), before, "validation");
        assertEquals(60, trainBefore.size() + validationBefore.size());
        assertFalse(validationBefore.isEmpty());

        Files.writeString(root.resolve("a.txt"), sentence(999, 7) + "\n\n" + text);
        ShardManifest after = TokenizeStage.run(sc, spec(manifestPath, dir.resolve("after"), 0.3, 2));
        Set<String> trainAfter = texts(dir.resolve("after"), after, "train");
        Set<String> validationAfter = texts(dir.resolve("after"), after, "validation");
        assertEquals(61, trainAfter.size() + validationAfter.size());
        assertTrue(trainAfter.containsAll(trainBefore));
        assertTrue(validationAfter.containsAll(validationBefore));
    }

    @Test
    void anEmptyCorpusIsAnErrorAndLeavesNothing() throws IOException {
        Path root = dir.resolve("empty");
        Files.createDirectories(root);
        Files.writeString(root.resolve("blank.txt"), "\n\n   \n");
        Files.writeString(root.resolve("m.yaml"), "name: empty\nsources: [{name: b, uri: blank.txt, format: text}]\n");
        IOException e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.1, 2), IOException.class);
        assertTrue(e.getMessage().contains("m.yaml") && e.getMessage().contains("hold no documents"), e.getMessage());
    }

    @Test
    void aCorpusWithNoTrainingBlocksIsAnError() throws IOException {
        Path root = dir.resolve("allval");
        Files.createDirectories(root);
        Files.writeString(root.resolve("one.txt"), "just one document\n");
        Files.writeString(root.resolve("m.yaml"), "name: allval\nsources: [{name: b, uri: one.txt, format: text}]\n");
        IOException e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.999999, 1), IOException.class);
        assertTrue(e.getMessage().contains("m.yaml") && e.getMessage().contains("no training blocks"), e.getMessage());
    }

    @Test
    void aFileThatIsNotUtf8IsNamedWithItsLine() throws IOException {
        Path root = dir.resolve("latin1");
        Files.createDirectories(root);
        Files.createDirectories(root.resolve("corpus"));
        Files.writeString(root.resolve("corpus/good.txt"), "fine text\n");
        Files.write(root.resolve("corpus/latin1.txt"), "first\n\nsecond\ncaf\u00e9 au lait\n".getBytes(StandardCharsets.ISO_8859_1));
        Files.writeString(root.resolve("m.yaml"), "name: l\nsources: [{name: t, uri: corpus, format: text}]\n");
        IOException e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.1, 2), IOException.class);
        assertTrue(e.getMessage().contains("latin1.txt:4: not valid UTF-8"), e.getMessage());
        assertFalse(e.getMessage().contains("\n") || e.getMessage().contains("Job aborted"), e.getMessage());
    }

    @Test
    void aSixMegabyteLineIsAClearError() throws IOException {
        Path root = dir.resolve("bigline");
        Files.createDirectories(root);
        try (OutputStream o = Files.newOutputStream(root.resolve("big.jsonl"))) {
            o.write("{\"text\": \"ok\"}\n{\"text\": \"".getBytes(StandardCharsets.UTF_8));
            byte[] chunk = "0123456789".repeat(100_000).getBytes(StandardCharsets.UTF_8);
            for (int i = 0; i < 6; i++) o.write(chunk);
            o.write("\"}\n".getBytes(StandardCharsets.UTF_8));
        }
        Files.writeString(root.resolve("m.yaml"), "name: b\nsources: [{name: b, uri: big.jsonl, format: jsonl}]\n");
        IOException e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.1, 2), IOException.class);
        assertTrue(e.getMessage().contains("big.jsonl:2: line is longer than the limit of 4194304 bytes"), e.getMessage());
    }

    @Test
    void anUnknownLabelAndAMissingSourceAreClearErrors() throws IOException {
        Path root = dir.resolve("labels");
        Files.createDirectories(root);
        Files.writeString(root.resolve("l.jsonl"), "{\"text\": \"a\", \"y\": \"ham\"}\n{\"text\": \"b\", \"y\": \"eggs\"}\n");
        Files.writeString(root.resolve("m.yaml"), "name: l\nlabels: [ham, spam]\nsources: [{name: l, uri: l.jsonl, format: jsonl, label_field: y}]\n");
        IOException e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.1, 2), IOException.class);
        assertTrue(e.getMessage().contains("l.jsonl:2: unknown label 'eggs'"), e.getMessage());

        Files.writeString(root.resolve("m.yaml"), "name: l\nsources: [{name: gone, uri: gone.txt, format: text}]\n");
        e = assertFailsCleanly(root, spec(root.resolve("m.yaml"), root.resolve("out"), 0.1, 2), IOException.class);
        assertTrue(e.getMessage().contains("source 'gone'") && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void changedShardsAndAnotherTokenizerAreCaughtWhenReading() throws IOException {
        Path manifestPath = mixedCorpus(shared.resolve("mixed-3"));
        Path out = dir.resolve("out");
        ShardManifest m = TokenizeStage.run(sc, spec(manifestPath, out, 0.25, 2));

        Path shard = out.resolve("train/part-00001.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length / 2] ^= 0x10;
        Files.write(shard, bytes);
        // the local file system's own checksum side file would catch the change first; this is about the manifest's
        Files.delete(out.resolve("train/.part-00001.arrow.crc"));
        IOException e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(conf, out.toString(), m, "train"));
        assertTrue(e.getMessage().contains("train/part-00001.arrow: sha256") && e.getMessage().contains("(file changed or corrupted)"), e.getMessage());

        String json = Files.readString(out.resolve("manifest.json")).replace("\"seq_len\" : 32", "\"seq_len\" : 64");
        Files.writeString(out.resolve("manifest.json"), json);
        Files.deleteIfExists(out.resolve(".manifest.json.crc"));     // none since files are replaced in one rename
        ShardManifest edited = ShardManifest.read(conf, out.toString());
        e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(conf, out.toString(), edited, "validation"));
        assertTrue(e.getMessage().contains("validation/part-00000.arrow: column input_ids"), e.getMessage());

        Path other = dir.resolve("other-tokenizer.json");
        Files.writeString(other, Files.readString(Path.of(tokenizerUri)) + "\n");
        try (TextTokenizer changed = TextTokenizer.fromFile(other)) {
            IllegalArgumentException t = assertThrows(IllegalArgumentException.class, () -> m.checkTokenizer(changed.fingerprint()));
            assertTrue(t.getMessage().contains(tokenizer.fingerprint()) && t.getMessage().contains(changed.fingerprint()), t.getMessage());
        }
        m.checkTokenizer(tokenizer.fingerprint());
    }

    @Test
    void stageErrorsRecoverTheTaskMessage() {
        IOException original = new IOException("f.txt:3: not valid UTF-8");
        assertSame(original, StageErrors.unwrap(new SparkException("Job aborted", new UncheckedIOException(original.getMessage(), original))));
        IllegalArgumentException bad = new IllegalArgumentException("bad label");
        assertSame(bad, assertThrows(IllegalArgumentException.class, () -> StageErrors.unwrap(new SparkException("Job aborted", bad))));
        // a task exception the driver could not deserialize leaves only the stage report
        SparkException report = new SparkException("Job aborted due to stage failure: Task 0 in stage 1.0 failed 4 times, most recent"
                + " failure: Lost task 0.3 in stage 1.0 (TID 7) (10.0.0.1 executor 2): java.io.IOException: f.txt:3: not valid UTF-8\n"
                + "\tat io.sparklora.data.Utf8LineReader.decode(Utf8LineReader.java:1)\n\nDriver stacktrace:");
        assertEquals("f.txt:3: not valid UTF-8", StageErrors.unwrap(report).getMessage());
    }

    /** Runs the stage expecting {@code type}; checks nothing was written at or beside the output. */
    private static <T extends Throwable> T assertFailsCleanly(Path root, TokenizeSpec spec, Class<T> type) throws IOException {
        Set<String> before = listing(root);
        T e = assertThrows(type, () -> TokenizeStage.run(sc, spec));
        assertFalse(Files.exists(Path.of(spec.outputUri())), "no output directory");
        assertEquals(before, listing(root), "nothing new beside the output (no temporary directory)");
        return e;
    }

    private static Set<String> listing(Path root) throws IOException {
        try (Stream<Path> files = Files.list(root)) {
            return new HashSet<>(files.map(p -> p.getFileName().toString()).toList());
        }
    }

    /** The documents of a shard's token stream (end-of-text separates them; trailing padding dropped). */
    private static List<int[]> splitDocuments(TokenBlocks blocks, int eos) {
        List<int[]> docs = new ArrayList<>();
        List<Integer> cur = new ArrayList<>();
        for (int b = 0; b < blocks.size(); b++) {
            for (int i = b == 0 ? 0 : 1; i <= blocks.seqLen(); i++) {
                int t = blocks.block(b)[i];
                boolean target = blocks.mask(b)[i];
                if (t == eos && target) {
                    docs.add(cur.stream().mapToInt(Integer::intValue).toArray());
                    cur.clear();
                } else if (t != eos) {
                    cur.add(t);
                }
            }
        }
        assertTrue(cur.isEmpty(), "the stream ends with an end-of-text token");
        return docs;
    }

    private static Set<String> texts(Path out, ShardManifest m, String split) throws IOException {
        Set<String> texts = new HashSet<>();
        for (ShardManifest.Shard s : m.split(split)) {
            for (int[] doc : splitDocuments(ArrowShardReader.readBlocks(conf, out.toString(), m, s), m.eosTokenId())) {
                texts.add(tokenizer.decode(doc));
            }
        }
        return texts;
    }

    private static Map<String, String> fileHashes(Path root) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> files = Files.walk(root)) {
            for (Path p : files.filter(Files::isRegularFile).toList()) {
                String rel = root.relativize(p).toString();
                if (rel.startsWith(".") || rel.contains("/.")) continue; // Hadoop's local .crc side files
                out.put(rel, sha256(Files.readAllBytes(p)));
            }
        }
        return out;
    }

    private static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
