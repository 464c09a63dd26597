package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;

/**
 * Files on any Hadoop file system ({@code file://}, {@code hdfs://}, {@code s3a://}; a bare path means
 * the local file system), written so that a reader or a crash never sees half a file: content goes to a
 * hidden temporary sibling ({@code .NAME.tmp-UUID}, ignored by Hadoop input formats because of the dot)
 * and is renamed over the target. Directories are written the same way and renamed whole.
 */
public final class HadoopFiles {
    public static final String SUCCESS = "_SUCCESS";

    private HadoopFiles() {}

    /** Produces a file's content. */
    @FunctionalInterface
    public interface Body {
        void writeTo(OutputStream out) throws IOException;
    }

    /** Fills a freshly created directory. */
    @FunctionalInterface
    public interface DirectoryBody {
        void writeInto(Path dir, FileSystem fs) throws IOException;
    }

    /** Whether {@code s} is a URI with a scheme ({@code hdfs://nn/x}, {@code file:/x}) rather than a local path. */
    public static boolean isUri(String s) {
        return s.matches("^[A-Za-z][A-Za-z0-9+.-]*:/.*");
    }

    /** A bare local path becomes a {@code file://} URI; anything with a scheme is kept as given. */
    public static Path path(String uri) {
        if (isUri(uri)) return new Path(uri);
        return new Path(java.nio.file.Path.of(uri).toAbsolutePath().normalize().toUri());
    }

    public static String resolve(String base, String child) {
        return new Path(path(base), child).toString();
    }

    public static FileSystem fs(Path p, Configuration conf) {
        try {
            return p.getFileSystem(conf);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the file system of " + p + ": " + e.getMessage(), e);
        }
    }

    /**
     * The local file behind {@code p} when {@code fs} is a local disk (Hadoop's checksummed or raw local file system),
     * for the operations Hadoop's local file system does not make atomic; empty on any other file system.
     */
    public static java.util.Optional<java.nio.file.Path> localFile(FileSystem fs, Path p) {
        if (fs instanceof org.apache.hadoop.fs.LocalFileSystem local) return java.util.Optional.of(local.pathToFile(p).toPath());
        if (fs instanceof org.apache.hadoop.fs.RawLocalFileSystem raw) return java.util.Optional.of(raw.pathToFile(p).toPath());
        return java.util.Optional.empty();
    }

    public static boolean exists(Configuration conf, String uri) throws IOException {
        Path p = path(uri);
        return fs(p, conf).exists(p);
    }

    public static InputStream open(Configuration conf, String uri) throws IOException {
        Path p = path(uri);
        return fs(p, conf).open(p);
    }

    public static byte[] readBytes(Configuration conf, String uri) throws IOException {
        try (InputStream in = open(conf, uri)) {
            return in.readAllBytes();
        }
    }

    public static String readString(Configuration conf, String uri) throws IOException {
        return new String(readBytes(conf, uri), StandardCharsets.UTF_8);
    }

    /**
     * Writes {@code uri} atomically (temporary sibling, then rename over any old file). A failure of the storage
     * (a full disk, a lost DataNode) is a {@link StorageWriteException} naming {@code uri}; an exception of
     * {@code body} itself passes unchanged. Either way the temporary is removed and an old file stays as it was.
     */
    public static void write(Configuration conf, String uri, Body body) throws IOException {
        String target = path(uri).toString();
        replaceAtomically(conf, uri, false, (tmp, fs) -> {
            FSDataOutputStream created;
            try {
                fs.mkdirs(tmp.getParent());
                created = fs.create(tmp, false);
            } catch (IOException e) {
                throw StorageWriteException.of(target, e);
            }
            try (TargetNamingOutputStream out = new TargetNamingOutputStream(created, target)) {
                body.writeTo(out);
                out.hsync();
            }
        });
    }

