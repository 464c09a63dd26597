package io.sparklora.checkpoint;

import java.util.Optional;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The element types a safetensors header may name, with their size in bytes and the ND4J type
 * that holds the same bits. The 8-bit float formats are recognised (so a file holding them can
 * still be opened and its other tensors read) but have no ND4J counterpart.
 */
public enum SafetensorsDType {
    // Declared in the reference implementation's order: its writer sorts tensors by this order
    // (descending), and so does ours, to produce byte-identical files.
    BOOL(1, DataType.BOOL, false),
    U8(1, DataType.UINT8, false),
    I8(1, DataType.INT8, false),
    F8_E5M2(1, null, true),
    F8_E4M3(1, null, true),
    I16(2, DataType.INT16, false),
    U16(2, DataType.UINT16, false),
    F16(2, DataType.FLOAT16, true),
    BF16(2, DataType.BFLOAT16, true),
    I32(4, DataType.INT32, false),
    U32(4, DataType.UINT32, false),
    F32(4, DataType.FLOAT, true),
    F64(8, DataType.DOUBLE, true),
    I64(8, DataType.INT64, false),
    U64(8, DataType.UINT64, false);

    private final int byteSize;
    private final DataType nd4jType;
    private final boolean floatingPoint;

    SafetensorsDType(int byteSize, DataType nd4jType, boolean floatingPoint) {
        this.byteSize = byteSize;
        this.nd4jType = nd4jType;
        this.floatingPoint = floatingPoint;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    /** The ND4J type with the same bit layout, or empty for the 8-bit floats. */
    public Optional<DataType> nd4jType() {
        return Optional.ofNullable(nd4jType);
    }

    /** The header spelling ("F32", "BF16", ...), or empty when the name is not a safetensors dtype. */
    public static Optional<SafetensorsDType> parse(String name) {
        for (SafetensorsDType t : values()) {
            if (t.name().equals(name)) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** The dtype that stores an ND4J type bit for bit, or empty for types safetensors cannot hold (UTF8...). */
    public static Optional<SafetensorsDType> of(DataType type) {
        for (SafetensorsDType t : values()) {
            if (t.nd4jType == type) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }
}
