package io.sparklora.checkpoint;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.bytedeco.javacpp.BytePointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Byte-level access to the off-heap memory behind an INDArray, a window at a time. Tensors are
 * copied straight between the mapped file and ND4J's buffer, with no float[] staging copy on the
 * Java heap, and windows keep every ByteBuffer under 2 GiB even for multi-GiB embeddings.
 */
final class NativeMemory {

    /**
     * Window size for copies and conversions: large enough to amortise the calls, a multiple of 8 so
     * it divides into whole elements. Not final only so tests can shrink it to cover multi-window copies.
     */
    static int windowBytes = 64 << 20;

    static {
        // Safetensors data is little-endian and we copy ND4J's buffers as they are. ND4J only ships
        // native backends for little-endian machines, but a silent byte swap would be a nasty bug.
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("spark-lora checkpoints need a little-endian machine");
        }
    }

    private NativeMemory() {
    }

    /** A fresh, dense, row-major array, outside any workspace (checkpoint weights outlive training scopes). */
    static INDArray allocate(DataType type, long[] shape) {
        for (long d : shape) {
            if (d == 0) {
                return Nd4j.create(type, shape); // empty arrays have no buffer to fill
            }
        }
        return Nd4j.createUninitializedDetached(type, 'c', shape);
    }

    /**
     * The array's values as {@code type}, in a buffer laid out exactly row-major from offset 0, so its
     * bytes are the tensor's bytes. Returns the array itself when it already is; otherwise a copy.
     */
    static INDArray denseRowMajor(INDArray array, DataType type) {
        INDArray a = array.dataType() == type ? array : array.castTo(type);
        if (a.isEmpty()) {
            return a;
        }
        boolean dense = !a.isView()
                && a.offset() == 0
                && a.ordering() == 'c'
                && Shape.hasDefaultStridesForShape(a)
                && a.data().length() == a.length();
        return dense ? a : a.dup('c');
    }

    /** Little-endian view of {@code length} bytes starting {@code byteOffset} bytes into a dense array's buffer. */
    static ByteBuffer window(INDArray dense, long byteOffset, int length) {
        BytePointer start = new BytePointer(dense.data().addressPointer())
                .getPointer(BytePointer.class, byteOffset);
        start.capacity(length);
        start.limit(length);
        return start.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Bulk copy of src's remaining bytes into dst (same byte layout on both sides). */
    static void copyBytes(ByteBuffer src, ByteBuffer dst) {
        dst.put(src);
    }
}
