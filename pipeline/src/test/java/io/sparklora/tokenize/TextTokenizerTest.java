package io.sparklora.tokenize;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TextTokenizerTest {

    private static final String LONG_TEXT = "The river ran past the old mill every morning. ".repeat(200);
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Path fixture;
    private static TextTokenizer tiny;

    @TempDir
    Path dir;

    @BeforeAll
    static void loadFixture() throws IOException, URISyntaxException {
        fixture = Path.of(TextTokenizerTest.class.getResource("/tokenizers/tiny-bpe/tokenizer.json").toURI());
        tiny = TextTokenizer.fromFile(fixture);
    }

    @AfterAll
    static void closeFixture() {
        tiny.close();
    }

    @Test
    void readsVocabularyAndEndOfTextFromTheFixture() {
        assertEquals(320, tiny.vocabSize());
        assertEquals(319, tiny.eosTokenId());
        assertEquals(OptionalInt.of(319), tiny.tokenId("<|endoftext|>"));
        assertEquals(OptionalInt.of(220), tiny.tokenId("Ġ"));
        assertTrue(tiny.tokenId("Ġthe").isPresent());
        assertEquals(OptionalInt.empty(), tiny.tokenId("no such token"));
    }

    @Test
    void encodesAndDecodesText() {
        String text = "The miller's daughter wrote 12 stories — «naïve» ones 🙂";
        int[] ids = tiny.encode(text);
        assertTrue(ids.length > 0);
        assertEquals(text, tiny.decode(ids));
        assertArrayEquals(new int[0], tiny.encode(""));
        assertArrayEquals(new int[] {tiny.tokenId("Ġthe").getAsInt()}, tiny.encode(" the"));
    }

    @Test
    void endOfTextInTheInputIsTheSpecialTokenAndSurvivesDecoding() {
        int[] ids = tiny.encode("one<|endoftext|>two");
        assertEquals(1, countOf(ids, tiny.eosTokenId()));
        assertEquals("one<|endoftext|>two", tiny.decode(ids));
    }

    @Test
    void longTextIsNeitherTruncatedNorPaddedEvenWhenTheFileAsksForIt() throws IOException {
        ObjectNode root = fixtureJson();
        root.set("truncation", JSON.readTree(
                "{\"direction\":\"Right\",\"max_length\":8,\"strategy\":\"LongestFirst\",\"stride\":0}"));
        root.set("padding", JSON.readTree("{\"strategy\":{\"Fixed\":4096},\"direction\":\"Right\","
                + "\"pad_to_multiple_of\":null,\"pad_id\":319,\"pad_type_id\":0,\"pad_token\":\"<|endoftext|>\"}"));
        try (TextTokenizer tokenizer = TextTokenizer.fromFile(write(root))) {
            int[] ids = tokenizer.encode(LONG_TEXT);
            assertArrayEquals(tiny.encode(LONG_TEXT), ids);
            assertTrue(ids.length > 1000 && ids.length < 4096, "length " + ids.length);
            assertEquals(LONG_TEXT, tokenizer.decode(ids));
            assertArrayEquals(ids, tokenizer.encodeBatch(List.of(LONG_TEXT))[0]);
        }
    }

    @Test
    void addsSpecialTokensOnlyWhenAsked() throws IOException {
        // A post-processor that puts <|endoftext|> in front, like the BOS token of Llama-style tokenizers.
        ObjectNode root = fixtureJson();
        root.set("post_processor", JSON.readTree("{\"type\":\"TemplateProcessing\","
                + "\"single\":[{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},"
                + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                + "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
                + "\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\",\"ids\":[319],"
                + "\"tokens\":[\"<|endoftext|>\"]}}}"));
        try (TextTokenizer tokenizer = TextTokenizer.fromFile(write(root))) {
            int[] plain = tokenizer.encode("the river");
            int[] withSpecial = tokenizer.encode("the river", true);
            assertArrayEquals(tiny.encode("the river"), plain);
            assertEquals(plain.length + 1, withSpecial.length);
            assertEquals(319, withSpecial[0]);
            assertEquals(319, tokenizer.encodeBatch(List.of("a", "b"), true)[1][0]);
            assertEquals(0, countOf(tokenizer.encodeBatch(List.of("a", "b"))[1], 319));
        }
    }

    @Test
    void batchEncodingMatchesOneByOneEncoding() {
        List<String> texts = List.of("The wheel turned.", "", "naïve 🙂", LONG_TEXT, "the the the");
        int[][] batch = tiny.encodeBatch(texts);
        assertEquals(texts.size(), batch.length);
        for (int i = 0; i < texts.size(); i++) {
            assertArrayEquals(tiny.encode(texts.get(i)), batch[i], "text " + i);
        }
        assertEquals(0, tiny.encodeBatch(List.of()).length);
    }

    @Test
    void encodingFromManyThreadsAtOnceGivesTheSameIds() {
        List<String> texts = IntStream.range(0, 64).mapToObj(i -> "document " + i + ": " + LONG_TEXT.substring(i)).toList();
        List<int[]> serial = texts.stream().map(tiny::encode).toList();
        List<int[]> parallel = texts.parallelStream().map(tiny::encode).toList();
        for (int i = 0; i < texts.size(); i++) {
            assertArrayEquals(serial.get(i), parallel.get(i), "text " + i);
        }
    }

    @Test
    void decodeRejectsIdsOutsideTheVocabulary() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tiny.decode(new int[] {5, 320}));
        assertTrue(e.getMessage().contains("320"), e.getMessage());
    }

    @Test
    void fingerprintIsTheSha256OfTheFileBytes() throws IOException, NoSuchAlgorithmException {
        String expected = HexFormat.of().formatHex(
                MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(fixture)));
        assertEquals(expected, tiny.fingerprint());
        assertEquals(64, tiny.fingerprint().length());

        ObjectNode changed = fixtureJson();
        changed.put("version", "1.0");
        try (TextTokenizer reformatted = TextTokenizer.fromFile(write(JSON.writeValueAsString(changed)))) {
            assertNotEquals(tiny.fingerprint(), reformatted.fingerprint(), "same tokens, different bytes");
        }
    }

    @Test
    void loadsFromAModelDirectory() throws IOException {
        Files.copy(fixture, dir.resolve("tokenizer.json"));
        try (TextTokenizer tokenizer = TextTokenizer.fromModelDir(dir)) {
            assertEquals(tiny.fingerprint(), tokenizer.fingerprint());
            assertArrayEquals(tiny.encode("the mill"), tokenizer.encode("the mill"));
        }
    }

    @Test
    void modelDirectoryWithoutTokenizerJsonIsAnErrorNamingTheDirectory() throws IOException {
        FileNotFoundException empty = assertThrows(FileNotFoundException.class, () -> TextTokenizer.fromModelDir(dir));
        assertTrue(empty.getMessage().contains(dir.toString()), empty.getMessage());

        Files.writeString(dir.resolve("vocab.json"), "{}");
        Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n");
        FileNotFoundException slowOnly = assertThrows(FileNotFoundException.class, () -> TextTokenizer.fromModelDir(dir));
        assertTrue(slowOnly.getMessage().contains(dir.toString()), slowOnly.getMessage());
        assertTrue(slowOnly.getMessage().contains("tokenizer.json is required"), slowOnly.getMessage());

        Path missing = dir.resolve("no-such-model");
        FileNotFoundException noDir = assertThrows(FileNotFoundException.class, () -> TextTokenizer.fromModelDir(missing));
        assertTrue(noDir.getMessage().contains(missing.toString()), noDir.getMessage());
    }

    @Test
    void missingFileIsAnErrorNamingTheFile() {
        Path missing = dir.resolve("absent/tokenizer.json");
        FileNotFoundException e = assertThrows(FileNotFoundException.class, () -> TextTokenizer.fromFile(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }

    @Test
    void malformedJsonIsAnErrorNamingTheFile() throws IOException {
        Path broken = write("{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", ");
        IOException e = assertThrows(IOException.class, () -> TextTokenizer.fromFile(broken));
        assertTrue(e.getMessage().contains(broken.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("malformed JSON"), e.getMessage());
    }

    @Test
    void jsonThatIsNotATokenizerIsAnErrorNamingTheFile() throws IOException {
        Path notTokenizer = write("{\"hello\": \"world\"}");
        IOException noVocab = assertThrows(IOException.class, () -> TextTokenizer.fromFile(notTokenizer));
        assertTrue(noVocab.getMessage().contains(notTokenizer.toString()), noVocab.getMessage());

        ObjectNode root = fixtureJson();
        ((ObjectNode) root.get("model")).put("type", "NoSuchModel");
        Path rejected = write(root);
        IOException nativeError = assertThrows(IOException.class, () -> TextTokenizer.fromFile(rejected));
        assertTrue(nativeError.getMessage().contains(rejected.toString()), nativeError.getMessage());
    }

    @Test
    void missingEndOfTextTokenIsAnErrorListingTheCandidates() throws IOException {
        ObjectNode root = fixtureJson();
        ((ObjectNode) root.at("/model/vocab")).remove("<|endoftext|>");
        root.set("added_tokens", JSON.createArrayNode());
        try (TextTokenizer tokenizer = TextTokenizer.fromFile(write(root))) {
            assertEquals(319, tokenizer.vocabSize());
            IllegalStateException e = assertThrows(IllegalStateException.class, tokenizer::eosTokenId);
            assertTrue(e.getMessage().contains("</s>"), e.getMessage());
        }
    }

    @Test
    void findsEndOfSentenceTokensOfOtherFamiliesAndListVocabularies() throws IOException {
        // A minimal Unigram (SentencePiece-style) tokenizer: its vocabulary is a list of [piece, score].
        String unigram = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                + "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,"
                + "\"rstrip\":false,\"normalized\":false,\"special\":true},"
                + "{\"id\":1,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,"
                + "\"rstrip\":false,\"normalized\":false,\"special\":true}],"
                + "\"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":null,"
                + "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"</s>\",0.0],"
                + "[\"a\",-1.0],[\"b\",-1.5],[\"ab\",-1.2]]}}";
        try (TextTokenizer tokenizer = TextTokenizer.fromFile(write(unigram))) {
            assertEquals(5, tokenizer.vocabSize());
            assertEquals(1, tokenizer.eosTokenId());
            assertEquals(OptionalInt.of(4), tokenizer.tokenId("ab"));
            assertArrayEquals(new int[] {4, 2}, tokenizer.encode("aba"));
        }
    }

    @Test
    void closingTwiceIsHarmlessAndUseAfterCloseFails() throws IOException {
        TextTokenizer tokenizer = TextTokenizer.fromFile(fixture);
        tokenizer.close();
        tokenizer.close();
        assertThrows(IllegalStateException.class, () -> tokenizer.encode("the"));
    }

    @Test
    void pinsDjlToTheBundledCpuLibraryWithoutNetworkAccess() {
        // Set by TextTokenizer before DJL's first use, unless the environment chose otherwise.
        if (System.getenv("DJL_OFFLINE") == null) {
            assertEquals("true", System.getProperty("ai.djl.offline"));
        }
        if (System.getenv("RUST_FLAVOR") == null) {
            assertEquals("cpu", System.getProperty("RUST_FLAVOR"));
        }
        if (System.getenv("OPT_OUT_TRACKING") == null) {
            assertEquals("true", System.getProperty("OPT_OUT_TRACKING"));
        }
        assertFalse(tiny.toString().isEmpty());
    }

    private static int countOf(int[] ids, int id) {
        int n = 0;
        for (int x : ids) {
            n += x == id ? 1 : 0;
        }
        return n;
    }

    private static ObjectNode fixtureJson() throws IOException {
        return (ObjectNode) JSON.readTree(fixture.toFile());
    }

    private Path write(ObjectNode root) throws IOException {
        return write(JSON.writeValueAsString(root));
    }

    private Path write(String content) throws IOException {
        Path file = Files.createTempFile(dir, "tokenizer", ".json");
        Files.writeString(file, content);
        return file;
    }
}
