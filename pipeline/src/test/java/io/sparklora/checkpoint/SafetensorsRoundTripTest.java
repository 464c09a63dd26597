package io.sparklora.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

class SafetensorsRoundTripTest {

    @TempDir
    Path dir;

    private static Map<String, INDArray> variedShapes() {
        Nd4j.getRandom().setSeed(11);
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("matrix", Nd4j.randn(DataType.FLOAT, 3, 5));
        t.put("vector", Nd4j.randn(DataType.FLOAT, 7));
        t.put("scalar", Nd4j.scalar(-1.25f));
        t.put("cube", Nd4j.randn(DataType.FLOAT, 2, 3, 4));
        t.put("empty", Nd4j.create(DataType.FLOAT, 0, 4));
        return t;
    }

    private Map<String, INDArray> roundTrip(Map<String, INDArray> tensors, DataType storeAs) {
        Path file = dir.resolve("t-" + storeAs + ".safetensors");
        SafetensorsWriter.write(file, tensors, Map.of(), storeAs);
        Map<String, INDArray> back = new LinkedHashMap<>();
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            for (String name : r.names()) {
                back.put(name, r.read(name));
            }
        }
        return back;
    }

    @Test
    void float32IsExact() {
        Map<String, INDArray> original = variedShapes();
        Map<String, INDArray> back = roundTrip(original, DataType.FLOAT);
        assertEquals(original.keySet(), back.keySet());
        for (String name : original.keySet()) {
            INDArray expected = original.get(name);
            INDArray actual = back.get(name);
            assertArrayEquals(expected.shape(), actual.shape(), name);
            assertEquals(DataType.FLOAT, actual.dataType());
            assertEquals(expected, actual, name);
        }
        assertEquals(0, back.get("scalar").rank());
        assertEquals(-1.25f, back.get("scalar").getFloat(0));
        assertTrue(back.get("empty").isEmpty());
    }

    @Test
    void float16IsWithinHalfPrecisionAndExactWhenRepresentable() {
        Map<String, INDArray> original = variedShapes();
        original.put("representable", Nd4j.createFromArray(0.5f, -2f, 1024f, 65504f, 0x1p-24f, -0.0f, 3.140625f));
        Map<String, INDArray> back = roundTrip(original, DataType.FLOAT16);
        for (String name : original.keySet()) {
            assertArrayEquals(original.get(name).shape(), back.get(name).shape(), name);
            assertEquals(DataType.FLOAT, back.get(name).dataType());
            assertWithinRelative(original.get(name), back.get(name), 0x1p-11f, 0x1p-25f);
        }
        assertEquals(original.get("representable"), back.get("representable"));
        assertEquals(-1.25f, back.get("scalar").getFloat(0));
    }

    @Test
    void bfloat16IsWithinItsPrecisionAndExactWhenRepresentable() {
        Map<String, INDArray> original = variedShapes();
        original.put("representable", Nd4j.createFromArray(1f, -3.5f, 0x1p100f, 0x1p-100f, 0.15625f));
        Map<String, INDArray> back = roundTrip(original, DataType.BFLOAT16);
        for (String name : original.keySet()) {
            assertArrayEquals(original.get(name).shape(), back.get(name).shape(), name);
            assertWithinRelative(original.get(name), back.get(name), 0x1p-8f, 0f);
        }
        assertEquals(original.get("representable"), back.get("representable"));
    }

    private static void assertWithinRelative(INDArray expected, INDArray actual, float relative, float absolute) {
        float[] e = expected.isEmpty() ? new float[0] : expected.dup().reshape(expected.length()).toFloatVector();
        float[] a = actual.isEmpty() ? new float[0] : actual.dup().reshape(actual.length()).toFloatVector();
        assertEquals(e.length, a.length);
        for (int i = 0; i < e.length; i++) {
            assertTrue(Math.abs(e[i] - a[i]) <= Math.abs(e[i]) * relative + absolute, e[i] + " came back as " + a[i]);
        }
    }

    @Test
    void storedDtypeAndRawBitsMatchTheRequestedPrecision() {
        Path file = dir.resolve("half.safetensors");
        INDArray x = Nd4j.createFromArray(1f, -2.5f, 0.1f);
        SafetensorsWriter.write(file, Map.of("x", x), Map.of(), DataType.FLOAT16);
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(SafetensorsDType.F16, r.dtype("x"));
            INDArray raw = r.readRaw("x");
            assertEquals(DataType.FLOAT16, raw.dataType());
            assertEquals(x.castTo(DataType.FLOAT16), raw); // ND4J's own cast agrees with our rounding
        }
    }

    @Test
    void nonContiguousAndNonFloatSourcesAreWrittenByValue() {
        INDArray base = Nd4j.linspace(1, 12, 12, DataType.FLOAT).reshape(3, 4);
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("transposed", base.transpose());                                    // a strided view
        t.put("rows", base.get(NDArrayIndex.interval(1, 3), NDArrayIndex.all())); // a view with an offset
        t.put("fortran", base.dup('f'));
        t.put("double", Nd4j.createFromArray(0.1, 2.0));
        Map<String, INDArray> back = roundTrip(t, DataType.FLOAT);
        assertEquals(base.transpose().dup('c'), back.get("transposed"));
        assertEquals(Nd4j.createFromArray(new float[][] {{5, 6, 7, 8}, {9, 10, 11, 12}}), back.get("rows"));
        assertEquals(base, back.get("fortran"));
        assertEquals(Nd4j.createFromArray(0.1f, 2.0f), back.get("double"));
    }

    @Test
    void integerAndBoolTensorsKeepTheirTypeAndAreOnlyReadRaw() {
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("ids", Nd4j.createFromArray(Long.MAX_VALUE, -3L));
        t.put("counts", Nd4j.createFromArray(new int[][] {{1, 2}, {3, -4}}));
        t.put("bytes", Nd4j.createFromArray(0, 200, 255).castTo(DataType.UINT8));
        t.put("mask", Nd4j.createFromArray(true, false, true));
        Path file = dir.resolve("ints.safetensors");
        SafetensorsWriter.write(file, t, Map.of(), DataType.BFLOAT16);
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(SafetensorsDType.I64, r.dtype("ids"));
            assertEquals(SafetensorsDType.I32, r.dtype("counts"));
            assertEquals(SafetensorsDType.U8, r.dtype("bytes"));
            assertEquals(SafetensorsDType.BOOL, r.dtype("mask"));
            for (String name : t.keySet()) {
                assertEquals(t.get(name), r.readRaw(name), name);
            }
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.read("ids"));
            assertTrue(e.getMessage().contains("ids") && e.getMessage().contains("readRaw"), e.getMessage());
            assertTrue(e.getMessage().contains("ints.safetensors"), e.getMessage());
        }
    }

    @Test
    void metadataRoundTripsAndIsEmptyWhenAbsent() {
        Path with = dir.resolve("with.safetensors");
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("note", "ünïcode \"quoted\"");
        SafetensorsWriter.write(with, Map.of("x", Nd4j.scalar(1f)), meta, DataType.FLOAT);
        try (SafetensorsReader r = SafetensorsReader.open(with)) {
            assertEquals(meta, r.metadata());
        }
        Path without = dir.resolve("without.safetensors");
        SafetensorsWriter.write(without, Map.of("x", Nd4j.scalar(1f)), Map.of(), DataType.FLOAT);
        try (SafetensorsReader r = SafetensorsReader.open(without)) {
            assertEquals(Map.of(), r.metadata());
        }
    }

    @Test
    void layoutIsPaddedContiguousAndSortedLikeTheReference() throws Exception {
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("zeta", Nd4j.createFromArray(1f, 2f, 3f));
        t.put("alpha", Nd4j.createFromArray(4f));
        t.put("mask", Nd4j.createFromArray(true));
        t.put("ids", Nd4j.createFromArray(9L));
        Path file = dir.resolve("layout.safetensors");
        SafetensorsWriter.write(file, t, Map.of(), DataType.FLOAT);
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, headerLength % 8, "header padded to 8 bytes");
        assertEquals(' ', bytes[(int) (8 + headerLength - 1)]);
        assertEquals(8 + headerLength + 8 + 4 + 12 + 1, bytes.length); // no gaps, nothing after the data
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(List.of("ids", "alpha", "zeta", "mask"), r.names()); // wide dtypes first, then by name
        }
    }

    @Test
    void tensorsLargerThanOneCopyWindowAreCopiedCompletely() {
        int saved = NativeMemory.windowBytes;
        NativeMemory.windowBytes = 64; // forces many windows, with a partial last one
        try {
            Nd4j.getRandom().setSeed(3);
            INDArray big = Nd4j.randn(DataType.FLOAT, 37, 11);
            INDArray ids = Nd4j.arange(101).castTo(DataType.INT64);
            for (DataType storeAs : new DataType[] {DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16}) {
                Path file = dir.resolve("big-" + storeAs + ".safetensors");
                SafetensorsWriter.write(file, Map.of("big", big, "ids", ids), Map.of(), storeAs);
                try (SafetensorsReader r = SafetensorsReader.open(file)) {
                    assertWithinRelative(big, r.read("big"), storeAs == DataType.FLOAT ? 0f : 0x1p-8f, 0x1p-24f);
                    assertEquals(ids, r.readRaw("ids"));
                }
            }
        } finally {
            NativeMemory.windowBytes = saved;
        }
    }

    @Test
    void rejectsUnsupportedStorageTypes() {
        Path file = dir.resolve("x.safetensors");
        assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, Map.of("x", Nd4j.scalar(1f)), Map.of(), DataType.INT32));
        assertTrue(Files.notExists(file));
    }
}
