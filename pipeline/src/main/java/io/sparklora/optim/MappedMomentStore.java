package io.sparklora.optim;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;
import org.bytedeco.javacpp.indexer.Bfloat16Indexer;
import org.bytedeco.javacpp.indexer.DoubleIndexer;
import org.bytedeco.javacpp.indexer.FloatIndexer;
import org.bytedeco.javacpp.indexer.HalfIndexer;
import org.bytedeco.javacpp.indexer.Indexer;
import org.nd4j.linalg.api.buffer.DataBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * Files that hold AdamW moments, memory-mapped into the process: {@link AdamW.StateStorage#MAPPED}.
 *
 * <p>The store owns one directory, created with a unique name ({@code adamw-state-*}) under the directory the
 * caller gives, and one file per parameter in it. A file holds the parameter's first moment at offset 0 and
 * its second moment at the next multiple of 4096 bytes after it, each as the parameter's data type in native
 * byte order, 'c' order. The files are sparse when created, so fresh moments read as zeros without being
 * written.
 *
 * <p>Each moment is mapped {@code READ_WRITE} with {@link FileChannel#map} (a {@code MAP_SHARED} mapping), and
 * the ND4J array is made over the mapped memory itself: a JavaCPP pointer over the mapped buffer's address,
 * wrapped by {@link Nd4j#createBuffer(Pointer, DataType, long, Indexer)}. On the CPU backend that constructor
 * ({@code BaseCpuDataBuffer(Pointer, Indexer, long)}) hands the address to libnd4j as an externalized,
 * non-owning data buffer ({@code OpaqueDataBuffer.externalizedDataBuffer}): no copy, and freeing the ND4J
 * buffer never frees the mapped memory. (The other route, {@code Nd4j.createBuffer(ByteBuffer, DataType, int)},
 * allocates a fresh buffer and {@code memcpy}s the bytes into it, so writes would never reach the file.)
 *
 * <p>Because the mapping is file-backed and shared, its pages are not anonymous memory: under memory pressure
 * the kernel writes dirty ones back to the file and drops them, and faults them back in when the next step
 * touches them; no swap is needed. {@link Slot#unmap(boolean)} moves them out of the process explicitly
 * (flush, then {@code munmap}); the next {@link Slot#map()} maps them again.
 *
 * <p>Limits: a moment is one mapping, and {@link FileChannel#map} maps at most {@link Integer#MAX_VALUE} bytes,
 * so a single parameter may have at most 2 GiB per moment (536,870,911 float32 elements); the data types are
 * FLOAT, DOUBLE, HALF and BFLOAT16; the backend must be ND4J's CPU backend (the constructor refuses others).
 * Explicit unmapping uses {@code sun.misc.Unsafe.invokeCleaner} (module
 * {@code jdk.unsupported}); where that is missing, unmapped buffers are left to the garbage collector.
 */
final class MappedMomentStore implements AutoCloseable {
    /** The second moment starts at a page boundary, so both moments are page-aligned. */
    static final long ALIGNMENT = 4096;

    /** Directories of stores not yet closed; a shutdown hook deletes what is left of them on JVM exit. */
    private static final Set<Path> LIVE_DIRECTORIES = ConcurrentHashMap.newKeySet();
    private static volatile boolean hookInstalled;

    private final Path directory;
    private final List<Slot> slots = new ArrayList<>();
    private int sequence;
    private boolean closed;

    MappedMomentStore(Path parent) {
        if (!Nd4j.getEnvironment().isCPU()) {
            // On CUDA an ND4J buffer has a device copy besides its host memory, and ops run on the device copy;
            // mapping the host side would not take the moments off the device. See docs/paged-optimizer.md.
            throw new UnsupportedOperationException("memory-mapped optimizer state needs ND4J's CPU backend (nd4j-native); "
                    + "this JVM runs " + Nd4j.getBackend().getClass().getName());
        }
        try {
            Files.createDirectories(parent);
            this.directory = Files.createTempDirectory(parent, "adamw-state-");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create an optimizer state directory under " + parent, e);
        }
        installShutdownHook();
        LIVE_DIRECTORIES.add(directory);
    }

    Path directory() { return directory; }

    /** The moments of one parameter: a file, and (while mapped) the two arrays over it. */
    static final class Slot {
        final Path file;
        final DataType type;
        final long[] shape;
        final long length;
        final long momentBytes;
        final long secondOffset;
        private MappedByteBuffer first;
        private MappedByteBuffer second;
        private INDArray expAvg;
        private INDArray expAvgSq;
        private boolean released;

        private Slot(Path file, DataType type, long[] shape, long length) {
            this.file = file;
            this.type = type;
            this.shape = shape.clone();
            this.length = length;
            this.momentBytes = length * type.width();
            this.secondOffset = alignUp(momentBytes, ALIGNMENT);
        }

        boolean isMapped() { return expAvg != null; }

        INDArray expAvg() { map(); return expAvg; }

        INDArray expAvgSq() { map(); return expAvgSq; }

        /** Maps both moments if they are not mapped; a no-op otherwise. */
        void map() {
            if (released) throw new IllegalStateException("optimizer state file " + file + " was released");
            if (expAvg != null) return;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                // The mappings stay valid after the channel is closed.
                first = ch.map(FileChannel.MapMode.READ_WRITE, 0, momentBytes);
                second = ch.map(FileChannel.MapMode.READ_WRITE, secondOffset, momentBytes);
            } catch (IOException e) {
                first = null;
                second = null;
                throw new UncheckedIOException("cannot map optimizer state file " + file, e);
            }
            expAvg = wrap(first, type, shape, length);
            expAvgSq = wrap(second, type, shape, length);
        }

        /**
         * Drops the arrays and unmaps both moments; with {@code flush}, writes dirty pages to the file first
         * ({@code msync}), so what is left in the page cache is clean and the kernel can drop it at once.
         * Returns the bytes unmapped (0 if nothing was mapped).
         */
        long unmap(boolean flush) {
            if (expAvg == null) return 0;
            if (flush) {
                first.force();
                second.force();
            }
            // Nothing may touch the arrays once the memory under them is gone: forget them first.
            expAvg = null;
            expAvgSq = null;
            MappedByteBuffer a = first, b = second;
            first = null;
            second = null;
            unmapNow(a);
            unmapNow(b);
            return 2 * momentBytes;
        }

        private void release() {
            if (released) return;
            unmap(false);
            released = true;
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot delete optimizer state file " + file, e);
            }
        }
    }

    /**
     * A new file holding zero moments for a parameter of this type and shape, mapped.
     *
     * @throws IllegalArgumentException for data types other than FLOAT, DOUBLE, HALF and BFLOAT16, or a moment
     *                                  over {@link Integer#MAX_VALUE} bytes
     */
    Slot allocate(String parameterName, DataType type, long[] shape) {
        if (closed) throw new IllegalStateException("the optimizer state store was closed");
        if (type != DataType.FLOAT && type != DataType.DOUBLE && type != DataType.HALF && type != DataType.BFLOAT16) {
            throw new IllegalArgumentException("memory-mapped optimizer state supports FLOAT, DOUBLE, HALF and BFLOAT16 "
                    + "parameters; " + parameterName + " is " + type);
        }
        long length = 1;
        for (long d : shape) length *= d;
        if (length * type.width() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("parameter " + parameterName + " needs " + length * type.width()
                    + " bytes per moment; a memory-mapped moment is limited to " + Integer.MAX_VALUE + " bytes");
        }
        Path file = directory.resolve(String.format("%05d-%s.moments", sequence++, fileSafe(parameterName)));
        Slot slot = new Slot(file, type, shape, length);
        try {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                    StandardOpenOption.WRITE)) {
                // Writing the last byte sizes the file without writing the rest: a sparse file of zeros.
                if (length > 0) ch.write(ByteBuffer.allocate(1), slot.secondOffset + slot.momentBytes - 1);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create optimizer state file " + file, e);
        }
        slots.add(slot);
        slot.map();
        return slot;
    }

    /** Unmaps the slot and deletes its file. */
    void release(Slot slot) {
        slot.release();
        slots.remove(slot);
    }

    /** Unmaps every slot (flushing first if asked); returns the bytes unmapped. */
    long unmapAll(boolean flush) {
        long bytes = 0;
        for (Slot s : slots) bytes += s.unmap(flush);
        return bytes;
    }

    /** Releases every slot and deletes the directory; idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        UncheckedIOException failure = null;
        for (Slot s : slots) {
            try {
                s.release();
            } catch (UncheckedIOException e) {
                failure = e;
            }
        }
        slots.clear();
        try {
            deleteRecursively(directory);
        } catch (IOException e) {
            failure = new UncheckedIOException("cannot delete optimizer state directory " + directory, e);
        }
        LIVE_DIRECTORIES.remove(directory);
        if (failure != null) throw failure;
    }

    /** An array of {@code shape} ('c' order) over the mapped memory itself: no copy. */
    private static INDArray wrap(MappedByteBuffer mapped, DataType type, long[] shape, long length) {
        if (length == 0) return Nd4j.create(type, shape);
        ByteBuffer bytes = mapped.duplicate().order(ByteOrder.nativeOrder());
        Pointer pointer;
        Indexer indexer;
        switch (type) {
            case FLOAT: {
                FloatPointer p = new FloatPointer(bytes.asFloatBuffer());
                pointer = p;
                indexer = FloatIndexer.create(p);
                break;
            }
            case DOUBLE: {
                DoublePointer p = new DoublePointer(bytes.asDoubleBuffer());
                pointer = p;
                indexer = DoubleIndexer.create(p);
                break;
            }
            case HALF: {
                ShortPointer p = new ShortPointer(bytes.asShortBuffer());
                pointer = p;
                indexer = HalfIndexer.create(p);
                break;
            }
            case BFLOAT16: {
                ShortPointer p = new ShortPointer(bytes.asShortBuffer());
                pointer = p;
                indexer = Bfloat16Indexer.create(p);
                break;
            }
            default:
                throw new IllegalArgumentException("unsupported data type " + type);
        }
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            DataBuffer buffer = Nd4j.createBuffer(pointer, type, length, indexer);
            if (buffer.addressPointer().address() != pointer.address()) {
                // Would mean this ND4J build copies: the optimizer would silently stop writing to the file.
                throw new IllegalStateException("ND4J copied a mapped buffer instead of wrapping it");
            }
            return Nd4j.create(buffer, shape, Nd4j.getStrides(shape, 'c'), 0, 'c', type);
        }
    }

    private static long alignUp(long n, long alignment) {
        return (n + alignment - 1) / alignment * alignment;
    }

    private static String fileSafe(String name) {
        String s = name.replaceAll("[^A-Za-z0-9._-]", "_");
        return s.length() > 120 ? s.substring(0, 120) : s;
    }

    // ---- explicit unmapping -------------------------------------------------------------------------------

    private static final Object UNSAFE;
    private static final Method INVOKE_CLEANER;

    static {
        Object unsafe = null;
        Method invokeCleaner = null;
        try {
            Class<?> c = Class.forName("sun.misc.Unsafe");
            Field f = c.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            unsafe = f.get(null);
            invokeCleaner = c.getMethod("invokeCleaner", ByteBuffer.class);
        } catch (ReflectiveOperationException | RuntimeException e) {
            unsafe = null;
            invokeCleaner = null;
        }
        UNSAFE = unsafe;
        INVOKE_CLEANER = invokeCleaner;
    }

    /** Whether {@link Slot#unmap} really unmaps now; if not, unmapped buffers wait for the garbage collector. */
    static boolean canUnmapExplicitly() {
        return INVOKE_CLEANER != null;
    }

    private static void unmapNow(MappedByteBuffer buffer) {
        if (INVOKE_CLEANER == null || buffer == null) return;
        try {
            INVOKE_CLEANER.invoke(UNSAFE, buffer);
        } catch (ReflectiveOperationException e) {
            // Leave it to the garbage collector; the buffer is unreachable from here on.
        }
    }

    // ---- cleanup on JVM exit ------------------------------------------------------------------------------

    private static synchronized void installShutdownHook() {
        if (hookInstalled) return;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Path dir : LIVE_DIRECTORIES) {
                try {
                    deleteRecursively(dir);
                } catch (IOException | RuntimeException ignored) {
                    // best effort at exit
                }
            }
        }, "adamw-state-cleanup"));
        hookInstalled = true;
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
        }
    }
}
