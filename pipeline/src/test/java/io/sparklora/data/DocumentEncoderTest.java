package io.sparklora.data;

import io.sparklora.tokenize.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DocumentEncoderTest {
    private static TextTokenizer tokenizer;

    @BeforeAll
    static void load() throws Exception {
        tokenizer = TextTokenizer.fromFile(Path.of(DocumentEncoderTest.class.getResource("/tokenizers/tiny-bpe/tokenizer.json").toURI()));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void laysOutPlainLabelledAndPromptResponseDocuments() {
        List<String> labels = List.of("ham", "spam");
        DocumentEncoder encoder = new DocumentEncoder(tokenizer, labels, "\nLabel:");
        List<EncodedDocument> out = encoder.encode(List.of(
                Document.text("the river ran", -1, "a:1"),
                Document.text("buy now", 1, "b:1"),
                Document.promptResponse("Question: what ran?", " the river", "c:1")));

        EncodedDocument plain = out.get(0);
        assertArrayEquals(tokenizer.encode("the river ran"), plain.tokens());
        assertNull(plain.lossMask());

        EncodedDocument labelled = out.get(1);
        int[] text = tokenizer.encode("buy now"), suffix = tokenizer.encode("\nLabel:");
        int[] prompt = java.util.Arrays.copyOf(text, text.length + suffix.length);
        System.arraycopy(suffix, 0, prompt, text.length, suffix.length);
        int[] spam = tokenizer.encode(" spam");
        assertArrayEquals(spam, encoder.labelIds()[1]);
        int[] expected = Arrays.copyOf(prompt, prompt.length + spam.length);
        System.arraycopy(spam, 0, expected, prompt.length, spam.length);
        assertArrayEquals(expected, labelled.tokens());
        assertNull(labelled.lossMask(), "a labelled document is trained on every token");
        assertArrayEquals(prompt, labelled.promptTokens());
        assertEquals(1, labelled.label());
        assertArrayEquals(spam, labelled.labelTokens());
        // a prompt cut to fit keeps the START of the text and the whole label prompt
        assertArrayEquals(prompt, labelled.truncatedPrompt(prompt.length, 0));
        int[] cut = labelled.truncatedPrompt(suffix.length + 1, 0);
        assertEquals(suffix.length + 1, cut.length);
        assertEquals(text[0], cut[0]);
        assertArrayEquals(suffix, java.util.Arrays.copyOfRange(cut, 1, cut.length));
        assertArrayEquals(suffix, labelled.truncatedPrompt(suffix.length, 0));
        assertThrows(IllegalArgumentException.class, () -> labelled.truncatedPrompt(suffix.length - 1, 0));
        assertEquals("buy now\nLabel: spam", tokenizer.decode(labelled.tokens()));

        EncodedDocument pair = out.get(2);
        int p = tokenizer.encode("Question: what ran?").length;
        boolean[] mask = pair.lossMask();
        assertEquals(pair.tokens().length, mask.length);
        for (int i = 0; i < mask.length; i++) assertEquals(i >= p, mask[i], "position " + i);
        assertTrue(mask[mask.length - 1]);
        assertFalse(mask[0]);
        assertEquals(-1, pair.label());
    }
}
