package io.sparklora.checkpoint;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parsed and fully validated header of a safetensors file: 8-byte little-endian length N,
 * N bytes of UTF-8 JSON, then the data buffer. Validation is as strict as the reference
 * implementation (every byte of the buffer belongs to exactly one tensor), so a corrupt or
 * truncated file fails here, with its name in the message, rather than as garbage weights later.
 */
final class SafetensorsHeader {

    static final String METADATA_KEY = "__metadata__";

    /** Same bound as the reference implementation: real headers are kilobytes, this is surely corruption. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Map<String, String> metadata;
    private final List<SafetensorsEntry> entriesByOffset;
    private final long dataStart;

    private SafetensorsHeader(Map<String, String> metadata, List<SafetensorsEntry> entriesByOffset, long dataStart) {
        this.metadata = metadata;
        this.entriesByOffset = entriesByOffset;
        this.dataStart = dataStart;
    }

    /** Free-form string metadata from {@code __metadata__}, in header order (empty if absent). */
    Map<String, String> metadata() {
        return metadata;
    }

    /** Tensors in the order their bytes appear in the file. */
    List<SafetensorsEntry> entries() {
        return entriesByOffset;
    }

    /** File position of the first byte of the data buffer. */
    long dataStart() {
        return dataStart;
    }

