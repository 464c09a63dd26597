package io.sparklora.data;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.dictionary.DictionaryProvider;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.types.pojo.Schema;

import java.io.Closeable;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.HexFormat;

/**
 * Writes one token shard in the Arrow IPC file format ({@link ShardSchema}) to a stream, a record batch
 * of {@code batchRows} rows at a time, so memory is one batch whatever the shard's size. The SHA-256 of
 * the bytes is computed on the way out. The same rows give the same bytes: buffers are freshly zeroed
 * for every batch and every value is set.
 *
 * <p>Call {@link #finish()} to complete the file (the footer), then {@link #close()}; closing without
 * finishing abandons the file (the caller discards what was written). The stream itself is not closed.
 */
public final class ArrowShardWriter implements Closeable {
    public static final int DEFAULT_BATCH_ROWS = 256;

    private final BufferAllocator allocator;
    private final VectorSchemaRoot root;
    private final ArrowFileWriter writer;
    private final MessageDigest digest;
    private final CountingStream counted;
    private final int batchRows;
    private final int width; // seqLen + 1 for blocks, 0 for examples
    private int batchFill;
    private long rows;
    private String sha256;

    private ArrowShardWriter(OutputStream out, Schema schema, int width, int batchRows) throws IOException {
        if (batchRows < 1) throw new IllegalArgumentException("batch rows must be positive, got " + batchRows);
        this.width = width;
        this.batchRows = batchRows;
        this.digest = CorpusReader.sha256();
        this.counted = new CountingStream(new DigestOutputStream(out, digest));
        this.allocator = ArrowMemory.newAllocator();
        this.root = VectorSchemaRoot.create(schema, allocator);
        this.writer = new ArrowFileWriter(root, new DictionaryProvider.MapDictionaryProvider(), Channels.newChannel(counted));
        writer.start();
        newBatch();
    }

    /** A writer of block rows ({@code train}, {@code validation}) of {@code seqLen + 1} tokens. */
    public static ArrowShardWriter blocks(OutputStream out, int seqLen) throws IOException {
        return new ArrowShardWriter(out, ShardSchema.blocks(seqLen), seqLen + 1, DEFAULT_BATCH_ROWS);
    }

    public static ArrowShardWriter blocks(OutputStream out, int seqLen, int batchRows) throws IOException {
        return new ArrowShardWriter(out, ShardSchema.blocks(seqLen), seqLen + 1, batchRows);
    }

    /** A writer of validation examples (prompt tokens and label index). */
    public static ArrowShardWriter validationExamples(OutputStream out) throws IOException {
        return new ArrowShardWriter(out, ShardSchema.validationExamples(), 0, DEFAULT_BATCH_ROWS);
    }

    /** Appends a block of {@code seqLen + 1} tokens and its loss mask (same length). */
    public void writeBlock(int[] tokens, boolean[] lossMask) throws IOException {
        if (width == 0) throw new IllegalStateException("this writer writes validation examples, not blocks");
        if (tokens.length != width || lossMask.length != width) {
            throw new IllegalArgumentException("block of " + tokens.length + " tokens and " + lossMask.length + " mask entries, expected " + width);
        }
        FixedSizeListVector ids = (FixedSizeListVector) root.getVector(ShardSchema.INPUT_IDS);
        FixedSizeListVector mask = (FixedSizeListVector) root.getVector(ShardSchema.LOSS_MASK);
        IntVector idValues = (IntVector) ids.getDataVector();
        TinyIntVector maskValues = (TinyIntVector) mask.getDataVector();
        int base = batchFill * width;
        for (int i = 0; i < width; i++) {
            idValues.set(base + i, tokens[i]);
            maskValues.set(base + i, lossMask[i] ? 1 : 0);
        }
        ids.setNotNull(batchFill);
        mask.setNotNull(batchFill);
        rowAdded();
    }

    /** Appends a validation example. */
    public void writeExample(int[] promptIds, int label) throws IOException {
        if (width != 0) throw new IllegalStateException("this writer writes blocks, not validation examples");
        ListVector prompts = (ListVector) root.getVector(ShardSchema.PROMPT_IDS);
        IntVector values = (IntVector) prompts.getDataVector();
        int offset = prompts.startNewValue(batchFill);
        for (int i = 0; i < promptIds.length; i++) values.setSafe(offset + i, promptIds[i]);
        prompts.endValue(batchFill, promptIds.length);
        ((IntVector) root.getVector(ShardSchema.LABEL)).setSafe(batchFill, label);
        rowAdded();
    }

    /** Writes the last batch and the footer. */
    public void finish() throws IOException {
        if (sha256 != null) return;
        if (batchFill > 0) flushBatch();
        writer.end();
        counted.flush();
        sha256 = HexFormat.of().formatHex(digest.digest());
    }

    public long rows() { return rows; }

    /** Bytes written so far. */
    public long bytes() { return counted.count; }

    /** SHA-256 (lower-case hex) of the whole file; available after {@link #finish()}. */
    public String sha256() {
        if (sha256 == null) throw new IllegalStateException("shard not finished");
        return sha256;
    }

    @Override
    public void close() {
        root.close();
        allocator.close();
    }

    private void rowAdded() throws IOException {
        batchFill++;
        rows++;
        if (batchFill == batchRows) {
            flushBatch();
            newBatch();
        }
    }

    private void flushBatch() throws IOException {
        root.setRowCount(batchFill);
        writer.writeBatch();
        batchFill = 0;
    }

    /** Fresh (zeroed) buffers sized for a full batch, so no stale bytes of an earlier batch reach the file. */
    private void newBatch() {
        for (FieldVector v : root.getFieldVectors()) {
            v.clear();
            v.setInitialCapacity(batchRows);
        }
        root.allocateNew();
    }

    /** Counts bytes and shields the caller's stream from being closed with the Arrow channel. */
    private static final class CountingStream extends FilterOutputStream {
        long count;

        CountingStream(OutputStream out) { super(out); }

        @Override public void write(int b) throws IOException { out.write(b); count++; }

        @Override public void write(byte[] b, int off, int len) throws IOException { out.write(b, off, len); count += len; }

        @Override public void close() throws IOException { flush(); }
    }
}
