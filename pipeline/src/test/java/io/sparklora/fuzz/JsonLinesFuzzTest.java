package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.data.CorpusReader;
import io.sparklora.data.DatasetManifest;
import io.sparklora.data.Document;
import io.sparklora.data.SourceFile;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Fuzzes JSON Lines input ({@link CorpusReader}): a source whose records are text or prompt/response pairs, and a
 * labelled source whose records carry their label. Lines are limited to 4 KiB so the fuzzer reaches the limit too.
 * The only failure allowed is an {@link IOException} (an {@link UncheckedIOException} from the iterator) naming the
 * file. Seeds: the first lines of the demo corpora and hand-written records.
 */
class JsonLinesFuzzTest {
    private static final Configuration CONF = new Configuration();
    private static final Path DIR = FuzzChecks.scratchDirectory("jsonl");
    private static final long MAX_LINE_BYTES = 4096;

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void jsonLines(byte[] data) {
        readAll(data, "plain", "sources: [{name: docs, uri: plain.jsonl, format: jsonl}]");
    }

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void labelledJsonLines(byte[] data) {
        readAll(data, "labelled", "labels: [ham, spam]\nsources: [{name: mail, uri: labelled.jsonl, format: jsonl, label_field: label}]");
    }

    private static void readAll(byte[] data, String name, String sources) {
        Path file = DIR.resolve(name + ".jsonl");
        FuzzChecks.write(file, data);
        Path manifestFile = DIR.resolve(name + ".yaml");
        FuzzChecks.write(manifestFile, ("name: fuzz\n" + sources + "\n").getBytes(StandardCharsets.UTF_8));
        try {
            DatasetManifest manifest = DatasetManifest.read(CONF, manifestFile.toString());
            SourceFile source = SourceFile.list(CONF, manifest).get(0);
            try (CorpusReader reader = CorpusReader.open(CONF, manifest, source, MAX_LINE_BYTES)) {
                while (reader.hasNext()) {
                    Document d = reader.next();
                    d.trainingText(manifest.labels(), manifest.labelPrompt());
                }
            }
        } catch (IOException | UncheckedIOException e) {
            FuzzChecks.clearError(e, file.getFileName().toString());
        }
    }
}
