package io.sparklora.runner;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * One run at a time on an output directory. A scheduler that retries a job while its first attempt is still running
 * would otherwise have two drivers writing the same checkpoints, adapter and report.
 *
 * <p>The run creates {@code <output>/_RUN_LOCK} atomically, failing when it exists: {@code create(overwrite = false)} on
 * HDFS and object stores, a hard link from a private temporary file on a local disk (where Hadoop's create checks and
 * then creates). It holds who holds it: host, process id, run id and start time. A second run finds
 * the file and refuses with an error that names the holder and the file.
 *
 * <p>A lock left behind by a killed run does not block the next run for ever. The holder touches the file's
 * modification time every {@link #HEARTBEAT_MS} from a daemon thread. A lock is stale, and is taken over with a
 * message that says so, when its holder ran on this host and its process no longer exists, or when its heartbeat is
 * older than the timeout ({@code spark.lora.lock.timeout.seconds} in the Hadoop configuration, default
 * {@value #DEFAULT_TIMEOUT_S} s, four missed heartbeats).
 */
public final class OutputLock implements AutoCloseable {
    public static final String FILE = "_RUN_LOCK";
    public static final long HEARTBEAT_MS = 30_000;
    public static final long DEFAULT_TIMEOUT_S = 120;
    public static final String TIMEOUT_KEY = "spark.lora.lock.timeout.seconds";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final FileSystem fs;
    private final Path file;
    private final String runId;
    private final ScheduledExecutorService heartbeat;

    private OutputLock(FileSystem fs, Path file, String runId) {
        this.fs = fs;
        this.file = file;
        this.runId = runId;
        this.heartbeat = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "spark-lora-lock-heartbeat");
            t.setDaemon(true);
            return t;
        });
        heartbeat.scheduleAtFixedRate(this::touch, HEARTBEAT_MS, HEARTBEAT_MS, TimeUnit.MILLISECONDS);
    }

    /** Thrown when another live run holds the output. */
    public static final class HeldException extends IllegalStateException {
        HeldException(String message) { super(message); }
    }

    /**
     * Takes the lock on {@code outputUri}, taking over a stale one (and saying so on {@code console}).
     *
     * @throws HeldException if a live run holds it: the message names the holder and the lock file
     */
    public static OutputLock acquire(Configuration conf, String outputUri, PrintStream console) throws IOException {
        Path file = HadoopFiles.path(HadoopFiles.resolve(outputUri, FILE));
        FileSystem fs = HadoopFiles.fs(file, conf);
        long timeoutMs = conf.getLong(TIMEOUT_KEY, DEFAULT_TIMEOUT_S) * 1000;
        String runId = UUID.randomUUID().toString();
        for (int attempt = 0; attempt < 2; attempt++) {
            if (tryCreate(fs, file, runId)) return new OutputLock(fs, file, runId);
            Holder h = Holder.read(fs, file);
            if (h == null) continue;                       // released between our create and read: try again
            String stale = h.staleness(timeoutMs);
            if (stale == null) {
                throw new HeldException(String.format(Locale.ROOT, "output %s is in use by another run: %s (lock file %s); "
                        + "wait for it to finish, or, if that run is dead, delete the lock file (a lock whose heartbeat is older "
                        + "than %d s is taken over on its own)", outputUri, h.describe(), file, timeoutMs / 1000));
            }
            // delete only the lock judged stale: a run that took it over meanwhile has another run id and a fresh heartbeat
            Holder again = Holder.read(fs, file);
            if (again != null && !(again.runId().equals(h.runId()) && again.heartbeatMs() == h.heartbeatMs())) continue;
            console.printf(Locale.ROOT, "taking over the lock on %s from %s: %s%n", outputUri, h.describe(), stale);
            if (again != null) fs.delete(file, false);
        }
        throw new HeldException("output " + outputUri + " is in use: another run took the lock file " + file + " at the same time");
    }

    /**
     * Refuses when a live run holds {@code outputUri} (before deleting it for a fresh start, say); a stale or absent lock
     * passes.
     *
     * @throws HeldException if a live run holds it
     */
    public static void requireFree(Configuration conf, String outputUri) throws IOException {
        Path file = HadoopFiles.path(HadoopFiles.resolve(outputUri, FILE));
        FileSystem fs = HadoopFiles.fs(file, conf);
        Holder h = Holder.read(fs, file);
        if (h != null && h.staleness(conf.getLong(TIMEOUT_KEY, DEFAULT_TIMEOUT_S) * 1000) == null) {
            throw new HeldException(String.format(Locale.ROOT, "output %s is in use by another run: %s (lock file %s); "
                    + "it is not deleted", outputUri, h.describe(), file));
        }
    }

    private static boolean tryCreate(FileSystem fs, Path file, String runId) throws IOException {
        ObjectNode o = JSON.createObjectNode()
                .put("host", hostName())
                .put("pid", ProcessHandle.current().pid())
                .put("run_id", runId)
                .put("started", Instant.now().toString());
        byte[] bytes = JSON.writeValueAsBytes(o);
        java.util.Optional<java.nio.file.Path> local = HadoopFiles.localFile(fs, file);
        if (local.isPresent()) return tryCreateLocal(local.get(), file, bytes);
        try (FSDataOutputStream s = fs.create(file, false)) {
            s.write(bytes);
        } catch (FileAlreadyExistsException e) {
            return false;
        } catch (IOException e) {
            if (fs.exists(file)) return false;           // some file systems report the clash as a plain IOException
            throw new IOException("cannot create the run lock " + file + ": " + e.getMessage(), e);
        }
        return true;
    }

    /**
     * On a local disk Hadoop's {@code create(overwrite = false)} checks and then creates, so two runs can both pass the
     * check. Here the holder's record is written to a private temporary file and hard-linked to the lock's name, which
     * the kernel does atomically and refuses when the name exists; the lock never exists empty. Where hard links are
     * not supported, {@code CREATE_NEW} (one atomic open) is used instead.
     */
    private static boolean tryCreateLocal(java.nio.file.Path target, Path file, byte[] bytes) throws IOException {
        java.nio.file.Files.createDirectories(target.getParent());
        java.nio.file.Path tmp = target.resolveSibling("." + FILE + ".tmp-" + UUID.randomUUID());
        try {
            java.nio.file.Files.write(tmp, bytes, java.nio.file.StandardOpenOption.CREATE_NEW);
            try {
                java.nio.file.Files.createLink(target, tmp);
                return true;
            } catch (java.nio.file.FileAlreadyExistsException e) {
                return false;
            } catch (UnsupportedOperationException | java.nio.file.FileSystemException e) {
                if (java.nio.file.Files.exists(target, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return false;
                try {
                    java.nio.file.Files.write(target, bytes, java.nio.file.StandardOpenOption.CREATE_NEW);
                    return true;
                } catch (java.nio.file.FileAlreadyExistsException clash) {
                    return false;
                }
            }
        } catch (java.nio.file.FileAlreadyExistsException e) {
            return false;
        } catch (IOException e) {
            throw new IOException("cannot create the run lock " + file + ": " + e.getMessage(), e);
        } finally {
            java.nio.file.Files.deleteIfExists(tmp);
        }
    }

    private void touch() {
        try {
            fs.setTimes(file, System.currentTimeMillis(), -1);
        } catch (IOException | RuntimeException e) {
            // a missed heartbeat only makes the lock look older; the next one retries
        }
    }

    /** The lock file. */
    public Path file() { return file; }

    /** Releases the lock, if this run still holds it (a run that took over a lock it thought stale keeps its own). */
    @Override
    public void close() throws IOException {
        heartbeat.shutdownNow();
        Holder h = Holder.read(fs, file);
        if (h != null && runId.equals(h.runId)) fs.delete(file, false);
    }

    static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown-host";
        }
    }

    /** Who holds a lock, as its file says, and when it last beat. */
    record Holder(String host, long pid, String runId, String started, long heartbeatMs) {
        static Holder read(FileSystem fs, Path file) throws IOException {
            FileStatus st;
            byte[] bytes;
            try {
                st = fs.getFileStatus(file);
                try (var in = fs.open(file)) {
                    bytes = in.readAllBytes();
                }
            } catch (java.io.FileNotFoundException e) {
                return null;
            }
            JsonNode j;
            try {
                j = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
            } catch (IOException e) {
                j = null;
            }
            if (j == null || !j.isObject()) {
                // a holder killed between create and write leaves an empty file: only its age can tell
                return new Holder("?", -1, "?", "?", st.getModificationTime());
            }
            return new Holder(j.path("host").asText("?"), j.path("pid").asLong(-1), j.path("run_id").asText("?"),
                    j.path("started").asText("?"), st.getModificationTime());
        }

        /** Why the lock is stale, or null when its holder may still be running. */
        String staleness(long timeoutMs) {
            if (host.equals(hostName()) && pid > 0 && ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true)) {
                return "its process " + pid + " on this host no longer exists";
            }
            long age = System.currentTimeMillis() - heartbeatMs;
            if (age > timeoutMs) return String.format(Locale.ROOT, "its last heartbeat was %d s ago (timeout %d s)", age / 1000, timeoutMs / 1000);
            return null;
        }

        String describe() {
            return String.format(Locale.ROOT, "run %s, process %d on %s, started %s, last heartbeat %s", runId, pid, host, started,
                    Instant.ofEpochMilli(heartbeatMs));
        }
    }
}
