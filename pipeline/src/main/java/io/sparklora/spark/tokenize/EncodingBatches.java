package io.sparklora.spark.tokenize;

import io.sparklora.data.Document;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import scala.Tuple2;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * The tokenize stage's reading side, whatever the source: documents come from {@link #read} one at a time,
 * are tokenized in batches (one native call per batch, at most {@link #BATCH_DOCUMENTS} documents or
 * {@link #BATCH_CHARS} characters) and come out keyed, lazily, so a task holds one batch whatever its input's size.
 */
abstract class EncodingBatches implements Iterator<Tuple2<TokenizeKey, EncodedDocument>> {
    static final int BATCH_DOCUMENTS = 256;
    static final long BATCH_CHARS = 4L << 20;

    private final DocumentEncoder encoder;
    private final ArrayDeque<Tuple2<TokenizeKey, EncodedDocument>> ready = new ArrayDeque<>();

    EncodingBatches(DocumentEncoder encoder) {
        this.encoder = encoder;
    }

    /** Appends the next document and its key to {@code docs} and {@code keys}; false at the end of the input. */
    protected abstract boolean read(List<Document> docs, List<TokenizeKey> keys);

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
        List<TokenizeKey> keys = new ArrayList<>();
        long chars = 0;
        while (docs.size() < BATCH_DOCUMENTS && chars < BATCH_CHARS && read(docs, keys)) {
            Document d = docs.get(docs.size() - 1);
            chars += d.isPromptResponse() ? d.prompt().length() + d.response().length() : d.text().length();
        }
        if (docs.isEmpty()) return;
        List<EncodedDocument> encoded = encoder.encode(docs);
        for (int i = 0; i < docs.size(); i++) ready.add(new Tuple2<>(keys.get(i), encoded.get(i)));
    }
}
