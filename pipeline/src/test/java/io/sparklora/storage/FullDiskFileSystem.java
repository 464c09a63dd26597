package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * A local file system whose disk fills up on cue, for tests of what a stage does when a write fails. Paths are
 * {@code fullfs://DISK/absolute/local/path}; each DISK (a name, one per test) is a {@link Disk} that can be told
 * to fill up while a file whose path matches a pattern is being written. From then on every write and every
 * file creation on that disk fails with {@code IOException("No space left on device")}, as on a real full disk,
 * until {@link Disk#makeRoom()} (the operator freed space). Deleting and renaming still work.
 *
 * <p>Every file a Hadoop writer creates goes through {@code createOutputStream} (plain, non-recursive and
 * with-permission creates alike), so HadoopFiles' writes, the tokenize tasks' shards and copies from a local
 * staging directory are all covered. Disks live in this JVM: Spark in local mode only.
 */
public class FullDiskFileSystem extends RawLocalFileSystem {
    public static final String SCHEME = "fullfs";
    private static final URI NO_DISK = URI.create(SCHEME + ":///");
    private static final Map<String, Disk> DISKS = new ConcurrentHashMap<>();

    private URI uri;

    /** Makes {@code fullfs://} known to {@code conf} (Spark: its {@code hadoopConfiguration()}). */
    public static void register(Configuration conf) {
        conf.set("fs." + SCHEME + ".impl", FullDiskFileSystem.class.getName());
        conf.setBoolean("fs." + SCHEME + ".impl.disable.cache", true);
    }

    /** A fresh, empty-enough disk. */
    public static Disk newDisk() {
        Disk d = new Disk("disk-" + UUID.randomUUID().toString().substring(0, 8));
        DISKS.put(d.name, d);
        return d;
    }

    @Override
    public String getScheme() {
        return SCHEME;
    }

    @Override
    public URI getUri() {
        return uri == null ? NO_DISK : uri; // the super constructor asks before initialize
    }

    @Override
    public void initialize(URI name, Configuration conf) throws IOException {
        uri = URI.create(SCHEME + "://" + (name.getAuthority() == null ? "" : name.getAuthority()) + "/");
        super.initialize(name, conf);
    }

    private Disk disk() throws IOException {
        Disk d = uri == null || uri.getAuthority() == null ? null : DISKS.get(uri.getAuthority());
        if (d == null) throw new IOException("no disk " + getUri() + " (FullDiskFileSystem.newDisk() makes one)");
        return d;
    }

    @Override
    protected OutputStream createOutputStream(Path f, boolean append) throws IOException {
        Disk d = disk();
        String p = f.toUri().getPath();
        long room = d.beforeCreate(p);
        return new FillingStream(d, p, super.createOutputStream(f, append), room);
    }

    @Override
    protected OutputStream createOutputStreamWithMode(Path f, boolean append, FsPermission permission) throws IOException {
        Disk d = disk();
        String p = f.toUri().getPath();
        long room = d.beforeCreate(p);
        return new FillingStream(d, p, super.createOutputStreamWithMode(f, append, permission), room);
    }

    /** One simulated disk: where it fills up, and what it refused. */
    public static final class Disk {
        private final String name;
        private Pattern fillsWhile;
        private long afterBytes;
        private int occurrence;
        private int matched;
        private boolean full;
        private final List<String> refused = new ArrayList<>();

        private Disk(String name) {
            this.name = name;
        }

        /** {@code fullfs://DISK/<local absolute path>}. */
        public String uri(java.nio.file.Path local) {
            return SCHEME + "://" + name + local.toAbsolutePath().normalize();
        }

        /**
         * The disk fills up when the {@code occurrence}-th file (1 = the first) created with a path matching
         * {@code pathRegex} (searched for in the path, temporary names included) has received {@code afterBytes}
         * bytes; with 0 bytes, its creation already fails.
         */
        public synchronized void fillWhileWriting(String pathRegex, long afterBytes, int occurrence) {
            this.fillsWhile = Pattern.compile(pathRegex);
            this.afterBytes = afterBytes;
            this.occurrence = occurrence;
            this.matched = 0;
        }

        /** The fault is fixed: space was freed, and nothing will fill the disk again. */
        public synchronized void makeRoom() {
            full = false;
            fillsWhile = null;
        }

        public synchronized boolean isFull() {
            return full;
        }

        /** The paths of the writes this disk refused, in order. */
        public synchronized List<String> refused() {
            return List.copyOf(refused);
        }

        /** The byte budget of a new file: unlimited, or what it may receive before the disk is full. */
        synchronized long beforeCreate(String path) throws IOException {
            if (full) throw refuse(path);
            if (fillsWhile != null && fillsWhile.matcher(path).find() && ++matched == occurrence) {
                if (afterBytes == 0) {
                    full = true;
                    throw refuse(path);
                }
                return afterBytes;
            }
            return Long.MAX_VALUE;
        }

        synchronized IOException refuse(String path) {
            full = true;
            refused.add(path);
            return new IOException("No space left on device");
        }
    }

    /** A file on a Disk: writes what fits, then fails as a full disk does. */
    private static final class FillingStream extends ForwardingSyncableStream {
        private final Disk disk;
        private final String path;
        private long room;

        FillingStream(Disk disk, String path, OutputStream out, long room) {
            super(out);
            this.disk = disk;
            this.path = path;
            this.room = room;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            synchronized (disk) {
                if (disk.full) throw disk.refuse(path);
                if (len > room) {
                    out.write(b, off, (int) room);
                    room = 0;
                    throw disk.refuse(path);
                }
                if (room != Long.MAX_VALUE) room -= len;
            }
            out.write(b, off, len);
        }
    }
}
