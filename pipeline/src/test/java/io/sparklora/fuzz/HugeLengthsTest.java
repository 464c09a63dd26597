package io.sparklora.fuzz;

import io.sparklora.checkpoint.CheckpointException;
import io.sparklora.checkpoint.SafetensorsReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A safetensors file that declares a header far larger than itself is refused before anything of that size is
 * allocated: the declared length is checked against the format's limit and the file's size first. Measured with the
 * JVM's per-thread allocation counter, so a reader that allocated first and failed later would fail this test.
 */
class HugeLengthsTest {
    @TempDir
    Path dir;

    private Path fileDeclaring(long headerLength) throws Exception {
        Path f = dir.resolve("huge.safetensors");
        Files.write(f, ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN).putLong(headerLength).put("{}".getBytes()).array());
        return f;
    }

    /** Bytes the current thread allocated on the heap while {@code open} ran (and failed). */
    private static long allocatedWhileOpening(Path f) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();
        SafetensorsReader.class.getName(); // class loading is not what is measured
        long before = mx.getThreadAllocatedBytes(tid);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsReader.open(f).close());
        long after = mx.getThreadAllocatedBytes(tid);
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        return after - before;
    }

    @Test
    void aHeaderLengthWithinTheFormatLimitButBeyondTheFileIsNotAllocated() throws Exception {
        Path f = fileDeclaring(99_000_000L);           // just under the 100 MB limit, in a 64-byte file
        allocatedWhileOpening(f);                        // warm up: exception classes, the message's formatting
        long allocated = allocatedWhileOpening(f);
        assertTrue(allocated < 4_000_000L, "refusing a 99 MB header of a 64-byte file allocated " + allocated + " bytes");
    }

    @Test
    void headerLengthsBeyondTheLimitAndBeyondTwoToThe63AreRefused() throws Exception {
        allocatedWhileOpening(fileDeclaring(100_000_001L)); // warm up, as above
        for (long declared : new long[] {100_000_001L, Integer.MAX_VALUE + 1L, Long.MAX_VALUE, -1L /* 2^64 - 1 */}) {
            Path f = fileDeclaring(declared);
            long allocated = allocatedWhileOpening(f);
            assertTrue(allocated < 4_000_000L, "refusing header length " + Long.toUnsignedString(declared) + " allocated " + allocated);
        }
    }
}
