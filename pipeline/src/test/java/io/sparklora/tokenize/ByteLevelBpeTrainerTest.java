package io.sparklora.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ByteLevelBpeTrainerTest {

    private static final List<String> STORY = List.of(
            "The cat sat on the mat. The dog sat on the log. The cat and the dog are friends.",
            "Every morning the cat walks to the river, and every evening the dog walks back home.",
            "Naïve cafés serve crème brûlée; the cat prefers fish, the dog prefers bones.");

    @TempDir
    Path dir;

    @Test
    void writtenTokenizerRoundTripsAsciiAndNonAsciiTextThroughTheTokenizersLibrary() throws IOException {
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(STORY, 300, file);

        try (TextTokenizer tokenizer = TextTokenizer.fromFile(file)) {
            for (String text : List.of(
                    "The cat sat on the mat.",
                    "Unseen words: zebra, quixotic, 12345!",
                    "naïve café — 日本語のテキスト, emoji 🙂🐈, Ελληνικά",
                    "  leading spaces, tabs\tand\nnew lines\r\n",
                    "")) {
                assertEquals(text, tokenizer.decode(tokenizer.encode(text)), "round trip of: " + text);
            }
        }
    }

    @Test
    void frequentWordsBecomeSingleTokens() throws IOException {
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(STORY, 320, file);

        try (TextTokenizer tokenizer = TextTokenizer.fromFile(file)) {
            for (String word : List.of(" the", " cat", " dog", "The")) {
                assertEquals(1, tokenizer.encode(word).length, "'" + word + "' should be one token");
            }
            assertEquals(3, tokenizer.encode("The cat the").length);
            assertTrue(tokenizer.tokenId("Ġcat").isPresent(), "a leading space is spelled Ġ in the vocabulary");
        }
    }

    @Test
    void vocabularyStartsWithGpt2ByteSymbolsAndEndsWithEndOfText() throws IOException {
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(STORY, 300, file);

        try (TextTokenizer tokenizer = TextTokenizer.fromFile(file)) {
            assertEquals(300, tokenizer.vocabSize());
            assertEquals(299, tokenizer.eosTokenId());
            assertEquals(299, tokenizer.tokenId(ByteLevelBpeTrainer.END_OF_TEXT).getAsInt());
            // The same ids as in GPT-2's own vocabulary.
            assertEquals(0, tokenizer.tokenId("!").getAsInt());
            assertEquals(32, tokenizer.tokenId("A").getAsInt());
            assertEquals(188, tokenizer.tokenId("\u0100").getAsInt(), "byte 0");
            assertEquals(198, tokenizer.tokenId("\u010A").getAsInt(), "newline");
            assertEquals(220, tokenizer.tokenId("\u0120").getAsInt(), "space");
            assertEquals(255, tokenizer.tokenId("\u0143").getAsInt(), "soft hyphen, the last remapped byte");
        }
        String[] symbolOfByte = ByteLevelBpeTrainer.gpt2SymbolOfByte();
        assertEquals("Ġ", symbolOfByte[' ']);
        assertEquals("a", symbolOfByte['a']);
        assertEquals("é", symbolOfByte[0xE9]);
        assertEquals(256, Stream.of(symbolOfByte).distinct().count());
    }

    @Test
    void writesGpt2StyleComponents() throws IOException {
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(STORY, 280, file);

        JsonNode root = new ObjectMapper().readTree(file.toFile());
        assertEquals("ByteLevel", root.at("/pre_tokenizer/type").asText());
        assertFalse(root.at("/pre_tokenizer/add_prefix_space").asBoolean());
        assertTrue(root.at("/pre_tokenizer/use_regex").asBoolean());
        assertEquals("ByteLevel", root.at("/decoder/type").asText());
        assertEquals("ByteLevel", root.at("/post_processor/type").asText());
        assertTrue(root.at("/post_processor/trim_offsets").asBoolean());
        assertEquals("BPE", root.at("/model/type").asText());
        assertEquals(280 - 256 - 1, root.at("/model/merges").size());
        assertEquals(280, root.at("/model/vocab").size());
        assertEquals(ByteLevelBpeTrainer.END_OF_TEXT, root.at("/added_tokens/0/content").asText());
        assertTrue(root.at("/added_tokens/0/special").asBoolean());
    }

    @Test
    void mergesTheMostFrequentPairFirstAndBreaksTiesBySmallerIds() throws IOException {
        // Words: "ab", " ab" x2, " cd". (a,b) is most frequent, then (Ġ,ab); (Ġ,c) and (c,d) tie at 1 and
        // (c,d) wins because c (id 66) < Ġ (id 220).
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(List.of("ab ab ab cd"), 261, file);

        JsonNode merges = new ObjectMapper().readTree(file.toFile()).at("/model/merges");
        List<String> learned = new ArrayList<>();
        merges.forEach(m -> learned.add(m.asText()));
        assertEquals(List.of("a b", "Ġ ab", "c d", "Ġ cd"), learned);
    }

    @Test
    void stopsEarlyWhenTheCorpusRunsOutOfPairs() throws IOException {
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(List.of("abc"), 1000, file);

        try (TextTokenizer tokenizer = TextTokenizer.fromFile(file)) {
            assertEquals(256 + 2 + 1, tokenizer.vocabSize());
            assertEquals(1, tokenizer.encode("abc").length);
        }
    }

    @Test
    void trainingIsDeterministicAndLeavesNoTemporaryFiles() throws IOException {
        Path first = dir.resolve("first/tokenizer.json");
        Path second = dir.resolve("second/tokenizer.json");
        ByteLevelBpeTrainer.train(STORY, 330, first);
        ByteLevelBpeTrainer.train(STORY, 330, second);
        ByteLevelBpeTrainer.train(STORY, 330, second); // overwrites in place

        assertArrayEquals(Files.readAllBytes(first), Files.readAllBytes(second));
        try (Stream<Path> files = Files.list(second.getParent())) {
            assertEquals(List.of(second), files.toList());
        }
    }

    @Test
    void committedFixtureIsWhatTheTrainerProducesFromItsCorpus() throws IOException {
        String corpus = resourceText("/tokenizers/tiny-bpe/corpus.txt").replace("\r\n", "\n");
        Path file = dir.resolve("tokenizer.json");
        ByteLevelBpeTrainer.train(List.of(corpus), 320, file);

        assertEquals(resourceText("/tokenizers/tiny-bpe/tokenizer.json"), Files.readString(file),
                "the trainer changed; regenerate pipeline/src/test/resources/tokenizers/tiny-bpe/tokenizer.json"
                        + " as its README says");
    }

    @Test
    void rejectsVocabularyTooSmallForTheByteAlphabet() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ByteLevelBpeTrainer.train(STORY, 256, dir.resolve("tokenizer.json")));
        assertTrue(e.getMessage().contains("257"), e.getMessage());
    }

    private static String resourceText(String name) throws IOException {
        try (InputStream in = ByteLevelBpeTrainerTest.class.getResourceAsStream(name)) {
            assertTrue(in != null, "missing test resource " + name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
