package io.sparklora.checkpoint;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every malformed file is refused when opened, with the file (and tensor) named in the message. */
class SafetensorsValidationTest {

    private static final String FILE = "broken.safetensors";

    @TempDir
    Path dir;

    private Path file(byte[] content) throws Exception {
        Path path = dir.resolve(FILE);
        Files.write(path, content);
        return path;
    }

    /** A well-formed prefix: declared header length, the header, then {@code dataBytes} zero bytes. */
    private Path file(String header, int dataBytes) throws Exception {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        return file(b.array());
    }

    private static String tensor(String name, String dtype, String shape, long begin, long end) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape
                + ",\"data_offsets\":[" + begin + "," + end + "]}";
    }

    private static void assertRefused(Path path, String... mustMention) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsReader.open(path).close());
        assertTrue(e.getMessage().contains(FILE), "names the file: " + e.getMessage());
        for (String word : mustMention) {
            assertTrue(e.getMessage().contains(word), "mentions '" + word + "': " + e.getMessage());
        }
    }

    @Test
    void fileShorterThanTheLengthPrefix() throws Exception {
        assertRefused(file(new byte[] {1, 2, 3}), "shorter than");
        assertRefused(file(new byte[0]), "shorter than");
    }

    @Test
    void headerLengthBeyondTheFile() throws Exception {
        ByteBuffer b = ByteBuffer.allocate(8 + 10).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 500);
        assertRefused(file(b.array()), "exceeds the file size");
    }

    @Test
    void absurdHeaderLength() throws Exception {
        assertRefused(file(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40).array()), "absurd");
        assertRefused(file(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L).array()), "absurd");
    }

    @Test
    void headerNotJsonOrNotAnObject() throws Exception {
        assertRefused(file("{\"a\": {", 0), "not valid JSON");
        assertRefused(file("[1, 2]", 0), "not a JSON object");
        assertRefused(file("{} trailing", 0), "not valid JSON");
        byte[] badUtf8 = {8, 0, 0, 0, 0, 0, 0, 0, '{', '"', (byte) 0xff, (byte) 0xfe, '"', ':', '1', '}'};
        assertRefused(file(badUtf8), "UTF-8");
    }

    @Test
    void duplicateTensorNames() throws Exception {
        assertRefused(file("{" + tensor("w", "U8", "[1]", 0, 1) + "," + tensor("w", "U8", "[1]", 1, 2) + "}", 2), "w");
    }

    @Test
    void entryMissingAField() throws Exception {
        assertRefused(file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "'w'", "dtype");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "'w'", "shape");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "'w'", "data_offsets");
        assertRefused(file("{\"w\":[1,2]}", 0), "'w'", "not a JSON object");
    }

    @Test
    void malformedFieldValues() throws Exception {
        assertRefused(file("{" + tensor("w", "F32", "[-1]", 0, 4) + "}", 4), "'w'", "shape");
        assertRefused(file("{" + tensor("w", "F32", "[1.5]", 0, 4) + "}", 4), "'w'", "shape");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4), "'w'", "data_offsets");
        assertRefused(file("{" + tensor("w", "F32", "[4611686018427387904, 4]", 0, 4) + "}", 4), "'w'", "overflows");
    }

    @Test
    void unknownDtype() throws Exception {
        assertRefused(file("{" + tensor("w", "F128", "[1]", 0, 16) + "}", 16), "'w'", "unknown dtype", "F128");
    }

    @Test
    void offsetsEndBeforeTheyBegin() throws Exception {
        assertRefused(file("{" + tensor("w", "U8", "[4]", 8, 4) + "}", 8), "'w'", "end before");
    }

    @Test
    void tensorBeyondTheDataBuffer() throws Exception {
        // Declares 16 bytes of F32 but the file holds only 10: a truncated download.
        assertRefused(file("{" + tensor("w", "F32", "[4]", 0, 16) + "}", 10), "'w'", "truncated");
    }

    @Test
    void byteSizeDisagreesWithShape() throws Exception {
        assertRefused(file("{" + tensor("w", "F32", "[2,2]", 0, 12) + "}", 12), "'w'", "needs 16");
    }

    @Test
    void overlappingTensors() throws Exception {
        String header = "{" + tensor("a", "F32", "[2]", 0, 8) + "," + tensor("b", "F32", "[2]", 4, 12) + "}";
        assertRefused(file(header, 12), "overlap", "'a'", "'b'");
    }

    @Test
    void gapBetweenTensorsOrUnusedTail() throws Exception {
        String gap = "{" + tensor("a", "F32", "[1]", 0, 4) + "," + tensor("b", "F32", "[1]", 8, 12) + "}";
        assertRefused(file(gap, 12), "gap between tensors", "'b'");
        assertRefused(file("{" + tensor("a", "F32", "[1]", 4, 8) + "}", 8), "gap between tensors", "'a'");
        assertRefused(file("{" + tensor("a", "F32", "[1]", 0, 4) + "}", 9), "after the last tensor");
    }

    @Test
    void metadataMustMapStringsToStrings() throws Exception {
        assertRefused(file("{\"__metadata__\":{\"step\":7}}", 0), "__metadata__", "step");
        assertRefused(file("{\"__metadata__\":[\"x\"]}", 0), "__metadata__");
    }

    @Test
    void unknownTensorAndClosedReader() throws Exception {
        Path path = file("{" + tensor("a", "F32", "[1]", 0, 4) + "}", 4);
        SafetensorsReader reader = SafetensorsReader.open(path);
        CheckpointException missing = assertThrows(CheckpointException.class, () -> reader.read("nope"));
        assertTrue(missing.getMessage().contains("'nope'") && missing.getMessage().contains(FILE), missing.getMessage());
        reader.close();
        CheckpointException closed = assertThrows(CheckpointException.class, () -> reader.read("a"));
        assertTrue(closed.getMessage().contains("'a'") && closed.getMessage().contains(FILE), closed.getMessage());
    }

    @Test
    void zeroSizedTensorsAndAnEmptyFileAreValid() throws Exception {
        String header = "{" + tensor("e1", "F32", "[0]", 0, 0) + "," + tensor("a", "F32", "[1]", 0, 4) + ","
                + tensor("e2", "I64", "[3,0]", 4, 4) + "}";
        try (SafetensorsReader r = SafetensorsReader.open(file(header, 4))) {
            assertTrue(r.read("e1").isEmpty());
            assertTrue(r.readRaw("e2").isEmpty());
        }
        try (SafetensorsReader r = SafetensorsReader.open(file("{}", 0))) {
            assertTrue(r.names().isEmpty());
        }
    }
}
