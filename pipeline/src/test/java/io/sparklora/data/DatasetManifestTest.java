package io.sparklora.data;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DatasetManifestTest {
    private static final Configuration CONF = new Configuration();

    @TempDir
    Path dir;

    private String write(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.writeString(p, content);
        return p.toString();
    }

    @Test
    void readsYamlWithDefaultsAndResolvesRelativeUris() throws IOException {
        String uri = write("m/data.yaml", """
                name: demo
                description: two sources
                labels: [ham, spam]
                sources:
                  - name: ham
                    uri: ham.jsonl
                    format: jsonl
                    label: ham
                  - name: pairs
                    uri: file:///elsewhere/pairs.jsonl
                    format: jsonl
                    prompt_field: q
                  - name: books
                    uri: /abs/books
                    format: text
                """);
        DatasetManifest m = DatasetManifest.read(CONF, uri);
        assertEquals("demo", m.name());
        assertEquals(List.of("ham", "spam"), m.labels());
        assertEquals("\nLabel:", m.labelPrompt());
        assertNull(m.licence());
        assertTrue(m.labelled());
        DatasetManifest.Source ham = m.source(0);
        assertEquals(dir.resolve("m/ham.jsonl").toUri().toString().replace("file:///", "file:/"), ham.uri());
        assertEquals(DatasetManifest.Format.JSONL, ham.format());
        assertEquals("ham", ham.label());
        DatasetManifest.Source pairs = m.source(1);
        assertEquals("file:/elsewhere/pairs.jsonl", pairs.uri());
        assertTrue(pairs.promptResponse());
        assertEquals("q", pairs.promptField());
        assertEquals("response", pairs.responseField());
        assertEquals("file:/abs/books", m.source(2).uri());
    }

    @Test
    void readsJson() throws IOException {
        String uri = write("m.json", """
                {"name": "j", "description": "d", "licence": "CC0", "label_prompt": " =>", "labels": ["a"],
                 "sources": [{"name": "s", "uri": "s.txt", "format": "text", "sha256": "%s"}]}
                """.formatted("AB".repeat(32)));
        DatasetManifest m = DatasetManifest.read(CONF, uri);
        assertEquals(" =>", m.labelPrompt());
        assertEquals("CC0", m.licence());
        assertEquals("ab".repeat(32), m.source(0).sha256());
    }

    @Test
    void unknownKeyNamesTheKeyAndTheFile() throws IOException {
        String uri = write("bad.yaml", """
                name: x
                lables: [a]
                sources: [{name: s, uri: s.txt, format: text}]
                """);
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, uri));
        assertTrue(e.getMessage().contains("unknown key 'lables'"), e.getMessage());
        assertTrue(e.getMessage().contains("bad.yaml"), e.getMessage());

        String uri2 = write("bad2.yaml", """
                name: x
                sources: [{name: s, uri: s.txt, format: text, txt_field: t}]
                """);
        e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, uri2));
        assertTrue(e.getMessage().contains("unknown key 'sources[0].txt_field'"), e.getMessage());
    }

    @Test
    void rejectsInconsistentManifests() throws IOException {
        assertRejected("""
                name: x
                labels: [a, b]
                sources: [{name: s, uri: s.txt, format: text, label: c}]
                """, "label 'c', which is not in labels");
        assertRejected("""
                name: x
                sources: [{name: s, uri: s.txt, format: text}, {name: s, uri: t.txt, format: text}]
                """, "source name 's' is used twice");
        assertRejected("""
                name: x
                sources: [{name: s, uri: s.txt, format: avro}]
                """, "format 'avro'");
        assertRejected("""
                name: x
                sources: [{name: s, uri: d, format: labelled_dir}]
                """, "labelled_dir but the manifest has no labels");
        assertRejected("""
                name: x
                sources: []
                """, "'sources' must be a non-empty list");
        assertRejected("""
                sources: [{name: s, uri: s.txt, format: text}]
                """, "missing 'name'");
        assertRejected("""
                name: x
                sources: [{name: s, uri: s.txt, format: text, sha256: abc}]
                """, "not 64 hex digits");
        assertRejected("name: [unclosed", "not valid YAML/JSON");
    }

    @Test
    void chatTemplateKeys() throws IOException {
        DatasetManifest m = DatasetManifest.read(CONF, write("c/chat.yaml", """
                name: c
                chat_template: templates/chatml.jinja
                system_prompt: Be brief.
                sources: [{name: s, uri: s.jsonl, format: jsonl, prompt_field: q, response_field: a}]
                """));
        assertTrue(m.chatTemplate().endsWith("c/templates/chatml.jinja"), "relative to the manifest: " + m.chatTemplate());
        assertEquals("Be brief.", m.systemPrompt());
        assertEquals("tokenizer", DatasetManifest.read(CONF, write("c/t.yaml", """
                name: c
                chat_template: tokenizer
                sources: [{name: s, uri: s.jsonl, format: jsonl}]
                """)).chatTemplate());
        assertRejected("""
                name: x
                system_prompt: hi
                sources: [{name: s, uri: s.jsonl, format: jsonl}]
                """, "system_prompt is given but there is no chat_template");
        assertRejected("""
                name: x
                labels: [a]
                chat_template: tokenizer
                sources: [{name: s, uri: s.txt, format: text, label: a}]
                """, "a labelled dataset has none");
    }

    @Test
    void missingManifestIsNamed() {
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, dir.resolve("none.yaml").toString()));
        assertTrue(e.getMessage().contains("none.yaml") && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void listsFilesSortedSkippingHiddenOnesAndLabelsFoldersOfALabelledDir() throws IOException {
        write("corpus/b.txt", "b");
        write("corpus/a.txt", "a");
        write("corpus/sub/c.txt", "c");
        write("corpus/.hidden", "x");
        write("corpus/_SUCCESS", "");
        write("mail/spam/2.txt", "s2");
        write("mail/spam/1.txt", "s1");
        write("mail/ham/1.txt", "h1");
        String uri = write("m.yaml", """
                name: x
                labels: [ham, spam]
                sources:
                  - {name: books, uri: corpus, format: text}
                  - {name: mail, uri: mail, format: labelled_dir}
                """);
        DatasetManifest m = DatasetManifest.read(CONF, uri);
        List<SourceFile> files = SourceFile.list(CONF, m);
        List<String> names = files.stream().map(f -> f.uri().substring(f.uri().indexOf(dir.getFileName().toString()))).map(s -> s.substring(s.indexOf('/') + 1)).toList();
        assertEquals(List.of("corpus/a.txt", "corpus/b.txt", "corpus/sub/c.txt", "mail/ham/1.txt", "mail/spam/1.txt", "mail/spam/2.txt"), names);
        assertEquals(List.of(-1, -1, -1, 0, 1, 1), files.stream().map(SourceFile::label).toList());
        assertEquals(List.of(0, 1, 2, 3, 4, 5), files.stream().map(SourceFile::index).toList());
        assertEquals(List.of(0, 0, 0, 1, 1, 1), files.stream().map(SourceFile::sourceIndex).toList());
    }

    @Test
    void unknownLabelFolderAndMissingSourceAreErrors() throws IOException {
        write("mail/eggs/1.txt", "x");
        String uri = write("m.yaml", """
                name: x
                labels: [ham, spam]
                sources: [{name: mail, uri: mail, format: labelled_dir}]
                """);
        IOException e = assertThrows(IOException.class, () -> SourceFile.list(CONF, DatasetManifest.read(CONF, uri)));
        assertTrue(e.getMessage().contains("unknown label 'eggs'") && e.getMessage().contains("mail/eggs"), e.getMessage());

        String uri2 = write("m2.yaml", """
                name: x
                sources: [{name: gone, uri: gone.txt, format: text}]
                """);
        e = assertThrows(IOException.class, () -> SourceFile.list(CONF, DatasetManifest.read(CONF, uri2)));
        assertTrue(e.getMessage().contains("source 'gone'") && e.getMessage().contains("gone.txt") && e.getMessage().contains("does not exist"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test
    void readsSparkSourcesAndKeepsThemOutOfTheFileListing() throws IOException {
        write("m/data/a.txt", "one");
        String uri = write("m/s.yaml", """
                name: s
                labels: [ham, spam]
                sources:
                  - {name: events, uri: "events/lang=*/*.parquet", format: parquet, label_field: label, filter: "lang = 'en'"}
                  - {name: tab, table: db.curated, text_field: body, label: ham}
                  - {name: sheet, uri: s.csv, format: csv, csv_header: false, prompt_field: _c0, response_field: _c1}
                  - {name: files, uri: data, format: text}
                """);
        DatasetManifest m = DatasetManifest.read(CONF, uri);
        DatasetManifest.Source events = m.source(0), tab = m.source(1), sheet = m.source(2);
        assertEquals(DatasetManifest.Format.PARQUET, events.format());
        assertTrue(events.uri().endsWith("/m/events/lang=*/*.parquet"), events.uri());
        assertEquals("lang = 'en'", events.filter());
        assertEquals("label", events.labelField());
        assertEquals(DatasetManifest.Format.TABLE, tab.format());
        assertEquals("db.curated", tab.table());
        assertNull(tab.uri());
        assertEquals("body", tab.textField());
        assertTrue(!sheet.csvHeader() && sheet.promptResponse() && events.csvHeader());
        assertTrue(events.format().spark() && tab.format().spark() && !m.source(3).format().spark());
        List<SourceFile> files = SourceFile.list(CONF, m);
        assertEquals(1, files.size());
        assertEquals(3, files.get(0).sourceIndex());
        IOException e = assertThrows(IOException.class, () -> CorpusReader.documents(CONF, m, 1024));
        assertTrue(e.getMessage().contains("source 'events'") && e.getMessage().contains("only the Spark tokenize stage"), e.getMessage());
    }

    @Test
    void rejectsInconsistentSparkSources() throws IOException {
        assertRejected("name: x\nsources: [{name: a, table: t, format: parquet}]", "give either table, or uri and format");
        assertRejected("name: x\nsources: [{name: a, table: t, uri: u}]", "give either table, or uri and format");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: table}]", "has format 'table'");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: avro}]", "parquet, orc, csv or json");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: jsonl, filter: \"x = 1\"}]", "filter applies to parquet");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: parquet, csv_header: false}]", "csv_header applies to the csv format only");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: csv, csv_header: maybe}]", "csv_header must be true or false");
        assertRejected("name: x\nsources: [{name: a, uri: u, format: orc, sha256: %s}]".formatted("a".repeat(64)), "sha256 applies to text and jsonl");
        assertRejected("name: x\nsources: [{name: a, table: t, label_field: l}]", "has label_field but the manifest has no labels");
        assertRejected("name: x\nlabels: [a]\nsources: [{name: a, table: t, label: b}]", "has label 'b', which is not in labels");
    }

    private void assertRejected(String yaml, String expected) throws IOException {
        String uri = write("r.yaml", yaml);
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, uri));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertTrue(e.getMessage().contains("r.yaml"), e.getMessage());
    }
}
