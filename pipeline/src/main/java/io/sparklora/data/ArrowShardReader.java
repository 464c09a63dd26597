package io.sparklora.data;

import io.sparklora.storage.HadoopFiles;
import io.sparklora.train.TokenBlocks;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.ipc.ReadChannel;
import org.apache.arrow.vector.ipc.message.MessageChannelReader;
import org.apache.arrow.vector.ipc.message.MessageResult;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumException;

import java.io.BufferedInputStream;
import java.io.FileNotFoundException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PushbackInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * Reads token shards ({@link ShardSchema}) through the Hadoop FileSystem API and checks them against
 * their {@link ShardManifest}: the schema (the error names the shard and the column), the row count, and
 * the SHA-256 of the whole file.
 *
 * <p>A shard is read in one sequential pass: an Arrow IPC file is its 8-byte magic, the IPC stream
 * (schema, record batches, end marker), then a footer; the stream part is decoded while every byte,
 * footer included, goes through the digest. A checksum mismatch is reported in preference to any decoding
 * error, since a changed file explains the rest.
 */
public final class ArrowShardReader {
    private static final byte[] MAGIC = "ARROW1".getBytes(StandardCharsets.US_ASCII);

    private ArrowShardReader() {}

    /** Receives each decoded record batch. */
    @FunctionalInterface
    private interface BatchConsumer {
        void accept(VectorSchemaRoot batch) throws IOException;
    }

    /** The blocks of one shard of {@code dirUri}. */
    public static TokenBlocks readBlocks(Configuration conf, String dirUri, ShardManifest manifest, ShardManifest.Shard shard)
            throws IOException {
        TokenBlocks blocks = new TokenBlocks(manifest.seqLen());
        int width = manifest.seqLen() + 1;
        read(conf, dirUri, shard, ShardSchema.blocks(manifest.seqLen()), batch -> {
            FixedSizeListVector ids = (FixedSizeListVector) batch.getVector(ShardSchema.INPUT_IDS);
            FixedSizeListVector mask = (FixedSizeListVector) batch.getVector(ShardSchema.LOSS_MASK);
            IntVector idValues = (IntVector) ids.getDataVector();
            TinyIntVector maskValues = (TinyIntVector) mask.getDataVector();
            for (int row = 0; row < batch.getRowCount(); row++) {
                int[] t = new int[width];
                boolean[] m = new boolean[width];
                for (int i = 0; i < width; i++) {
                    t[i] = idValues.get(row * width + i);
                    m[i] = maskValues.get(row * width + i) != 0;
                }
                blocks.add(t, m);
            }
        });
        return blocks;
    }

    /** Shard {@code part} of {@code split} ({@link ShardManifest#TRAIN} or {@link ShardManifest#VALIDATION}). */
    public static TokenBlocks readBlocks(Configuration conf, String dirUri, ShardManifest manifest, String split, int part)
            throws IOException {
        List<ShardManifest.Shard> shards = manifest.split(split);
        if (part < 0 || part >= shards.size()) {
            throw new IllegalArgumentException("token shards at " + dirUri + " have " + shards.size() + " " + split + " shards, no part " + part);
        }
        return readBlocks(conf, dirUri, manifest, shards.get(part));
    }

    /** All blocks of {@code split}, shard after shard. */
    public static TokenBlocks readSplit(Configuration conf, String dirUri, ShardManifest manifest, String split) throws IOException {
        TokenBlocks all = new TokenBlocks(manifest.seqLen());
        for (ShardManifest.Shard s : manifest.split(split)) {
            TokenBlocks b = readBlocks(conf, dirUri, manifest, s);
            for (int i = 0; i < b.size(); i++) all.add(b.block(i), b.mask(i));
        }
        return all;
    }

    /** The validation examples of a labelled dataset, shard after shard (empty for a plain corpus). */
    public static List<ValidationExample> readValidationExamples(Configuration conf, String dirUri, ShardManifest manifest)
            throws IOException {
        List<ValidationExample> out = new ArrayList<>();
        for (ShardManifest.Shard shard : manifest.split(ShardManifest.VALIDATION_EXAMPLES)) {
            read(conf, dirUri, shard, ShardSchema.validationExamples(), batch -> {
                ListVector prompts = (ListVector) batch.getVector(ShardSchema.PROMPT_IDS);
                IntVector values = (IntVector) prompts.getDataVector();
                IntVector labels = (IntVector) batch.getVector(ShardSchema.LABEL);
                for (int row = 0; row < batch.getRowCount(); row++) {
                    int start = prompts.getElementStartIndex(row), end = prompts.getElementEndIndex(row);
                    int[] ids = new int[end - start];
                    for (int i = start; i < end; i++) ids[i - start] = values.get(i);
                    out.add(new ValidationExample(ids, labels.get(row)));
                }
            });
        }
        return out;
    }

