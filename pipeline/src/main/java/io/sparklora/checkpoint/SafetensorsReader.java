package io.sparklora.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Reads tensors from one .safetensors file on demand. Opening reads and validates only the header;
 * each {@link #read} maps just that tensor's bytes and copies them into a fresh ND4J array, so a
 * multi-GiB checkpoint never has to fit on the Java heap. Reads may run concurrently; close when all are done.
 *
 * <pre>{@code
 * try (SafetensorsReader r = SafetensorsReader.open(path)) {
 *     INDArray w = r.read("model.embed_tokens.weight");
 * }
 * }</pre>
 */
public final class SafetensorsReader implements AutoCloseable {

    private final Path file;
    private final FileChannel channel;
    private final SafetensorsHeader header;
    private final Map<String, SafetensorsEntry> entries = new LinkedHashMap<>();

    private SafetensorsReader(Path file, FileChannel channel, SafetensorsHeader header) {
        this.file = file;
        this.channel = channel;
        this.header = header;
        for (SafetensorsEntry e : header.entries()) {
            entries.put(e.name(), e);
        }
    }

    /** Opens the file and validates its header; throws {@link CheckpointException} naming the file if it is malformed. */
    public static SafetensorsReader open(Path file) {
        FileChannel channel;
        try {
            channel = FileChannel.open(file, StandardOpenOption.READ);
        } catch (IOException e) {
            throw CheckpointException.inFile(file, "cannot open: " + e, e);
        }
        try {
            return new SafetensorsReader(file, channel, SafetensorsHeader.read(file, channel));
        } catch (IOException | RuntimeException e) {
            closeQuietly(channel);
            if (e instanceof CheckpointException ce) {
                throw ce;
            }
            throw CheckpointException.inFile(file, "cannot read header: " + e, e);
        }
    }

    public Path file() {
        return file;
    }

    /** Tensor names in the order their bytes appear in the file (reading in this order is sequential I/O). */
    public List<String> names() {
        return Collections.unmodifiableList(new ArrayList<>(entries.keySet()));
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The shape from the header; {@code []} for a scalar. */
    public long[] shape(String name) {
        return entry(name).shape().clone();
    }

    public SafetensorsDType dtype(String name) {
        return entry(name).dtype();
    }

    /** String metadata from {@code __metadata__}; empty when the file has none. */
    public Map<String, String> metadata() {
        return header.metadata();
    }

    /**
     * The tensor as a float32 array, row-major, shaped as in the header (rank 0 for {@code []}).
     * F16, BF16 and F64 are converted; integer and bool tensors are refused (use {@link #readRaw}).
     */
    public INDArray read(String name) {
        SafetensorsEntry e = entry(name);
        switch (e.dtype()) {
            case F32:
                return copyInto(e, DataType.FLOAT, 4, NativeMemory::copyBytes);
            case F16:
                return copyInto(e, DataType.FLOAT, 4, (src, dst) -> {
                    ShortBuffer in = src.asShortBuffer();
                    FloatBuffer out = dst.asFloatBuffer();
                    for (int i = 0, n = in.remaining(); i < n; i++) {
                        out.put(i, HalfPrecision.halfToFloat(in.get(i)));
                    }
                });
            case BF16:
                return copyInto(e, DataType.FLOAT, 4, (src, dst) -> {
                    ShortBuffer in = src.asShortBuffer();
                    FloatBuffer out = dst.asFloatBuffer();
                    for (int i = 0, n = in.remaining(); i < n; i++) {
                        out.put(i, HalfPrecision.bfloat16ToFloat(in.get(i)));
                    }
                });
            case F64:
                return copyInto(e, DataType.FLOAT, 4, (src, dst) -> {
                    DoubleBuffer in = src.asDoubleBuffer();
                    FloatBuffer out = dst.asFloatBuffer();
                    for (int i = 0, n = in.remaining(); i < n; i++) {
                        out.put(i, (float) in.get(i));
                    }
                });
            default:
                throw CheckpointException.inTensor(file, name, "has dtype " + e.dtype()
                        + ", not a floating-point type, so it cannot be read as float32 weights;"
                        + " use readRaw for integer and bool tensors");
        }
    }

    /**
     * The tensor in the ND4J type with the same bits (F16 → HALF, BF16 → BFLOAT16, I64 → LONG,
     * U8 → UBYTE, BOOL → BOOL, ...), copied without conversion. The 8-bit float formats are refused.
     */
    public INDArray readRaw(String name) {
        SafetensorsEntry e = entry(name);
        DataType type = e.dtype().nd4jType().orElseThrow(() -> CheckpointException.inTensor(file, name,
                "has dtype " + e.dtype() + ", which ND4J cannot represent"));
        return copyInto(e, type, e.dtype().byteSize(), NativeMemory::copyBytes);
    }

    /**
     * The tensor's bytes as a read-only memory map (little-endian), valid after this reader is closed: the operating
     * system pages them in on use and may drop them again under memory pressure. Tensors of 2 GiB or more are refused.
     */
    public ByteBuffer mapBytes(String name) {
        SafetensorsEntry e = entry(name);
        long length = e.end() - e.begin();
        if (length >= Integer.MAX_VALUE) throw CheckpointException.inTensor(file, name, "is " + length + " bytes, too large to map whole");
        try {
            if (channel.size() < header.dataStart() + e.end()) {
                throw CheckpointException.inTensor(file, name, "ends at byte " + (header.dataStart() + e.end()) + " but the file has "
                        + channel.size() + " (truncated?)");
            }
            return channel.map(FileChannel.MapMode.READ_ONLY, header.dataStart() + e.begin(), length).order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException ex) {
            throw CheckpointException.inTensor(file, name, "cannot map data: " + ex, ex);
        }
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }

    private SafetensorsEntry entry(String name) {
        SafetensorsEntry e = entries.get(name);
        if (e == null) {
            throw CheckpointException.inTensor(file, name, "no such tensor in this file");
        }
        return e;
    }

    /** Copies src elements (little-endian) into dst elements; both buffers hold the same element count. */
    @FunctionalInterface
    private interface WindowConverter {
        void convert(ByteBuffer src, ByteBuffer dst);
    }

    /**
     * Allocates the target array and fills it window by window from a memory map of the tensor's
     * bytes, so neither side ever needs a single buffer over 2 GiB.
     */
    private INDArray copyInto(SafetensorsEntry e, DataType targetType, int targetElementSize, WindowConverter converter) {
        INDArray target = NativeMemory.allocate(targetType, e.shape());
        long count = e.elementCount();
        if (count == 0) {
            return target;
        }
        int sourceElementSize = e.dtype().byteSize();
        int elementsPerWindow = NativeMemory.windowBytes / Math.max(sourceElementSize, targetElementSize);
        try {
            long start = header.dataStart() + e.begin();
            if (channel.size() < header.dataStart() + e.end()) {
                throw CheckpointException.inTensor(file, e.name(), "file shrank since it was opened");
            }
            for (long done = 0; done < count; done += elementsPerWindow) {
                int n = (int) Math.min(elementsPerWindow, count - done);
                ByteBuffer src = channel.map(FileChannel.MapMode.READ_ONLY, start + done * sourceElementSize,
                        (long) n * sourceElementSize).order(ByteOrder.LITTLE_ENDIAN);
                ByteBuffer dst = NativeMemory.window(target, done * targetElementSize, n * targetElementSize);
                converter.convert(src, dst);
            }
        } catch (IOException ex) {
            throw CheckpointException.inTensor(file, e.name(), "cannot read data: " + ex, ex);
        }
        return target;
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing was written; a failed close of a read-only channel loses nothing
        }
    }
}
