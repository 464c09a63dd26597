package io.sparklora.data;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Reads lines of strict UTF-8 from a stream, holding at most one line in memory. A line longer than the
 * limit is an error as soon as the limit is passed (a binary file or a file without line breaks cannot
 * exhaust the heap), and so are malformed bytes; both messages name the file and line. Lines end at
 * {@code \n}; a trailing {@code \r} is dropped, and so is a byte-order mark at the start of the file.
 */
final class Utf8LineReader implements Closeable {
    private final InputStream in;
    private final String uri;
    private final long maxLineBytes;
    private final byte[] buf = new byte[1 << 16];
    private int bufPos, bufEnd;
    private byte[] line = new byte[256];
    private int lineLen;
    private long lineNumber;
    private boolean eof;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);

    Utf8LineReader(InputStream in, String uri, long maxLineBytes) {
        if (maxLineBytes < 1 || maxLineBytes > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("maximum line length must be in [1, 2^31 - 17] bytes, got " + maxLineBytes);
        }
        this.in = in;
        this.uri = uri;
        this.maxLineBytes = maxLineBytes;
    }

    /** Number of the line last returned (1-based); 0 before the first. */
    long lineNumber() {
        return lineNumber;
    }

    /** Length in bytes of the line last returned (without its line break). */
    int lineBytes() {
        return lineLen;
    }

    /** The next line without its line break, or null at the end of the file. */
    String readLine() throws IOException {
        if (eof) return null;
        lineLen = 0;
        boolean sawAny = false;
        while (true) {
            if (bufPos == bufEnd) {
                bufEnd = in.read(buf, 0, buf.length);
                bufPos = 0;
                if (bufEnd <= 0) {
                    bufEnd = 0;
                    eof = true;
                    if (!sawAny) return null;
                    break;
                }
            }
            sawAny = true;
            int start = bufPos;
            while (bufPos < bufEnd && buf[bufPos] != '\n') bufPos++;
            append(start, bufPos - start);
            if (bufPos < bufEnd) {
                bufPos++; // the '\n'
                break;
            }
        }
        lineNumber++;
        if (lineLen > 0 && line[lineLen - 1] == '\r') lineLen--;
        int from = 0;
        if (lineNumber == 1 && lineLen >= 3 && (line[0] & 0xFF) == 0xEF && (line[1] & 0xFF) == 0xBB && (line[2] & 0xFF) == 0xBF) {
            from = 3;
        }
        return decode(from);
    }

    private void append(int start, int n) throws IOException {
        if (n == 0) return;
        if ((long) lineLen + n > maxLineBytes) {
            throw new IOException(uri + ":" + (lineNumber + 1) + ": line is longer than the limit of " + maxLineBytes
                    + " bytes (max line bytes); is this a text file?");
        }
        if (lineLen + n > line.length) {
            long grown = Math.max((long) lineLen + n, Math.min(2L * line.length, maxLineBytes + 1));
            byte[] bigger = new byte[(int) grown];
            System.arraycopy(line, 0, bigger, 0, lineLen);
            line = bigger;
        }
        System.arraycopy(buf, start, line, lineLen, n);
        lineLen += n;
    }

    private String decode(int from) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(line, from, lineLen - from);
        CharBuffer chars = CharBuffer.allocate(lineLen - from);
        decoder.reset();
        CoderResult r = decoder.decode(bytes, chars, true);
        if (!r.isError()) r = decoder.flush(chars);
        if (r.isError()) {
            throw new IOException(uri + ":" + lineNumber + ": not valid UTF-8 (byte " + (bytes.position() + 1)
                    + " of the line, 0x" + String.format("%02x", line[bytes.position()] & 0xFF) + ")");
        }
        chars.flip();
        return chars.toString();
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
