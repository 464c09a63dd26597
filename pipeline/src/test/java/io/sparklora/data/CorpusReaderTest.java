package io.sparklora.data;

import org.apache.hadoop.conf.Configuration;
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
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CorpusReaderTest {
    private static final Configuration CONF = new Configuration();

    @TempDir
    Path dir;

    private Path write(String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.write(p, content);
        return p;
    }

    private Path write(String name, String content) throws IOException {
        return write(name, content.getBytes(StandardCharsets.UTF_8));
    }

    private DatasetManifest manifest(String yaml) throws IOException {
        return DatasetManifest.read(CONF, write("m.yaml", yaml).toString());
    }

    private List<Document> readAll(DatasetManifest m, long maxLineBytes) throws IOException {
        try (Stream<Document> docs = CorpusReader.documents(CONF, m, maxLineBytes)) {
            return docs.toList();
        }
    }

    @Test
    void textDocumentsAreSeparatedByBlankLines() throws IOException {
        write("t.txt", "\uFEFFfirst line\r\nsecond line\r\n\r\n  \n\nthird\n\n\nfourth\nlast");
        List<Document> docs = readAll(manifest("name: t\nsources: [{name: t, uri: t.txt, format: text}]\n"), 1024);
        assertEquals(List.of("first line\nsecond line", "third", "fourth\nlast"), docs.stream().map(Document::text).toList());
        assertTrue(docs.get(0).where().endsWith("t.txt:1"), docs.get(0).where());
        assertTrue(docs.get(1).where().endsWith("t.txt:6"), docs.get(1).where());
        assertTrue(docs.get(2).where().endsWith("t.txt:9"), docs.get(2).where());
        assertEquals(-1, docs.get(0).label());
    }

    @Test
    void jsonlTextPairsAndLabels() throws IOException {
        write("a.jsonl", """
                {"text": "plain one"}

                {"prompt": "Q: 2+2?", "response": " 4"}
                """);
        write("b.jsonl", "{\"body\": \"spam spam\", \"cls\": \"spam\"}\n{\"body\": \"hello\", \"cls\": \"ham\"}\n");
        write("c.jsonl", "{\"q\": \"why\", \"a\": \"because\"}\n");
        List<Document> docs = readAll(manifest("""
                name: j
                labels: [ham, spam]
                sources:
                  - {name: a, uri: a.jsonl, format: jsonl}
                  - {name: b, uri: b.jsonl, format: jsonl, text_field: body, label_field: cls}
                  - {name: c, uri: c.jsonl, format: jsonl, prompt_field: q, response_field: a}
                """), 1024);
        assertEquals(5, docs.size());
        assertEquals(Document.text("plain one", -1, docs.get(0).where()), docs.get(0));
        assertTrue(docs.get(1).isPromptResponse());
        assertEquals("Q: 2+2?", docs.get(1).prompt());
        assertEquals(" 4", docs.get(1).response());
        assertTrue(docs.get(1).where().endsWith("a.jsonl:3"), docs.get(1).where());
        assertEquals(1, docs.get(2).label());
        assertEquals(0, docs.get(3).label());
        assertEquals("spam spam\nLabel: spam", docs.get(2).trainingText(List.of("ham", "spam"), "\nLabel:"));
        assertEquals("whybecause", docs.get(4).trainingText(List.of(), ""));
    }

    @Test
    void labelledDirFilesAreWholeDocuments() throws IOException {
        write("mail/ham/1.txt", "Dear friend,\n\nsee you.\n");
        write("mail/spam/1.txt", "BUY NOW");
        write("mail/spam/2.txt", "\n\n");
        List<Document> docs = readAll(manifest("""
                name: l
                labels: [ham, spam]
                sources: [{name: mail, uri: mail, format: labelled_dir}]
                """), 1024);
        assertEquals(List.of("Dear friend,\n\nsee you.", "BUY NOW"), docs.stream().map(Document::text).toList());
        assertEquals(List.of(0, 1), docs.stream().map(Document::label).toList());
    }

    @Test
    void malformedUtf8NamesFileAndLine() throws IOException {
        byte[] bad = "good line\n\nstill good\ncaf\u00e9 ok\n".getBytes(StandardCharsets.UTF_8);
        byte[] content = Arrays.copyOf(bad, bad.length + 6);
        System.arraycopy(new byte[]{'x', (byte) 0xC3, '(', 'y', '\n', 'z'}, 0, content, bad.length, 6);
        write("latin.txt", content);
        DatasetManifest m = manifest("name: u\nsources: [{name: u, uri: latin.txt, format: text}]\n");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> readAll(m, 1024));
        assertTrue(e.getMessage().contains("latin.txt:5: not valid UTF-8"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test
    void aLineOverTheLimitIsAClearErrorNotAnOutOfMemoryError() throws IOException {
        Path big = dir.resolve("big.jsonl");
        try (OutputStream out = Files.newOutputStream(big)) {
            out.write("{\"text\": \"short\"}\n{\"text\": \"".getBytes(StandardCharsets.UTF_8));
            byte[] chunk = "abcdefghij".repeat(10_000).getBytes(StandardCharsets.UTF_8);
            for (int i = 0; i < 60; i++) out.write(chunk); // 6 MB on line 2
            out.write("\"}\n".getBytes(StandardCharsets.UTF_8));
        }
        DatasetManifest m = manifest("name: b\nsources: [{name: b, uri: big.jsonl, format: jsonl}]\n");
        List<String> seen = new ArrayList<>();
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> {
            try (Stream<Document> docs = CorpusReader.documents(CONF, m, CorpusReader.DEFAULT_MAX_LINE_BYTES)) {
                docs.forEach(d -> seen.add(d.text()));
            }
        });
        assertEquals(List.of("short"), seen);
        assertTrue(e.getMessage().contains("big.jsonl:2: line is longer than the limit of 4194304 bytes"), e.getMessage());
    }

    @Test
    void malformedJsonAndMissingFieldsNameFileAndLine() throws IOException {
        write("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
        DatasetManifest m1 = manifest("name: b\nsources: [{name: b, uri: bad.jsonl, format: jsonl}]\n");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> readAll(m1, 1024));
        assertTrue(e.getMessage().contains("bad.jsonl:2: malformed JSON"), e.getMessage());

        write("miss.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"oops\"}\n");
        DatasetManifest m2 = manifest("name: b\nsources: [{name: b, uri: miss.jsonl, format: jsonl, text_field: text}]\n");
        e = assertThrows(UncheckedIOException.class, () -> readAll(m2, 1024));
        assertTrue(e.getMessage().contains("miss.jsonl:2: missing field \"text\""), e.getMessage());

        DatasetManifest m3 = manifest("name: b\nsources: [{name: b, uri: miss.jsonl, format: jsonl}]\n");
        e = assertThrows(UncheckedIOException.class, () -> readAll(m3, 1024));
        assertTrue(e.getMessage().contains("miss.jsonl:2: expected a \"text\" field"), e.getMessage());

        write("two.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n");
        DatasetManifest m4 = manifest("name: b\nsources: [{name: b, uri: two.jsonl, format: jsonl}]\n");
        e = assertThrows(UncheckedIOException.class, () -> readAll(m4, 1024));
        assertTrue(e.getMessage().contains("two.jsonl:1: malformed JSON"), e.getMessage());

        write("lab.jsonl", "{\"text\": \"a\", \"y\": \"eggs\"}\n");
        DatasetManifest m5 = manifest("name: b\nlabels: [ham]\nsources: [{name: b, uri: lab.jsonl, format: jsonl, label_field: y}]\n");
        e = assertThrows(UncheckedIOException.class, () -> readAll(m5, 1024));
        assertTrue(e.getMessage().contains("lab.jsonl:1: unknown label 'eggs'"), e.getMessage());
    }

    @Test
    void sha256IsVerifiedWhileReading() throws IOException {
        byte[] content = "one\n\ntwo\n".getBytes(StandardCharsets.UTF_8);
        write("s.txt", content);
        String good = sha256(content);
        assertEquals(2, readAll(manifest("name: s\nsources: [{name: s, uri: s.txt, format: text, sha256: " + good + "}]\n"), 1024).size());
        String wrong = sha256("other".getBytes(StandardCharsets.UTF_8));
        DatasetManifest m = manifest("name: s\nsources: [{name: s, uri: s.txt, format: text, sha256: " + wrong + "}]\n");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> readAll(m, 1024));
        assertTrue(e.getMessage().contains("s.txt: sha256 " + good + " does not match " + wrong), e.getMessage());
    }

    @Test
    void trainingTextsCoverEveryDocument() throws IOException {
        write("t.txt", "alpha\n\nbeta\n");
        DatasetManifest m = manifest("name: t\nlabels: [x]\nsources: [{name: t, uri: t.txt, format: text, label: x}]\n");
        try (Stream<String> texts = CorpusReader.trainingTexts(CONF, m, 1024)) {
            assertEquals(List.of("alpha\nLabel: x", "beta\nLabel: x"), texts.toList());
        }
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