    public static void writeString(Configuration conf, String uri, String content) throws IOException {
        write(conf, uri, out -> out.write(content.getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * Writes a whole directory atomically: {@code body} fills a hidden temporary sibling, which then
     * replaces {@code uri} (an old directory of that name is removed first).
     */
    public static void writeDirectory(Configuration conf, String uri, DirectoryBody body) throws IOException {
        replaceAtomically(conf, uri, true, (tmp, fs) -> {
            try {
                fs.mkdirs(tmp);
            } catch (IOException e) {
                throw StorageWriteException.of(tmp.toString(), e);
            }
            body.writeInto(tmp, fs);
        });
    }

    /**
     * {@code fill} writes a hidden temporary sibling of {@code uri}, which is then renamed over it; on failure it is
     * deleted. A {@link StorageWriteException} from inside a temporary directory is renamed to name the file's
     * final place.
     */
    private static void replaceAtomically(Configuration conf, String uri, boolean directory, DirectoryBody fill) throws IOException {
        Path target = path(uri);
        FileSystem fs = fs(target, conf);
        // a single file on a local disk is written without Hadoop's checksum side file: the side file would be a second
        // rename, and a reader between the two would check one version's data against the other's checksum
        FileSystem fillFs = !directory && fs instanceof org.apache.hadoop.fs.LocalFileSystem local ? local.getRawFileSystem() : fs;
        Path tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
        boolean done = false;
        try {
            try {
                fill.writeInto(tmp, fillFs);
            } catch (StorageWriteException e) {
                throw e.movedTo(tmp.toString(), target.toString());
            }
            io.sparklora.util.FaultPoints.reach("write.before-rename", target.getName());
            try {
                if (directory || !replaceFileAtomically(conf, fs, tmp, target)) {
                    if (fs.exists(target) && !fs.delete(target, directory)) throw new IOException("cannot delete the old " + target);
                    io.sparklora.util.FaultPoints.reach("write.after-delete", target.getName());
                    if (!fs.rename(tmp, target)) throw new IOException("cannot rename " + tmp + " to " + target);
                }
            } catch (IOException e) {
                throw StorageWriteException.of(target.toString(), e);
            }
            done = true;
        } finally {
            if (!done) deleteQuietly(fs, tmp);
        }
    }

    /**
     * Renames the file {@code tmp} over {@code target} in one step where the file system can: a reader sees the old
     * file or the new one, and a kill leaves one of them, never neither. On a local disk that is rename(2) (a checksum
     * side file an older version left is removed first); on HDFS it is the NameNode's rename with {@code OVERWRITE}. Returns false
     * where no such rename exists (object stores): the caller deletes, then renames.
     */
    private static boolean replaceFileAtomically(Configuration conf, FileSystem fs, Path tmp, Path target) throws IOException {
        java.util.Optional<java.nio.file.Path> t = localFile(fs, target);
        if (t.isPresent()) {
            // the new file has no checksum side file (see replaceAtomically); an old one's goes first, so that the
            // old data is read unchecked for a moment rather than the new data against the old checksum
            if (fs instanceof org.apache.hadoop.fs.LocalFileSystem local) {
                java.nio.file.Files.deleteIfExists(local.pathToFile(local.getChecksumFile(target)).toPath());
            }
            java.nio.file.Files.move(localFile(fs, tmp).orElseThrow(), t.get(),
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            return true;
        }
        if ("hdfs".equals(fs.getScheme())) {
            org.apache.hadoop.fs.FileContext.getFileContext(fs.getUri(), conf).rename(tmp, target, org.apache.hadoop.fs.Options.Rename.OVERWRITE);
            return true;
        }
        return false;
    }

    /**
     * Writes a local directory that does not exist yet (for writers that only speak java.nio and create
     * their directory themselves, such as the safetensors and PEFT writers).
     */
    @FunctionalInterface
    public interface LocalDirectoryBody {
        void writeInto(java.nio.file.Path newLocalDir) throws IOException;
    }

    /**
     * Writes a directory atomically on any file system from a local staging directory that {@code body}
     * creates and fills; the staging directory is removed afterwards.
     */
    public static void writeDirectoryFromLocal(Configuration conf, String uri, LocalDirectoryBody body) throws IOException {
        java.nio.file.Path parent = java.nio.file.Files.createTempDirectory("spark-lora-stage-");
        java.nio.file.Path staging = parent.resolve("out");
        try {
            body.writeInto(staging);
            writeDirectory(conf, uri, (dir, fs) -> {
                try (var files = java.nio.file.Files.list(staging)) {
                    for (java.nio.file.Path f : files.sorted().toList()) {
                        Path to = new Path(dir, f.getFileName().toString());
                        try {
                            fs.copyFromLocalFile(false, true, new Path(f.toUri()), to);
                        } catch (IOException e) {
                            throw StorageWriteException.of(to.toString(), e);
                        }
                    }
                }
            });
        } finally {
            deleteLocalTree(parent);
        }
    }

    /** Copies the plain files of a directory on any file system into a fresh local temporary directory. */
    public static java.nio.file.Path copyToLocal(Configuration conf, String dirUri) throws IOException {
        java.nio.file.Path local = java.nio.file.Files.createTempDirectory("spark-lora-copy-");
        Path dir = path(dirUri);
        FileSystem fs = fs(dir, conf);
        for (String f : listFiles(conf, dirUri)) {
            Path src = new Path(f);
            fs.copyToLocalFile(false, src, new Path(local.resolve(src.getName()).toUri()), true);
        }
        return local;
    }

    public static void deleteLocalTree(java.nio.file.Path p) {
        if (!java.nio.file.Files.exists(p)) return;
        try (var s = java.nio.file.Files.walk(p)) {
            for (java.nio.file.Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) java.nio.file.Files.deleteIfExists(q);
        } catch (IOException ignored) {
            // temporary files: best effort
        }
    }

    /** Marks a stage output complete (an empty {@code _SUCCESS} file, as Hadoop's committers do). */
    public static void markSuccess(Configuration conf, String dirUri) throws IOException {
        writeString(conf, resolve(dirUri, SUCCESS), "");
    }

    public static boolean isComplete(Configuration conf, String dirUri) throws IOException {
        return exists(conf, resolve(dirUri, SUCCESS));
    }

    /** Plain files directly under {@code dirUri} (hidden and temporary ones skipped), sorted by name. */
    public static List<String> listFiles(Configuration conf, String dirUri) throws IOException {
        Path dir = path(dirUri);
        FileSystem fs = fs(dir, conf);
        if (!fs.exists(dir)) return List.of();
        FileStatus[] st = fs.listStatus(dir);
        Arrays.sort(st, (x, y) -> x.getPath().getName().compareTo(y.getPath().getName()));
        List<String> out = new ArrayList<>();
        for (FileStatus s : st) {
            String n = s.getPath().getName();
            if (s.isFile() && !n.startsWith(".") && !n.startsWith("_")) out.add(s.getPath().toString());
        }
        return out;
    }

    public static void delete(Configuration conf, String uri) throws IOException {
        Path p = path(uri);
        FileSystem fs = fs(p, conf);
        if (fs.exists(p)) fs.delete(p, true);
    }

    private static void deleteQuietly(FileSystem fs, Path p) {
        try {
            fs.delete(p, true);
        } catch (IOException ignored) {
            // best effort: the original failure is the one worth reporting
        }
    }
}
