package io.sparklora.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.Closeable;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Streams the documents of one source file through the Hadoop FileSystem API, one line at a time, so a
 * file of any size is read in memory bounded by the line limit (and, for text documents, the document limit).
 *
 * <ul>
 *   <li>{@code text}: documents are separated by blank lines; a document is its lines joined by {@code \n}
 *       and stripped.</li>
 *   <li>{@code jsonl}: one JSON object per line (blank lines skipped).</li>
 *   <li>{@code labelled_dir}: the whole file is one document with its folder's label.</li>
 * </ul>
 *
 * Bad input is an {@link IOException} (an {@link UncheckedIOException} from the iterator methods) whose
 * one-line message names the file and line: malformed UTF-8, a line over the limit, malformed JSON, a
 * missing or non-string field, an unknown label, a sha256 that does not match the manifest.
 * Blank documents are skipped. The file is closed when the last document has been read, on an error, or
 * by {@link #close()}.
 */
public final class CorpusReader implements Iterator<Document>, Closeable {
    /** Default limit on one line, in bytes. */
    public static final long DEFAULT_MAX_LINE_BYTES = 4L << 20;
    /** A text document (many lines) may be this many times the line limit, capped at 1 GiB. */
    public static final int DOCUMENT_LINE_FACTOR = 16;

    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final DatasetManifest manifest;
    private final DatasetManifest.Source source;
    private final SourceFile file;
    private final Utf8LineReader lines;
    private final MessageDigest digest;
    private final long maxDocumentBytes;
    private Document next;
    private boolean done;

    private CorpusReader(DatasetManifest manifest, SourceFile file, InputStream in, MessageDigest digest, long maxLineBytes) {
        this.manifest = manifest;
        this.source = manifest.source(file.sourceIndex());
        this.file = file;
        this.digest = digest;
        this.lines = new Utf8LineReader(in, file.uri(), maxLineBytes);
        this.maxDocumentBytes = Math.min(1L << 30, maxLineBytes * DOCUMENT_LINE_FACTOR);
    }

    /** Opens {@code file} (one of {@link SourceFile#list}) for reading. */
    public static CorpusReader open(Configuration conf, DatasetManifest manifest, SourceFile file, long maxLineBytes)
            throws IOException {
        InputStream in;
        try {
            in = HadoopFiles.open(conf, file.uri());
        } catch (FileNotFoundException e) {
            throw new FileNotFoundException("dataset manifest " + manifest.uri() + ": source file " + file.uri() + " does not exist");
        }
        MessageDigest digest = null;
        if (manifest.source(file.sourceIndex()).sha256() != null) {
            digest = sha256();
            in = new DigestInputStream(in, digest);
        }
        return new CorpusReader(manifest, file, in, digest, maxLineBytes);
    }

    /**
     * Every document of the manifest, file after file, for the driver (for example to learn a tokenizer).
     * Close the stream (try-with-resources) when stopping early. A manifest with a Spark source (parquet,
     * orc, csv, json, table) is an error: those are read by the Spark tokenize stage only.
     */
    public static Stream<Document> documents(Configuration conf, DatasetManifest manifest, long maxLineBytes) throws IOException {
        for (DatasetManifest.Source s : manifest.sources()) {
            if (s.format().spark()) {
                throw new IOException("dataset manifest " + manifest.uri() + ": source '" + s.name() + "' is a "
                        + s.format().name().toLowerCase(java.util.Locale.ROOT) + " source, which only the Spark tokenize stage reads;"
                        + " reading documents on the driver (as learning a tokenizer does) takes text, jsonl and labelled_dir sources;"
                        + " give the run a tokenizer (tokenizer.path or base.path)");
            }
        }
        List<SourceFile> files = SourceFile.list(conf, manifest);
        return files.stream().flatMap(f -> {
            CorpusReader r;
            try {
                r = open(conf, manifest, f, maxLineBytes);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            return StreamSupport.stream(Spliterators.spliteratorUnknownSize(r, Spliterator.ORDERED | Spliterator.NONNULL), false)
                    .onClose(r::closeQuietly);
        });
    }

    /** The texts the model will be trained on ({@link Document#trainingText}), for learning a tokenizer. */
    public static Stream<String> trainingTexts(Configuration conf, DatasetManifest manifest, long maxLineBytes) throws IOException {
        return documents(conf, manifest, maxLineBytes).map(d -> d.trainingText(manifest.labels(), manifest.labelPrompt()));
    }

    @Override
    public boolean hasNext() {
        if (next != null) return true;
        if (done) return false;
        try {
            next = readNext();
            if (next == null) finish();
        } catch (IOException e) {
            closeQuietly();
            throw new UncheckedIOException(e.getMessage(), e);
        }
        return next != null;
    }

    @Override
    public Document next() {
        if (!hasNext()) throw new NoSuchElementException("no more documents in " + file.uri());
        Document d = next;
        next = null;
        return d;
    }

    public SourceFile file() {
        return file;
    }

    @Override
    public void close() throws IOException {
        done = true;
        lines.close();
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException ignored) {
            // reading is over; a close failure changes nothing the caller can act on
        }
    }

    /** End of file: verify the checksum over the bytes actually read, then close. */
    private void finish() throws IOException {
        done = true;
        lines.close();
        if (digest != null) {
            String actual = HexFormat.of().formatHex(digest.digest());
            if (!actual.equals(source.sha256())) {
                throw new IOException(file.uri() + ": sha256 " + actual + " does not match " + source.sha256()
                        + " given for source '" + source.name() + "' in " + manifest.uri() + " (file changed or corrupted)");
            }
        }
    }

    private Document readNext() throws IOException {
        return switch (source.format()) {
            case TEXT -> nextParagraph();
            case JSONL -> nextJsonRecord();
            case LABELLED_DIR -> wholeFile();
            default -> throw new IllegalStateException("source '" + source.name() + "' is a " + source.format()
                    + " source, which Spark reads (spark.tokenize.TokenizeTables), not CorpusReader");
        };
    }

    private Document nextParagraph() throws IOException {
        StringBuilder doc = new StringBuilder();
        long firstLine = 0, bytes = 0;
        String line;
        while ((line = lines.readLine()) != null) {
            if (line.isBlank()) {
                if (firstLine > 0) break;
                continue;
            }
            if (firstLine == 0) firstLine = lines.lineNumber();
            bytes = addLine(doc, line, bytes, firstLine);
        }
        if (firstLine == 0) return null;
        return Document.text(doc.toString().strip(), file.label(), file.uri() + ":" + firstLine);
    }

    private Document wholeFile() throws IOException {
        StringBuilder doc = new StringBuilder();
        long bytes = 0;
        String line;
        while ((line = lines.readLine()) != null) bytes = addLine(doc, line, bytes, 1);
        String text = doc.toString().strip();
        return text.isEmpty() ? null : Document.text(text, file.label(), file.uri() + ":1");
    }

    private long addLine(StringBuilder doc, String line, long bytes, long firstLine) throws IOException {
        bytes += lines.lineBytes() + 1; // + the line break
        if (bytes > maxDocumentBytes) {
            throw new IOException(file.uri() + ":" + lines.lineNumber() + ": the document starting at line " + firstLine
                    + " is longer than the limit of " + maxDocumentBytes + " bytes");
        }
        if (!doc.isEmpty()) doc.append('\n');
        doc.append(line);
        return bytes;
    }

    private Document nextJsonRecord() throws IOException {
        String line;
        while ((line = lines.readLine()) != null) {
            if (line.isBlank()) continue;
            String where = file.uri() + ":" + lines.lineNumber();
            JsonNode record;
            try {
                record = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new IOException(where + ": malformed JSON: " + e.getOriginalMessage());
            }
            if (record == null || !record.isObject()) throw new IOException(where + ": expected a JSON object");
            return fromRecord(record, where);
        }
        return null;
    }

    private Document fromRecord(JsonNode record, String where) throws IOException {
        int label = file.label();
        if (source.labelField() != null) label = labelOf(record, where);
        boolean pair;
        if (source.promptResponse()) pair = true;
        else if (source.textField() != null) pair = false;
        else if (record.has("text")) pair = false;
        else if (record.has("prompt") && record.has("response")) pair = true;
        else throw new IOException(where + ": expected a \"text\" field or \"prompt\" and \"response\" fields");
        if (!pair) {
            String field = source.textField() == null ? "text" : source.textField();
            return Document.text(stringField(record, field, where), label, where);
        }
        if (label >= 0) throw new IOException(where + ": a prompt/response record cannot have a label (source '" + source.name() + "')");
        String promptField = source.promptResponse() ? source.promptField() : "prompt";
        String responseField = source.promptResponse() ? source.responseField() : "response";
        return Document.promptResponse(stringField(record, promptField, where), stringField(record, responseField, where), where);
    }

    private int labelOf(JsonNode record, String where) throws IOException {
        JsonNode v = record.get(source.labelField());
        if (v == null || v.isNull()) throw new IOException(where + ": missing label field \"" + source.labelField() + "\"");
        if (!v.isValueNode()) throw new IOException(where + ": label field \"" + source.labelField() + "\" is not a string");
        int label = manifest.labelIndex(v.asText());
        if (label < 0) throw new IOException(where + ": unknown label '" + v.asText() + "' (labels: " + manifest.labels() + ")");
        return label;
    }

    private static String stringField(JsonNode record, String field, String where) throws IOException {
        JsonNode v = record.get(field);
        if (v == null || v.isNull()) throw new IOException(where + ": missing field \"" + field + "\"");
        if (!v.isTextual()) throw new IOException(where + ": field \"" + field + "\" is not a string");
        return v.asText();
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
