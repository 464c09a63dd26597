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
import io.sparklora.tokenize.ChatTemplate;
import io.sparklora.tokenize.TextTokenizer;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.PairFlatMapFunction;
import org.apache.spark.util.TaskCompletionListener;
import scala.Tuple2;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.List;

/**
 * Executor side of the tokenize stage's first step: reads the source files whose indices the partition
 * holds, tokenizes their documents in batches ({@link EncodingBatches}), and keys each by its output
 * partition and input position.
 */
public final class TokenizeReadFiles implements PairFlatMapFunction<Iterator<Integer>, TokenizeKey, EncodedDocument> {
    private static final long serialVersionUID = 1L;

    private final SerializableConfiguration conf;
    private final DatasetManifest manifest;
    private final List<SourceFile> files;
    private final String tokenizerUri;
    private final String tokenizerFingerprint;
    private final long maxLineBytes;
    private final SplitAssignment assignment;
    private final ChatTemplate chatTemplate;

    public TokenizeReadFiles(SerializableConfiguration conf, DatasetManifest manifest, List<SourceFile> files, String tokenizerUri,
                             String tokenizerFingerprint, long maxLineBytes, SplitAssignment assignment, ChatTemplate chatTemplate) {
        this.chatTemplate = chatTemplate;
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
        return new Batches(fileIndices, DocumentEncoder.of(tokenizer, manifest, chatTemplate));
    }

    private final class Batches extends EncodingBatches {
        private final Iterator<Integer> fileIndices;
        private CorpusReader reader;
        private long record;

        Batches(Iterator<Integer> fileIndices, DocumentEncoder encoder) {
            super(encoder);
            this.fileIndices = fileIndices;
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
        protected boolean read(List<Document> docs, List<TokenizeKey> keys) {
            while (true) {
                if (reader == null && !openNext()) return false;
                if (reader.hasNext()) break;
                reader = null; // closed by the reader at its end
            }
            Document d = reader.next();
            SourceFile f = reader.file();
            int p = assignment.partition(d);
            docs.add(d);
            keys.add(new TokenizeKey(p / assignment.shards(), p % assignment.shards(), f.sourceIndex(), f.index(), record++));
            return true;
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
