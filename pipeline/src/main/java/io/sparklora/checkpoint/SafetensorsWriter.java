package io.sparklora.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.util.AtomicFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Writes .safetensors files that Python's {@code safetensors} (and so Hugging Face) loads as is.
 * Layout follows the reference writer (a test compares our bytes with Python's): tensors ordered by
 * dtype (widest first, keeping every tensor aligned) then name, data offsets contiguous from 0, the JSON header padded with
 * spaces to a multiple of 8 bytes, and no {@code __metadata__} entry when there is no metadata.
 * The file is written atomically: a failure leaves no partial file behind.
 */
public final class SafetensorsWriter {

    private SafetensorsWriter() {
    }

    /**
     * Writes the tensors to {@code file}, replacing it. Floating-point tensors are stored as
     * {@code storeAs} (FLOAT, HALF or BFLOAT16; narrowing rounds to nearest even); integer and
     * bool tensors keep their own type. Metadata values are free-form strings.
     */
    public static void write(Path file, Map<String, INDArray> tensors, Map<String, String> metadata, DataType storeAs) {
        SafetensorsDType floatDType = floatStorage(storeAs);
        List<Planned> plan = plan(file, tensors, floatDType);
        byte[] header = headerBytes(file, plan, metadata);
        try {
            AtomicFiles.writeChannel(file, out -> {
                ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(out, length);
                writeFully(out, ByteBuffer.wrap(header));
                for (Planned p : plan) {
                    writeTensor(out, p);
                }
            });
        } catch (IOException e) {
            throw CheckpointException.inFile(file, "cannot write: " + e, e);
        }
    }

    /** Bytes a tensor of this type and size takes in a file written with {@code storeAs}; used to plan shards. */
    public static long storedBytes(INDArray tensor, DataType storeAs) {
        SafetensorsDType floatDType = floatStorage(storeAs);
        SafetensorsDType dtype = storedDType(tensor.dataType(), floatDType).orElseThrow(() ->
                new IllegalArgumentException("ND4J type " + tensor.dataType() + " cannot be stored in safetensors"));
        return tensor.length() * dtype.byteSize();
    }

    /** A tensor with its on-disk dtype and size. */
    private record Planned(String name, SafetensorsDType dtype, long[] shape, INDArray array, long byteLength) {
    }

    private static SafetensorsDType floatStorage(DataType storeAs) {
        // if-chain rather than switch: HALF is deprecated in favour of its alias FLOAT16, which a switch cannot name.
        if (storeAs == DataType.FLOAT) {
            return SafetensorsDType.F32;
        }
        if (storeAs == DataType.FLOAT16) {
            return SafetensorsDType.F16;
        }
        if (storeAs == DataType.BFLOAT16) {
            return SafetensorsDType.BF16;
        }
        throw new IllegalArgumentException("storeAs must be FLOAT, HALF (FLOAT16) or BFLOAT16, not " + storeAs);
    }

    private static Optional<SafetensorsDType> storedDType(DataType type, SafetensorsDType floatDType) {
        if (type.isFPType()) {
            return Optional.of(floatDType);
        }
        return SafetensorsDType.of(type);
    }

    private static List<Planned> plan(Path file, Map<String, INDArray> tensors, SafetensorsDType floatDType) {
        List<Planned> plan = new ArrayList<>();
        for (Map.Entry<String, INDArray> t : tensors.entrySet()) {
            String name = t.getKey();
            INDArray array = t.getValue();
            if (name == null || name.isEmpty() || name.equals(SafetensorsHeader.METADATA_KEY)) {
                throw CheckpointException.inFile(file, "invalid tensor name '" + name + "'");
            }
            if (array == null) {
                throw CheckpointException.inTensor(file, name, "array is null");
            }
            SafetensorsDType dtype = storedDType(array.dataType(), floatDType).orElseThrow(() ->
                    CheckpointException.inTensor(file, name, "ND4J type " + array.dataType()
                            + " cannot be stored in safetensors"));
            plan.add(new Planned(name, dtype, array.shape(), array, array.length() * dtype.byteSize()));
        }
        // The reference order: dtype descending (which puts wider elements first, so each tensor stays
        // aligned to its element size), then name.
        plan.sort(Comparator.comparing(Planned::dtype, Comparator.reverseOrder()).thenComparing(Planned::name));
        return plan;
    }

    private static byte[] headerBytes(Path file, List<Planned> plan, Map<String, String> metadata) {
        ObjectNode root = SafetensorsHeader.JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = root.putObject(SafetensorsHeader.METADATA_KEY);
            metadata.forEach((k, v) -> {
                if (k == null || v == null) {
                    throw CheckpointException.inFile(file, "metadata keys and values must not be null (" + k + "=" + v + ")");
                }
                meta.put(k, v);
            });
        }
        long offset = 0;
        for (Planned p : plan) {
            ObjectNode entry = root.putObject(p.name());
            entry.put("dtype", p.dtype().name());
            ArrayNode shape = entry.putArray("shape");
            Arrays.stream(p.shape()).forEach(shape::add);
            entry.putArray("data_offsets").add(offset).add(offset + p.byteLength());
            offset += p.byteLength();
        }
        byte[] json;
        try {
            json = SafetensorsHeader.JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw CheckpointException.inFile(file, "cannot encode header: " + e, e);
        }
        // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
        int padded = (json.length + 7) / 8 * 8;
        byte[] header = Arrays.copyOf(json, padded);
        Arrays.fill(header, json.length, padded, (byte) ' ');
        return header;
    }

    private static void writeTensor(FileChannel out, Planned p) throws IOException {
        if (p.byteLength() == 0) {
            return;
        }
        // Floats are narrowed by our own rounding from float32; everything else is copied bit for bit.
        // Converted one tensor at a time, so a save never holds a second copy of the whole model.
        DataType sourceType = p.dtype().isFloatingPoint() ? DataType.FLOAT : p.dtype().nd4jType().orElseThrow();
        INDArray source = NativeMemory.denseRowMajor(p.array(), sourceType);
        int window = NativeMemory.windowBytes;
        if (p.dtype() != SafetensorsDType.F16 && p.dtype() != SafetensorsDType.BF16) {
            // Stored as is: write ND4J's own buffer, a window at a time.
            for (long at = 0; at < p.byteLength(); at += window) {
                int n = (int) Math.min(window, p.byteLength() - at);
                writeFully(out, NativeMemory.window(source, at, n));
            }
            return;
        }
        boolean half = p.dtype() == SafetensorsDType.F16;
        long count = source.length();
        int elementsPerWindow = window / 8; // a staging buffer of window/4 bytes: narrowing halves the bytes
        ByteBuffer staging = ByteBuffer.allocate(elementsPerWindow * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (long done = 0; done < count; done += elementsPerWindow) {
            int n = (int) Math.min(elementsPerWindow, count - done);
            FloatBuffer floats = NativeMemory.window(source, done * Float.BYTES, n * Float.BYTES).asFloatBuffer();
            staging.clear();
            for (int i = 0; i < n; i++) {
                float v = floats.get(i);
                staging.putShort(i * 2, half ? HalfPrecision.floatToHalf(v) : HalfPrecision.floatToBfloat16(v));
            }
            staging.limit(n * 2);
            writeFully(out, staging);
        }
    }

    private static void writeFully(FileChannel out, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            out.write(buffer);
        }
    }
}
