package io.sparklora.util;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicFilesTest {

    @TempDir
    Path dir;

    private Set<String> listing(Path directory) throws IOException {
        try (Stream<Path> s = Files.list(directory)) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new));
        }
    }

    @Test
    void writesBytesStringsAndStreamsLeavingNoTemporaries() throws Exception {
        AtomicFiles.writeBytes(dir.resolve("a.bin"), new byte[] {1, 2, 3});
        AtomicFiles.writeString(dir.resolve("b.txt"), "héllo");
        AtomicFiles.writeStream(dir.resolve("c.txt"), out -> out.write("streamed".getBytes(StandardCharsets.UTF_8)));
        AtomicFiles.writeChannel(dir.resolve("d.bin"), ch -> ch.write(ByteBuffer.wrap(new byte[] {9})));
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(dir.resolve("a.bin")));
        assertEquals("héllo", Files.readString(dir.resolve("b.txt")));
        assertEquals("streamed", Files.readString(dir.resolve("c.txt")));
        assertArrayEquals(new byte[] {9}, Files.readAllBytes(dir.resolve("d.bin")));
        assertEquals(Set.of("a.bin", "b.txt", "c.txt", "d.bin"), listing(dir));
    }

    @Test
    void replacesAnExistingFileAndCreatesParents() throws Exception {
        Path target = dir.resolve("sub/deeper/f.txt");
        AtomicFiles.writeString(target, "old");
        AtomicFiles.writeString(target, "new");
        assertEquals("new", Files.readString(target));
        assertEquals(Set.of("f.txt"), listing(target.getParent()));
    }

    @Test
    void failureMidWriteLeavesNeitherTargetNorTemporary() throws Exception {
        Path target = dir.resolve("out.bin");
        IOException boom = new IOException("disk on fire");
        IOException thrown = assertThrows(IOException.class, () -> AtomicFiles.writeStream(target, out -> {
            out.write(new byte[100_000]); // well past the stream buffer, so bytes really reached the temporary
            throw boom;
        }));
        assertSame(boom, thrown);
        assertFalse(Files.exists(target));
        assertEquals(Set.of(), listing(dir));
    }

    @Test
    void failureMidWriteKeepsThePreviousContent() throws Exception {
        Path target = dir.resolve("keep.txt");
        AtomicFiles.writeString(target, "previous");
        assertThrows(IllegalStateException.class, () -> AtomicFiles.writeChannel(target, ch -> {
            ch.write(ByteBuffer.wrap("partial".getBytes(StandardCharsets.UTF_8)));
            throw new IllegalStateException("unchecked failures clean up too");
        }));
        assertEquals("previous", Files.readString(target));
        assertEquals(Set.of("keep.txt"), listing(dir));
    }

    @Test
    void refusesToReplaceADirectoryWithAFile() throws Exception {
        Path target = Files.createDirectory(dir.resolve("taken"));
        assertThrows(IOException.class, () -> AtomicFiles.writeString(target, "x"));
        assertTrue(Files.isDirectory(target));
        assertEquals(Set.of("taken"), listing(dir));
    }

    @Test
    void newFilesGetOrdinaryPermissionsNotTempFilePermissions() throws Exception {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"));
        Path reference = Files.createFile(dir.resolve("reference"));
        Path written = dir.resolve("written");
        AtomicFiles.writeString(written, "x");
        assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(written));
    }

    @Test
    void writesADirectory() throws Exception {
        Path target = dir.resolve("checkpoint");
        AtomicFiles.writeDirectory(target, tmp -> {
            assertTrue(tmp.getFileName().toString().startsWith("checkpoint.tmp-"), tmp.toString());
            Files.writeString(tmp.resolve("a.txt"), "A");
            Files.createDirectories(tmp.resolve("nested"));
            Files.writeString(tmp.resolve("nested/b.txt"), "B");
        });
        assertEquals("A", Files.readString(target.resolve("a.txt")));
        assertEquals("B", Files.readString(target.resolve("nested/b.txt")));
        assertEquals(Set.of("checkpoint"), listing(dir));
    }

    @Test
    void replacesAnExistingDirectoryWholesale() throws Exception {
        Path target = dir.resolve("checkpoint");
        AtomicFiles.writeDirectory(target, tmp -> {
            Files.writeString(tmp.resolve("old-only.txt"), "old");
            Files.writeString(tmp.resolve("shared.txt"), "old");
        });
        AtomicFiles.writeDirectory(target, tmp -> Files.writeString(tmp.resolve("shared.txt"), "new"));
        assertEquals(Set.of("shared.txt"), listing(target));
        assertEquals("new", Files.readString(target.resolve("shared.txt")));
        assertEquals(Set.of("checkpoint"), listing(dir)); // no .tmp- or .old- debris
    }

    @Test
    void failedDirectoryWriteKeepsTheOldDirectoryAndLeavesNoDebris() throws Exception {
        Path target = dir.resolve("checkpoint");
        AtomicFiles.writeDirectory(target, tmp -> Files.writeString(tmp.resolve("w.txt"), "good"));
        assertThrows(IOException.class, () -> AtomicFiles.writeDirectory(target, tmp -> {
            Files.writeString(tmp.resolve("w.txt"), "half");
            throw new IOException("crash while saving");
        }));
        assertEquals("good", Files.readString(target.resolve("w.txt")));
        assertEquals(Set.of("checkpoint"), listing(dir));

        Path fresh = dir.resolve("never");
        assertThrows(IOException.class, () -> AtomicFiles.writeDirectory(fresh, tmp -> {
            throw new IOException("crash before anything");
        }));
        assertEquals(Set.of("checkpoint"), listing(dir));
    }

    @Test
    void deleteRecursivelyRemovesTreesAndIgnoresMissingPaths() throws Exception {
        Path tree = Files.createDirectories(dir.resolve("t/u/v"));
        Files.writeString(tree.resolve("f"), "x");
        AtomicFiles.deleteRecursively(dir.resolve("t"));
        AtomicFiles.deleteRecursively(dir.resolve("absent"));
        assertEquals(List.of(), List.copyOf(listing(dir)));
    }
}
