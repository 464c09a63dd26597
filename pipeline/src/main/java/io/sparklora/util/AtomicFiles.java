package io.sparklora.util;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * Writes files and directories so that readers (and a crash) see either the old content or the
 * complete new content, never a prefix: content goes to a temporary sibling, is fsynced, and is
 * renamed over the target. The temporary is deleted whenever anything fails. Missing parent
 * directories are created.
 *
 * <p>Temporaries live in the target's own directory because a rename is only atomic within one
 * file system. Their names start with the target's name and contain ".tmp-", so a crash that
 * kills the JVM mid-write leaves only recognisable debris, never a file with the target's name.
 */
public final class AtomicFiles {

    private static final SecureRandom RANDOM = new SecureRandom();

    private AtomicFiles() {
    }

    /** Produces a file's content through its channel; used for large binary output. */
    @FunctionalInterface
    public interface ChannelWriter {
        void writeTo(FileChannel out) throws IOException;
    }

    /** Produces a file's content as a stream; the stream is buffered, and closing it is not required. */
    @FunctionalInterface
    public interface StreamWriter {
        void writeTo(OutputStream out) throws IOException;
    }

    /** Fills a freshly created, empty directory. */
    @FunctionalInterface
    public interface DirectoryWriter {
        void writeInto(Path directory) throws IOException;
    }

    public static void writeBytes(Path target, byte[] content) throws IOException {
        writeChannel(target, out -> {
            ByteBuffer buffer = ByteBuffer.wrap(content);
            while (buffer.hasRemaining()) {
                out.write(buffer);
            }
        });
    }

    /** Writes the text as UTF-8. */
    public static void writeString(Path target, String content) throws IOException {
        writeBytes(target, content.getBytes(StandardCharsets.UTF_8));
    }

    public static void writeStream(Path target, StreamWriter writer) throws IOException {
        writeChannel(target, channel -> {
            // Not closed: closing would close the channel, which writeChannel still has to fsync.
            OutputStream out = new BufferedOutputStream(Channels.newOutputStream(channel), 1 << 16);
            writer.writeTo(out);
            out.flush();
        });
    }

    /**
     * Writes through a channel on a temporary sibling, forces it to disk, then renames it to
     * {@code target}, replacing any existing file. On any failure the temporary is removed and
     * {@code target} is left as it was.
     */
    public static void writeChannel(Path target, ChannelWriter writer) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path parent = absolute.getParent();
        if (Files.isDirectory(absolute, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(target + " is a directory; refusing to replace it with a file");
        }
        Files.createDirectories(parent);
        Path temp = createTempFile(parent, absolute.getFileName().toString());
        try {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                writer.writeTo(channel);
                channel.force(true);
            }
            Files.move(temp, absolute, StandardCopyOption.ATOMIC_MOVE);
        } catch (Throwable failure) {
            deleteAfterFailure(temp, failure);
            throw failure;
        }
        syncDirectory(parent);
    }

    /**
     * Builds a directory under a temporary sibling name ({@code DIR.tmp-<random>}), fsyncs its files,
     * then renames it to {@code target}. An existing {@code target} is first renamed aside and deleted
     * only after the new one is in place, and restored if that rename fails, so {@code target} is never
     * a half-written directory. (POSIX cannot rename over a non-empty directory, so there is a brief
     * moment when {@code target} does not exist at all.)
     */
    public static void writeDirectory(Path target, DirectoryWriter writer) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path parent = absolute.getParent();
        Files.createDirectories(parent);
        String name = absolute.getFileName().toString();
        if (Files.exists(absolute, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(absolute, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(target + " exists and is not a directory; refusing to replace it");
        }
        Path temp = createTempDirectory(parent, name);
        try {
            writer.writeInto(temp);
            syncTree(temp);
            replaceDirectory(temp, absolute, parent, name);
        } catch (Throwable failure) {
            deleteAfterFailure(temp, failure);
            throw failure;
        }
        syncDirectory(parent);
    }

    /** Deletes a file or a directory tree; does nothing if it does not exist. Symbolic links are removed, not followed. */
    public static void deleteRecursively(Path path) throws IOException {
        if (Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)) {
            try (DirectoryStream<Path> children = Files.newDirectoryStream(path)) {
                for (Path child : children) {
                    deleteRecursively(child);
                }
            }
        }
        Files.deleteIfExists(path);
    }

    /** Cleans up a temporary without letting a cleanup error hide the failure that caused it. */
    private static void deleteAfterFailure(Path temp, Throwable failure) {
        try {
            deleteRecursively(temp);
        } catch (IOException | RuntimeException cleanupFailure) {
            failure.addSuppressed(cleanupFailure);
        }
    }

    private static void replaceDirectory(Path fresh, Path target, Path parent, String name) throws IOException {
        if (!Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            Files.move(fresh, target, StandardCopyOption.ATOMIC_MOVE);
            return;
        }
        Path old = parent.resolve(name + ".old-" + randomSuffix());
        Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
        try {
            Files.move(fresh, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            try {
                Files.move(old, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException restoreFailure) {
                e.addSuppressed(new IOException("could not restore the previous " + target
                        + "; it is at " + old, restoreFailure));
            }
            throw e;
        }
        deleteRecursively(old);
    }

    private static Path createTempFile(Path parent, String name) throws IOException {
        while (true) {
            Path temp = parent.resolve("." + name + ".tmp-" + randomSuffix());
            try {
                // Created like a normal file (umask permissions), unlike Files.createTempFile's 0600.
                Files.newByteChannel(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return temp;
            } catch (FileAlreadyExistsException collision) {
                // astronomically unlikely; pick another name
            }
        }
    }

    private static Path createTempDirectory(Path parent, String name) throws IOException {
        while (true) {
            Path temp = parent.resolve(name + ".tmp-" + randomSuffix());
            try {
                return Files.createDirectory(temp);
            } catch (FileAlreadyExistsException collision) {
                // astronomically unlikely; pick another name
            }
        }
    }

    private static String randomSuffix() {
        byte[] bytes = new byte[8];
        RANDOM.nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }

    /** Forces every regular file under dir, and the directories themselves, to disk. */
    private static void syncTree(Path dir) throws IOException {
        try (DirectoryStream<Path> children = Files.newDirectoryStream(dir)) {
            for (Path child : children) {
                if (Files.isDirectory(child, LinkOption.NOFOLLOW_LINKS)) {
                    syncTree(child);
                } else if (Files.isRegularFile(child, LinkOption.NOFOLLOW_LINKS)) {
                    try (FileChannel channel = FileChannel.open(child, StandardOpenOption.READ)) {
                        channel.force(true);
                    }
                }
            }
        }
        syncDirectory(dir);
    }

    /** Makes a rename durable. Opening a directory for fsync works on Linux and macOS, not on Windows: best effort. */
    private static void syncDirectory(Path dir) {
        try (FileChannel channel = FileChannel.open(dir, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // the data itself is already on disk; only the rename's durability is left to the OS
        }
    }
}
