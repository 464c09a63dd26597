package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Replacing a file on a local disk is one rename: a reader that reads it while it is replaced again and again always
 * finds it, whole.
 */
class HadoopFilesReplaceTest {
    @Test
    void aReaderNeverFindsTheFileMissingOrTornWhileItIsReplaced(@TempDir Path tmp) throws Exception {
        Configuration conf = new Configuration();
        String uri = tmp.resolve("LATEST").toString();
        HadoopFiles.writeString(conf, uri, version(0));
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<String> seen = new ArrayList<>();
        Thread reader = new Thread(() -> {
            try {
                while (!stop.get()) {
                    String s = HadoopFiles.readString(conf, uri);
                    if (!s.matches("version-\\d+(\\|x{4000})")) throw new AssertionError("torn content of " + s.length() + " chars");
                    synchronized (seen) {
                        seen.add(s.substring(0, s.indexOf('|')));
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        });
        reader.start();
        for (int i = 1; i <= 300 && failure.get() == null; i++) HadoopFiles.writeString(conf, uri, version(i));
        stop.set(true);
        reader.join();
        if (failure.get() != null) fail("the reader failed while the file was replaced: " + failure.get(), failure.get());
        assertEquals(version(300), HadoopFiles.readString(conf, uri));
        synchronized (seen) {
            assertFalse(seen.isEmpty(), "the reader read while the writer replaced");
        }
        try (var names = Files.list(tmp)) {
            List<String> left = names.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(List.of("LATEST"), left, "the file alone: no temporaries, no checksum side file");
        }
    }

    static String version(int i) {
        return "version-" + i + "|" + "x".repeat(4000);
    }
}