    private static void read(Configuration conf, String dirUri, ShardManifest.Shard shard, Schema expected, BatchConsumer consumer)
            throws IOException {
        String uri = HadoopFiles.resolve(dirUri, shard.file());
        MessageDigest digest = CorpusReader.sha256();
        InputStream raw;
        try {
            raw = HadoopFiles.open(conf, uri);
        } catch (FileNotFoundException e) {
            throw new FileNotFoundException("shard " + uri + " listed in " + ShardManifest.FILE_NAME + " does not exist");
        }
        try (InputStream in = new DigestInputStream(new BufferedInputStream(raw, 1 << 16), digest)) {
            Exception failure = null;
            long rows = 0;
            // Arrow allocates each record batch's body at the length the file declares; a batch's buffers are slices
            // of its body and the previous batch's are released, so twice the file's size is ample for a true file
            // and a false length fails here, not as an OutOfMemoryError
            long size = HadoopFiles.fs(HadoopFiles.path(uri), conf).getFileStatus(HadoopFiles.path(uri)).getLen();
            try (BufferAllocator allocator = ArrowMemory.newAllocator(2 * size + (1 << 20))) {
                byte[] magic = in.readNBytes(8);
                if (!Arrays.equals(Arrays.copyOf(magic, MAGIC.length), MAGIC)) throw new IOException("shard " + uri + ": not an Arrow IPC file");
                BoundedMessages messages = new BoundedMessages(new PushbackInputStream(new KeepOpen(in), 8), size - 8, allocator, uri);
                try (ArrowStreamReader reader = new ArrowStreamReader(messages, allocator)) {
                    ShardSchema.check(expected, reader.getVectorSchemaRoot().getSchema(), uri);
                    while (reader.loadNextBatch()) {
                        rows += reader.getVectorSchemaRoot().getRowCount();
                        consumer.accept(reader.getVectorSchemaRoot());
                    }
                }
            } catch (IOException | RuntimeException e) {
                failure = e;
            }
            try {
                in.transferTo(OutputStream.nullOutputStream()); // the footer and anything after: all bytes count
            } catch (ChecksumException e) {
                // a file system that keeps its own checksums (Hadoop's local one, HDFS) noticed first
                throw new IOException("shard " + uri + ": the file system's checksum fails at byte " + e.getPos()
                        + " (file changed or corrupted)", e);
            }
            String actual = HexFormat.of().formatHex(digest.digest());
            if (!actual.equals(shard.sha256())) {
                throw new IOException("shard " + uri + ": sha256 " + actual + " does not match manifest " + shard.sha256()
                        + " (file changed or corrupted)");
            }
            if (failure instanceof IOException io && io.getMessage() != null && io.getMessage().startsWith("shard ")) throw io;
            if (failure != null) throw new IOException("shard " + uri + ": cannot be decoded: " + failure, failure);
            if (rows != shard.rows()) throw new IOException("shard " + uri + ": " + rows + " rows, but the manifest says " + shard.rows());
        }
    }

    /**
     * Refuses a message whose declared metadata length is more than the file has left, before Arrow allocates a heap
     * buffer of that length (up to 2 GiB for one false int). Each message starts with its length, after the
     * continuation marker 0xFFFFFFFF in the current format; the bytes are peeked and pushed back for Arrow to read.
     */
    private static final class BoundedMessages extends MessageChannelReader {
        private final PushbackInputStream peek;
        private final long streamBytes;
        private final String uri;

        BoundedMessages(PushbackInputStream peek, long streamBytes, BufferAllocator allocator, String uri) {
            super(new ReadChannel(Channels.newChannel(peek)), allocator);
            this.peek = peek;
            this.streamBytes = streamBytes;
            this.uri = uri;
        }

        @Override
        public MessageResult readNext() throws IOException {
            byte[] head = peek.readNBytes(8);
            peek.unread(head);
            if (head.length >= 4) {
                ByteBuffer b = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN);
                long length = b.getInt(0);
                if (length == -1 && head.length == 8) length = b.getInt(4);
                long left = streamBytes - bytesRead() - head.length;
                if (length != -1 && (length < 0 || length > left)) {
                    throw new IOException("shard " + uri + ": an Arrow message declares " + length + " bytes of metadata at byte "
                            + (8 + bytesRead()) + ", but the file has " + Math.max(left, 0) + " bytes after it");
                }
            }
            return super.readNext();
        }
    }

    /** Lets the Arrow reader close its channel without closing the stream, which is still drained for the digest. */
    private static final class KeepOpen extends FilterInputStream {
        KeepOpen(InputStream in) { super(in); }

        @Override public void close() {}
    }
}
