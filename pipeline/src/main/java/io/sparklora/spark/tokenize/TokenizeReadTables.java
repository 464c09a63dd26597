package io.sparklora.spark.tokenize;

import io.sparklora.data.Document;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.SplitAssignment;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.tokenize.ChatTemplate;
import io.sparklora.tokenize.TextTokenizer;
import org.apache.spark.api.java.function.PairFlatMapFunction;
import org.apache.spark.sql.Row;
import scala.Tuple2;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.List;

/**
 * Executor side of the tokenize stage for one Spark source: turns the rows of the source's prepared
 * DataFrame ({@link TokenizeTables}: filtered, empty cells and null labels already removed) into the same
 * {@link Document}s the file readers make, tokenizes them in batches and keys each by its output partition
 * and content hash ({@link TokenizeKey#ofContent}), never by row position.
 *
 * <p>Row layout: {@code [text, label]} for text sources, {@code [prompt, response]} for prompt/response
 * sources; {@code label} is present only with a label column (a string, or null for none).
 */
public final class TokenizeReadTables implements PairFlatMapFunction<Iterator<Row>, TokenizeKey, EncodedDocument> {
    private static final long serialVersionUID = 1L;

    private final SerializableConfiguration conf;
    private final int sourceIndex;
    private final String where;
    private final boolean promptResponse;
    private final boolean labelColumn;
    private final int fixedLabel;
    private final List<String> labels;
    private final String labelPrompt;
    private final String tokenizerUri;
    private final String tokenizerFingerprint;
    private final SplitAssignment assignment;
    private final ChatTemplate chatTemplate;     // or null
    private final String systemPrompt;           // or null

    /**
     * @param where names the source in error messages and in {@link Document#where}
     * @param fixedLabel the source's fixed label index, or -1
     */
    public TokenizeReadTables(SerializableConfiguration conf, int sourceIndex, String where, boolean promptResponse,
                              boolean labelColumn, int fixedLabel, List<String> labels, String labelPrompt,
                              String tokenizerUri, String tokenizerFingerprint, SplitAssignment assignment,
                              ChatTemplate chatTemplate, String systemPrompt) {
        this.chatTemplate = chatTemplate;
        this.systemPrompt = systemPrompt;
        this.conf = conf;
        this.sourceIndex = sourceIndex;
        this.where = where;
        this.promptResponse = promptResponse;
        this.labelColumn = labelColumn;
        this.fixedLabel = fixedLabel;
        this.labels = List.copyOf(labels);
        this.labelPrompt = labelPrompt;
        this.tokenizerUri = tokenizerUri;
        this.tokenizerFingerprint = tokenizerFingerprint;
        this.assignment = assignment;
    }

    @Override
    public Iterator<Tuple2<TokenizeKey, EncodedDocument>> call(Iterator<Row> rows) throws IOException {
        if (!rows.hasNext()) return java.util.Collections.emptyIterator();
        TextTokenizer tokenizer = TokenizerCache.get(conf.get(), tokenizerUri, tokenizerFingerprint);
        return new Batches(rows, new DocumentEncoder(tokenizer, labels, labelPrompt, chatTemplate, systemPrompt));
    }

    /** The document of one prepared row. */
    Document document(Row row) throws IOException {
        if (promptResponse) return Document.promptResponse(row.getString(0), row.getString(1), where);
        int label = fixedLabel;
        if (labelColumn) {
            String value = row.getString(1);
            label = labels.indexOf(value);
            // TokenizeTables checked every label before this job; a source that changed since fails here
            if (label < 0) throw new IOException(where + ": label '" + value + "' is not in labels " + labels);
        }
        return Document.text(row.getString(0), label, where);
    }

    private final class Batches extends EncodingBatches {
        private final Iterator<Row> rows;

        Batches(Iterator<Row> rows, DocumentEncoder encoder) {
            super(encoder);
            this.rows = rows;
        }

        @Override
        protected boolean read(List<Document> docs, List<TokenizeKey> keys) {
            if (!rows.hasNext()) return false;
            Document d;
            try {
                d = document(rows.next());
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            byte[] hash = assignment.hash(d);
            int p = assignment.partition(hash);
            docs.add(d);
            keys.add(TokenizeKey.ofContent(p / assignment.shards(), p % assignment.shards(), sourceIndex, hash));
            return true;
        }
    }
}