    static SafetensorsHeader read(Path file, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        if (fileSize < 8) {
            throw CheckpointException.inFile(file, "not a safetensors file: only " + fileSize
                    + " bytes, shorter than the 8-byte header length");
        }
        ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(channel, lengthBytes, 0);
        long headerLength = lengthBytes.getLong(0); // a u64; above 2^63 it reads negative
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw CheckpointException.inFile(file, "header length " + Long.toUnsignedString(headerLength)
                    + " is absurd (limit " + MAX_HEADER_BYTES + " bytes); not a safetensors file or corrupt");
        }
        if (8 + headerLength > fileSize) {
            throw CheckpointException.inFile(file, "header length " + headerLength + " exceeds the file size "
                    + fileSize + "; file truncated or not safetensors");
        }
        ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
        readFully(channel, headerBytes, 8);
        long dataStart = 8 + headerLength;
        return parse(file, headerBytes.array(), fileSize - dataStart, dataStart);
    }

    static SafetensorsHeader parse(Path file, byte[] headerBytes, long bufferLength, long dataStart) {
        JsonNode root = parseJson(file, headerBytes);
        Map<String, String> metadata = Map.of();
        List<SafetensorsEntry> entries = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> field = it.next();
            if (field.getKey().equals(METADATA_KEY)) {
                metadata = parseMetadata(file, field.getValue());
            } else {
                entries.add(parseEntry(file, field.getKey(), field.getValue(), bufferLength));
            }
        }
        entries.sort(Comparator.comparingLong(SafetensorsEntry::begin).thenComparingLong(SafetensorsEntry::end));
        checkBufferExactlyCovered(file, entries, bufferLength);
        return new SafetensorsHeader(metadata, Collections.unmodifiableList(entries), dataStart);
    }

    private static JsonNode parseJson(Path file, byte[] headerBytes) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(headerBytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw CheckpointException.inFile(file, "header is not valid UTF-8", e);
        }
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (IOException e) {
            throw CheckpointException.inFile(file, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw CheckpointException.inFile(file, "header is not a JSON object");
        }
        return root;
    }

    private static Map<String, String> parseMetadata(Path file, JsonNode node) {
        if (!node.isObject()) {
            throw CheckpointException.inFile(file, METADATA_KEY + " is not a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> field = it.next();
            if (!field.getValue().isTextual()) {
                throw CheckpointException.inFile(file, METADATA_KEY + " value for '" + field.getKey()
                        + "' is not a string (the format allows only string values)");
            }
            metadata.put(field.getKey(), field.getValue().textValue());
        }
        return Collections.unmodifiableMap(metadata);
    }

    private static SafetensorsEntry parseEntry(Path file, String name, JsonNode node, long bufferLength) {
        if (!node.isObject()) {
            throw CheckpointException.inTensor(file, name, "header entry is not a JSON object");
        }
        JsonNode dtypeNode = required(file, name, node, "dtype");
        JsonNode shapeNode = required(file, name, node, "shape");
        JsonNode offsetsNode = required(file, name, node, "data_offsets");

        if (!dtypeNode.isTextual()) {
            throw CheckpointException.inTensor(file, name, "dtype is not a string: " + dtypeNode);
        }
        SafetensorsDType dtype = SafetensorsDType.parse(dtypeNode.textValue()).orElseThrow(() ->
                CheckpointException.inTensor(file, name, "unknown dtype '" + dtypeNode.textValue() + "'"));

        if (!shapeNode.isArray()) {
            throw CheckpointException.inTensor(file, name, "shape is not a JSON array: " + shapeNode);
        }
        long[] shape = new long[shapeNode.size()];
        long elements = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(file, name, shapeNode.get(i), "shape");
            try {
                elements = Math.multiplyExact(elements, shape[i]);
            } catch (ArithmeticException e) {
                throw CheckpointException.inTensor(file, name, "shape " + shapeNode + " overflows 64 bits");
            }
        }

        if (!offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw CheckpointException.inTensor(file, name, "data_offsets must be [begin, end], got " + offsetsNode);
        }
        long begin = nonNegativeLong(file, name, offsetsNode.get(0), "data_offsets");
        long end = nonNegativeLong(file, name, offsetsNode.get(1), "data_offsets");
        if (begin > end) {
            throw CheckpointException.inTensor(file, name, "data_offsets " + offsetsNode + " end before they begin");
        }
        if (end > bufferLength) {
            throw CheckpointException.inTensor(file, name, "data_offsets " + offsetsNode + " reach beyond the "
                    + bufferLength + "-byte data buffer; file truncated?");
        }
        long expectedBytes;
        try {
            expectedBytes = Math.multiplyExact(elements, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw CheckpointException.inTensor(file, name, "shape " + shapeNode + " overflows 64 bits");
        }
        if (end - begin != expectedBytes) {
            throw CheckpointException.inTensor(file, name, "data_offsets " + offsetsNode + " span " + (end - begin)
                    + " bytes but shape " + shapeNode + " of " + dtype + " needs " + expectedBytes);
        }
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static JsonNode required(Path file, String name, JsonNode entry, String field) {
        JsonNode value = entry.get(field);
        if (value == null || value.isNull()) {
            throw CheckpointException.inTensor(file, name, "header entry has no '" + field + "'");
        }
        return value;
    }

    private static long nonNegativeLong(Path file, String name, JsonNode node, String field) {
        if (node == null || !node.isIntegralNumber() || !node.canConvertToLong() || node.longValue() < 0) {
            throw CheckpointException.inTensor(file, name, field + " holds " + node
                    + ", not a non-negative 64-bit integer");
        }
        return node.longValue();
    }

    /** Entries sorted by begin must tile [0, bufferLength) with no overlap, hole or leftover. */
    private static void checkBufferExactlyCovered(Path file, List<SafetensorsEntry> sorted, long bufferLength) {
        long covered = 0;
        SafetensorsEntry previous = null;
        for (SafetensorsEntry e : sorted) {
            if (e.begin() < covered) {
                throw CheckpointException.inTensor(file, e.name(), "bytes [" + e.begin() + ", " + e.end()
                        + ") overlap tensor '" + previous.name() + "' [" + previous.begin() + ", " + previous.end() + ")");
            }
            if (e.begin() > covered) {
                throw CheckpointException.inTensor(file, e.name(), "gap between tensors: bytes [" + covered + ", "
                        + e.begin() + ") before it belong to no tensor");
            }
            covered = e.end();
            previous = e;
        }
        if (covered != bufferLength) {
            throw CheckpointException.inFile(file, "data buffer has " + (bufferLength - covered)
                    + " bytes after the last tensor that belong to no tensor");
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer target, long position) throws IOException {
        while (target.hasRemaining()) {
            int n = channel.read(target, position + target.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }
}
