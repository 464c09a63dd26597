package io.sparklora.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Pins the on-disk format independently of our writer: hand-built bytes and bytes from Python's safetensors. */
class SafetensorsFormatTest {

    @TempDir
    Path dir;

    @Test
    void readsAHandBuiltFile() throws Exception {
        String header = "{\"__metadata__\":{\"format\":\"pt\",\"step\":\"7\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[22,26]},"
                + "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[26,30]},"
                + "\"d\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[30,38]},"
                + "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[38,54]}}";
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate(8 + json.length + 54).order(ByteOrder.LITTLE_ENDIAN);
        file.putLong(json.length).put(json);
        file.putFloat(1f).putFloat(-2f).putFloat(0.5f).putFloat(3.25f);     // w
        file.putShort((short) 0x3c00).putShort((short) 0xc100).putShort((short) 0x0001); // h: 1, -2.5, 2^-24
        file.putShort((short) 0x3f80).putShort((short) 0xc0a0);            // b: 1, -5
        file.putFloat(42f);                                                 // s
        file.putDouble(0.125);                                              // d
        file.putLong(5L).putLong(-1L);                                      // ids
        Path path = dir.resolve("hand.safetensors");
        Files.write(path, file.array());

        try (SafetensorsReader r = SafetensorsReader.open(path)) {
            assertEquals(List.of("w", "h", "b", "s", "d", "ids"), r.names());
            assertEquals(Map.of("format", "pt", "step", "7"), r.metadata());
            assertArrayEquals(new long[] {2, 2}, r.shape("w"));
            assertEquals(SafetensorsDType.BF16, r.dtype("b"));

            INDArray w = r.read("w");
            assertEquals(DataType.FLOAT, w.dataType());
            assertEquals('c', w.ordering());
            assertEquals(Nd4j.createFromArray(new float[][] {{1f, -2f}, {0.5f, 3.25f}}), w);
            assertEquals(Nd4j.createFromArray(1f, -2.5f, 0x1p-24f), r.read("h"));
            assertEquals(Nd4j.createFromArray(1f, -5f), r.read("b"));
            INDArray s = r.read("s");
            assertEquals(0, s.rank());
            assertEquals(42f, s.getFloat(0));
            INDArray d = r.read("d");
            assertArrayEquals(new long[] {1, 1}, d.shape());
            assertEquals(0.125f, d.getFloat(0));
            INDArray ids = r.readRaw("ids");
            assertEquals(DataType.INT64, ids.dataType());
            assertArrayEquals(new long[] {5, -1}, ids.toLongVector());
        }
    }

    /**
     * Written by Python: safetensors.numpy.save_file({"i": int64 [1,-2], "a": float32 arange(6).reshape(2,3)-2.5,
     * "s": float32 3.0 (0-dim), "b": float16 [1.5,-2,0.25], "d": float64 [0.1], "u": uint8 [0,255,7],
     * "t": bool [True,False]}, metadata={"format":"pt","note":"ü"}), safetensors 0.8.0.
     */
    private static final String PYTHON_MIXED = "sAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJub3RlIjoiw7wiLCJmb3JtYXQiOiJwdCJ9LCJpIjp7ImR0eXBlIjoiSTY0Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMCwxNl19LCJkIjp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbMTYsMjRdfSwiYSI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwzXSwiZGF0YV9vZmZzZXRzIjpbMjQsNDhdfSwicyI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbXSwiZGF0YV9vZmZzZXRzIjpbNDgsNTJdfSwiYiI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzUyLDU4XX0sInUiOnsiZHR5cGUiOiJVOCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzU4LDYxXX0sInQiOnsiZHR5cGUiOiJCT09MIiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbNjEsNjNdfX0gICABAAAAAAAAAP7/////////mpmZmZmZuT8AACDAAADAvwAAAL8AAAA/AADAPwAAIEAAAEBAAD4AwAA0AP8HAQA=";

