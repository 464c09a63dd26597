package io.sparklora.spark.tokenize;

import io.sparklora.spark.TokenizerCache;

import io.sparklora.data.CorpusReader;
import io.sparklora.data.DatasetManifest;
import io.sparklora.data.Document;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.SourceFile;
import io.sparklora.data.SplitAssignment;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.tokenize.TextTokenizer;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.PairFlatMapFunction;
import org.apache.spark.util.TaskCompletionListener;
import scala.Tuple2;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * Executor side of the tokenize stage's first step: reads the source files whose indices the partition
 * holds, tokenizes their documents in batches, and keys each by its output partition and input position.
 * Output is produced lazily, one batch at a time, so a task holds one batch whatever its files' sizes.
 */
public final class TokenizeReadFiles implements PairFlatMapFunction<Iterator<Integer>, TokenizeKey, EncodedDocument> {
    private static final long serialVersionUID = 1L;
    /** Documents per native encode call, and a cap on their characters, so a batch stays small. */
    static final int BATCH_DOCUMENTS = 256;
    static final long BATCH_CHARS = 4L << 20;

    private final SerializableConfiguration conf;
    private final DatasetManifest manifest;
    private final List<SourceFile> files;
    private final String tokenizerUri;
    private final String tokenizerFingerprint;
    private final long maxLineBytes;
    private final SplitAssignment assignment;

    public TokenizeReadFiles(SerializableConfiguration conf, DatasetManifest manifest, List<SourceFile> files, String tokenizerUri,
                             String tokenizerFingerprint, long maxLineBytes, SplitAssignment assignment) {
        this.conf = conf;
        this.manifest = manifest;
        this.files = List.copyOf(files);
        this.tokenizerUri = tokenizerUri;
        this.tokenizerFingerprint = tokenizerFingerprint;
        this.maxLineBytes = maxLineBytes;
        this.assignment = assignment;
    }

    @Override
    public Iterator<Tuple2<TokenizeKey, EncodedDocument>> call(Iterator<Integer> fileIndices) throws IOException {
        TextTokenizer tokenizer = TokenizerCache.get(conf.get(), tokenizerUri, tokenizerFingerprint);
        return new Batches(fileIndices, new DocumentEncoder(tokenizer, manifest.labels(), manifest.labelPrompt()));
    }

    private final class Batches implements Iterator<Tuple2<TokenizeKey, EncodedDocument>> {
        private final Iterator<Integer> fileIndices;
        private final DocumentEncoder encoder;
        private final ArrayDeque<Tuple2<TokenizeKey, EncodedDocument>> ready = new ArrayDeque<>();
        private CorpusReader reader;
        private long record;

        Batches(Iterator<Integer> fileIndices, DocumentEncoder encoder) {
            this.fileIndices = fileIndices;
            this.encoder = encoder;
            TaskContext task = TaskContext.get();
            // closes the open file if the task ends (fails, is killed) before reading it to the end
            if (task != null) task.addTaskCompletionListener((TaskCompletionListener) context -> closeCurrent());
        }

        private void closeCurrent() {
            if (reader == null) return;
            try {
                reader.close();
            } catch (IOException ignored) {
                // the task is over
            }
        }

        @Override
        public boolean hasNext() {
            if (ready.isEmpty()) fill();
            return !ready.isEmpty();
        }

        @Override
        public Tuple2<TokenizeKey, EncodedDocument> next() {
            if (!hasNext()) throw new NoSuchElementException();
            return ready.poll();
        }

        private void fill() {
            List<Document> docs = new ArrayList<>();
            List<TokenizeKey> positions = new ArrayList<>();
            long chars = 0;
            while (docs.size() < BATCH_DOCUMENTS && chars < BATCH_CHARS) {
                if (reader == null && !openNext()) break;
                if (!reader.hasNext()) {
                    reader = null; // closed by the reader at its end
                    continue;
                }
                Document d = reader.next();
                SourceFile f = reader.file();
                int p = assignment.partition(d);
                docs.add(d);
                positions.add(new TokenizeKey(p / assignment.shards(), p % assignment.shards(), f.sourceIndex(), f.index(), record++));
                chars += d.isPromptResponse() ? d.prompt().length() + d.response().length() : d.text().length();
            }
            if (docs.isEmpty()) return;
            List<EncodedDocument> encoded = encoder.encode(docs);
            for (int i = 0; i < docs.size(); i++) ready.add(new Tuple2<>(positions.get(i), encoded.get(i)));
        }

        private boolean openNext() {
            if (!fileIndices.hasNext()) return false;
            SourceFile f = files.get(fileIndices.next());
            try {
                reader = CorpusReader.open(conf.get(), manifest, f, maxLineBytes);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            record = 0;
            return true;
        }
    }
}
