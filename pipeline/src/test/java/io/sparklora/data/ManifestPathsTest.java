package io.sparklora.data;

import io.sparklora.util.PathScope;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The paths a dataset manifest names stay where the manifest is, unless it says otherwise ({@link PathScope}): a
 * relative uri or chat_template that climbs out by '..', by a glob's '..', or through a symbolic link is refused with
 * the file, the key and the path; absolute paths and URIs are taken as written; {@code allow_outside: true} lifts the
 * check; the shipped manifests load.
 */
class ManifestPathsTest {
    private static final Configuration CONF = new Configuration();
    static final Path REPO = Path.of(System.getProperty("user.dir")).getParent();

    @TempDir
    Path tmp;

    /** The manifest directory {@code tmp/bundle/m} (with a data file inside) and a secret file outside it. */
    private Path bundle() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("bundle/m"));
        Files.writeString(dir.resolve("ok.jsonl"), "{\"text\": \"fine\"}\n");
        Files.writeString(Files.createDirectories(tmp.resolve("private")).resolve("secret.txt"), "not for training\n");
        return dir;
    }

    private String manifest(Path dir, String sourceLines, String extra) throws IOException {
        Path m = dir.resolve("data.yaml");
        Files.writeString(m, "name: t\ndescription: d\n" + extra + "sources:\n  - name: s\n" + sourceLines);
        return m.toString();
    }

    private IOException refused(String manifestUri) {
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, manifestUri));
        assertTrue(e instanceof PathScope.EscapeException, e.toString());
        assertTrue(e.getMessage().contains(manifestUri), "names the manifest: " + e.getMessage());
        assertTrue(e.getMessage().contains("allow_outside: true"), "says how to allow it: " + e.getMessage());
        return e;
    }

    @Test
    void dotDotOutOfTheManifestDirectoryIsRefusedWithFileKeyAndPath() throws IOException {
        Path dir = bundle();
        String m = manifest(dir, "    uri: ../../private/secret.txt\n    format: text\n", "");
        IOException e = refused(m);
        assertTrue(e.getMessage().contains("sources[0].uri '../../private/secret.txt'"), e.getMessage());
        assertTrue(e.getMessage().contains("the manifest's directory"), e.getMessage());

        // the same climb hidden in the middle of a path
        e = refused(manifest(dir, "    uri: sub/../../../private/secret.txt\n    format: text\n", ""));
        assertTrue(e.getMessage().contains("sub/../../../private/secret.txt"), e.getMessage());
    }

    @Test
    void dotDotThatStaysInsideIsFine() throws IOException {
        Path dir = bundle();
        Files.createDirectories(dir.resolve("sub"));
        DatasetManifest m = DatasetManifest.read(CONF, manifest(dir, "    uri: sub/../ok.jsonl\n    format: jsonl\n", ""));
        assertTrue(m.source(0).uri().endsWith("/bundle/m/ok.jsonl"), m.source(0).uri());
    }

    @Test
    void absolutePathsAndUrisAreTheWritersExplicitChoice() throws IOException {
        Path dir = bundle();
        Path outside = tmp.resolve("private/secret.txt");
        DatasetManifest m = DatasetManifest.read(CONF, manifest(dir, "    uri: " + outside + "\n    format: text\n"
                + "  - name: remote\n    uri: hdfs://namenode:8020/corpora/books\n    format: text\n"
                + "  - name: bucket\n    uri: s3a://bucket/events/*.parquet\n    format: parquet\n    text_field: body\n", ""));
        assertEquals("file:" + outside, m.source(0).uri());
        assertEquals("hdfs://namenode:8020/corpora/books", m.source(1).uri());
        assertEquals("s3a://bucket/events/*.parquet", m.source(2).uri());
    }

    @Test
    void aSymbolicLinkOutOfTheManifestDirectoryIsRefused() throws IOException {
        Path dir = bundle();
        Files.createSymbolicLink(dir.resolve("innocent.txt"), tmp.resolve("private/secret.txt"));
        IOException e = refused(manifest(dir, "    uri: innocent.txt\n    format: text\n", ""));
        assertTrue(e.getMessage().contains("sources[0].uri 'innocent.txt'") && e.getMessage().contains("symbolic link"), e.getMessage());
        assertTrue(e.getMessage().contains(tmp.resolve("private/secret.txt").toRealPath().toString()), "says where it leads: " + e.getMessage());
    }

    @Test
    void aSymbolicLinkDeepInsideASourceDirectoryIsRefused() throws IOException {
        Path dir = bundle();
        Path docs = Files.createDirectories(dir.resolve("docs/a/b"));
        Files.writeString(docs.resolve("one.txt"), "one\n");
        Files.createSymbolicLink(docs.resolve("two.txt"), tmp.resolve("private/secret.txt"));
        IOException e = refused(manifest(dir, "    uri: docs\n    format: text\n", ""));
        assertTrue(e.getMessage().contains("two.txt"), e.getMessage());

        // a dangling link that would point outside once its target exists counts too
        Files.delete(docs.resolve("two.txt"));
        Files.createSymbolicLink(docs.resolve("later.txt"), tmp.resolve("private/not-yet.txt"));
        e = refused(manifest(dir, "    uri: docs\n    format: text\n", ""));
        assertTrue(e.getMessage().contains("later.txt"), e.getMessage());
    }

    @Test
    void symbolicLinksThatStayInsideAreFine() throws IOException {
        Path dir = bundle();
        Path shared = Files.createDirectories(dir.resolve("shared"));
        Files.writeString(shared.resolve("x.txt"), "x\n");
        Files.createDirectories(dir.resolve("docs"));
        Files.createSymbolicLink(dir.resolve("docs/x.txt"), shared.resolve("x.txt"));
        Files.createSymbolicLink(dir.resolve("docs/more"), Path.of("../shared"));
        DatasetManifest m = DatasetManifest.read(CONF, manifest(dir, "    uri: docs\n    format: text\n", ""));
        assertTrue(m.source(0).uri().endsWith("/bundle/m/docs"), m.source(0).uri());
        assertEquals(2, SourceFile.list(CONF, m).size(), "both links are read");
    }

    @Test
    void globsMayNotClimbOrReachOutThroughALink() throws IOException {
        Path dir = bundle();
        // an alternative of a glob is a way out that a plain '..' check would not see
        IOException e = refused(manifest(dir, "    uri: \"{..,.}/../private/*.txt\"\n    format: parquet\n    text_field: t\n", ""));
        assertTrue(e.getMessage().contains("glob"), e.getMessage());
        e = refused(manifest(dir, "    uri: \"{data,..}/*\"\n    format: parquet\n    text_field: t\n", ""));
        assertTrue(e.getMessage().contains("{data,..}/*"), e.getMessage());

        Path events = Files.createDirectories(dir.resolve("events"));
        Files.writeString(events.resolve("p1.parquet"), "");
        DatasetManifest ok = DatasetManifest.read(CONF, manifest(dir, "    uri: \"events/*.parquet\"\n    format: parquet\n    text_field: t\n", ""));
        assertTrue(ok.source(0).uri().endsWith("/bundle/m/events/*.parquet"), ok.source(0).uri());

        Files.createSymbolicLink(events.resolve("p2.parquet"), tmp.resolve("private/secret.txt"));
        e = refused(manifest(dir, "    uri: \"events/*.parquet\"\n    format: parquet\n    text_field: t\n", ""));
        assertTrue(e.getMessage().contains("p2.parquet"), e.getMessage());
    }

    @Test
    void chatTemplateIsConfinedToo() throws IOException {
        Path dir = bundle();
        IOException e = refused(manifest(dir, "    uri: ok.jsonl\n    format: jsonl\n", "chat_template: ../../private/t.jinja\n"));
        assertTrue(e.getMessage().contains("chat_template '../../private/t.jinja'"), e.getMessage());
    }

    @Test
    void allowOutsideLiftsTheCheck() throws IOException {
        Path dir = bundle();
        Files.createSymbolicLink(dir.resolve("link.txt"), tmp.resolve("private/secret.txt"));
        DatasetManifest m = DatasetManifest.read(CONF, manifest(dir, "    uri: ../../private/secret.txt\n    format: text\n"
                + "  - name: linked\n    uri: link.txt\n    format: text\n", "allow_outside: true\n"));
        assertEquals("file:" + tmp.resolve("private/secret.txt"), m.source(0).uri());

        IOException bad = assertThrows(IOException.class, () -> DatasetManifest.read(CONF,
                manifest(dir, "    uri: ok.jsonl\n    format: jsonl\n", "allow_outside: yes please\n")));
        assertTrue(bad.getMessage().contains("allow_outside must be true or false"), bad.getMessage());
        assertFalse(bad instanceof PathScope.EscapeException);
    }

    @Test
    void aUriUserInfoIsRedactedInTheMessage() {
        PathScope scope = new PathScope(new org.apache.hadoop.fs.Path("hdfs://etl:Pa55w0rd-7@namenode:8020/bundles/m"),
                "dataset manifest hdfs://etl:Pa55w0rd-7@namenode:8020/bundles/m/data.yaml", "the manifest's directory", false, CONF);
        IOException e = assertThrows(PathScope.EscapeException.class, () -> scope.resolve("sources[0].uri", "../../etc/passwd"));
        assertFalse(e.getMessage().contains("Pa55w0rd-7"), e.getMessage());
        assertTrue(e.getMessage().contains("sources[0].uri '../../etc/passwd'") && e.getMessage().contains("namenode:8020/bundles/m"),
                e.getMessage());
    }

    @Test
    void shardManifestsListOnlyFilesInsideTheirDirectory() throws IOException {
        Path shards = Files.createDirectories(tmp.resolve("shards"));
        String good = "{\"schema_version\": " + ShardSchema.VERSION + ", \"dataset\": \"d\", \"tokenizer_fingerprint\": \"f\","
                + " \"vocab_size\": 10, \"eos_token_id\": 0, \"pad_token_id\": 0, \"seq_len\": 4, \"validation_fraction\": 0.1,"
                + " \"seed\": 1, \"label_prompt\": \"\", \"labels\": [], \"splits\": {\"train\": [{\"file\": \"FILE\", \"rows\": 1,"
                + " \"documents\": 1, \"tokens\": 4, \"targets\": 4, \"sha256\": \"00\"}]}}";
        Files.writeString(shards.resolve(ShardManifest.FILE_NAME), good.replace("FILE", "train/part-00000.arrow"));
        assertEquals("train/part-00000.arrow", ShardManifest.read(CONF, shards.toString()).split(ShardManifest.TRAIN).get(0).file());
        for (String bad : new String[]{"../../etc/passwd", "/etc/passwd", "file:/etc/passwd", "train/../../x.arrow"}) {
            Files.writeString(shards.resolve(ShardManifest.FILE_NAME), good.replace("FILE", bad));
            IOException e = assertThrows(IOException.class, () -> ShardManifest.read(CONF, shards.toString()), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'") && e.getMessage().contains(ShardManifest.FILE_NAME), e.getMessage());
        }
    }

    @Test
    void theShippedManifestsLoad() throws IOException {
        int n = 0;
        try (var files = Files.list(REPO.resolve("datasets-manifests"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
                DatasetManifest m = DatasetManifest.read(CONF, f.toString());
                assertFalse(m.sources().isEmpty(), f.toString());
                n++;
            }
        }
        assertTrue(n >= 4, "found " + n + " manifests");
    }
}