    @Test
    void readsAFileWrittenByPythonSafetensors() throws Exception {
        Path path = dir.resolve("python.safetensors");
        Files.write(path, Base64.getDecoder().decode(PYTHON_MIXED));
        try (SafetensorsReader r = SafetensorsReader.open(path)) {
            assertEquals(Map.of("format", "pt", "note", "ü"), r.metadata());
            assertEquals(List.of("i", "d", "a", "s", "b", "u", "t"), r.names());
            assertEquals(Nd4j.createFromArray(new float[][] {{-2.5f, -1.5f, -0.5f}, {0.5f, 1.5f, 2.5f}}), r.read("a"));
            assertEquals(0, r.read("s").rank());
            assertEquals(3f, r.read("s").getFloat(0));
            assertEquals(Nd4j.createFromArray(1.5f, -2f, 0.25f), r.read("b"));
            assertEquals(0.1f, r.read("d").getFloat(0));
            assertArrayEquals(new long[] {1, -2}, r.readRaw("i").toLongVector());
            INDArray u = r.readRaw("u");
            assertEquals(DataType.UINT8, u.dataType());
            assertArrayEquals(new int[] {0, 255, 7}, u.toIntVector());
            INDArray t = r.readRaw("t");
            assertEquals(DataType.BOOL, t.dataType());
            assertTrue(t.getInt(0) != 0 && t.getInt(1) == 0);
        }
    }

    /**
     * Written by Python: save_file({"a": float32 arange(6).reshape(2,3)-2.5, "s": float32 3.0 (0-dim),
     * "i": int64 [1,-2], "u": uint8 [0,255,7], "t": bool [True,False], "z": float32 zeros((0,3)),
     * "l": int32 [7,-9]}, metadata={"format":"pt"}).
     */
    private static final String PYTHON_SAME = "qAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJwdCJ9LCJpIjp7ImR0eXBlIjoiSTY0Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMCwxNl19LCJhIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDNdLCJkYXRhX29mZnNldHMiOlsxNiw0MF19LCJzIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOls0MCw0NF19LCJ6Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMiOls0NCw0NF19LCJsIjp7ImR0eXBlIjoiSTMyIiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbNDQsNTJdfSwidSI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTIsNTVdfSwidCI6eyJkdHlwZSI6IkJPT0wiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls1NSw1N119fSAgICAgAQAAAAAAAAD+/////////wAAIMAAAMC/AAAAvwAAAD8AAMA/AAAgQAAAQEAHAAAA9////wD/BwEA";

    @Test
    void writesTheSameBytesAsPythonSafetensors() throws Exception {
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        tensors.put("a", Nd4j.createFromArray(new float[][] {{-2.5f, -1.5f, -0.5f}, {0.5f, 1.5f, 2.5f}}));
        tensors.put("s", Nd4j.scalar(3f));
        tensors.put("i", Nd4j.createFromArray(1L, -2L));
        tensors.put("u", Nd4j.createFromArray(0, 255, 7).castTo(DataType.UINT8));
        tensors.put("t", Nd4j.createFromArray(true, false));
        tensors.put("z", Nd4j.create(DataType.FLOAT, 0, 3));
        tensors.put("l", Nd4j.createFromArray(7, -9));
        Path path = dir.resolve("ours.safetensors");
        SafetensorsWriter.write(path, tensors, Map.of("format", "pt"), DataType.FLOAT);
        assertArrayEquals(Base64.getDecoder().decode(PYTHON_SAME), Files.readAllBytes(path));
    }

    /**
     * Written by Python: save_file({"h": np.array([1.5, -2.0, 0.333, 65519.0, 65520.0, 1e-7, 6.0e-8, -3.0e-5,
     * 1e5, 2.0**-25, 0.1], dtype=np.float32).astype(np.float16)}): numpy's float32 → float16 rounding.
     */
    private static final String PYTHON_HALF = "OAAAAAAAAAB7ImgiOnsiZHR5cGUiOiJGMTYiLCJzaGFwZSI6WzExXSwiZGF0YV9vZmZzZXRzIjpbMCwyMl19fQA+AMBUNf97AHwCAAEA94EAfAAAZi4=";

    @Test
    void narrowsToHalfExactlyAsNumpyDoes() throws Exception {
        float[] source = {1.5f, -2.0f, 0.333f, 65519.0f, 65520.0f, 1e-7f, 6.0e-8f, -3.0e-5f, 1e5f, 0x1p-25f, 0.1f};
        Path path = dir.resolve("half.safetensors");
        SafetensorsWriter.write(path, Map.of("h", Nd4j.createFromArray(source)), Map.of(), DataType.FLOAT16);
        assertArrayEquals(Base64.getDecoder().decode(PYTHON_HALF), Files.readAllBytes(path));
    }
}
