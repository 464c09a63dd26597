package io.sparklora.runner;

import io.sparklora.api.TinyBase;
import io.sparklora.spark.SparkSetup;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** One run at a time per output: a second one is refused naming the holder; a dead holder's lock is taken over. */
class OutputLockTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    final Configuration conf = new Configuration();

    static String holder(String host, long pid) {
        return "{\"host\":\"" + host + "\",\"pid\":" + pid + ",\"run_id\":\"earlier-run\",\"started\":\"2026-12-04T10:00:00Z\"}";
    }

    /** The pid of a process that has exited. */
    static long deadPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        return p.pid();
    }

    @Test
    void aSecondRunOnTheSameOutputIsRefusedNamingTheHolder(@TempDir Path tmp) throws Exception {
        String out = tmp.resolve("run").toString();
        try (OutputLock first = OutputLock.acquire(conf, out, QUIET)) {
            assertTrue(Files.isRegularFile(tmp.resolve("run").resolve(OutputLock.FILE)));
            OutputLock.HeldException e = assertThrows(OutputLock.HeldException.class, () -> OutputLock.acquire(conf, out, QUIET));
            String m = e.getMessage();
            assertTrue(m.contains("in use by another run") && m.contains("process " + ProcessHandle.current().pid())
                    && m.contains(OutputLock.hostName()) && m.contains(OutputLock.FILE), m);
            assertThrows(OutputLock.HeldException.class, () -> OutputLock.requireFree(conf, out), "--fresh must not delete it");
            // another output is independent
            try (OutputLock other = OutputLock.acquire(conf, tmp.resolve("other").toString(), QUIET)) {
                assertNotNull(other.file());
            }
        }
        assertFalse(Files.exists(tmp.resolve("run").resolve(OutputLock.FILE)), "released on close");
        OutputLock.requireFree(conf, out);
        OutputLock.acquire(conf, out, QUIET).close();
    }

    @Test
    void ofRunsStartingAtTheSameMomentExactlyOneTakesTheLock(@TempDir Path tmp) throws Exception {
        int threads = 8;
        var pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
        try {
            for (int trial = 0; trial < 10; trial++) {
                String out = tmp.resolve("run-" + trial).toString();
                var start = new java.util.concurrent.CyclicBarrier(threads);
                java.util.List<java.util.concurrent.Future<OutputLock>> tries = new java.util.ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    tries.add(pool.submit(() -> {
                        start.await();
                        try {
                            return OutputLock.acquire(conf, out, QUIET);
                        } catch (OutputLock.HeldException e) {
                            return null;
                        }
                    }));
                }
                int holders = 0;
                for (var f : tries) {
                    OutputLock l = f.get();
                    if (l != null) holders++;
                }
                assertEquals(1, holders, "trial " + trial + ": runs holding the lock at once");
                String record = Files.readString(tmp.resolve("run-" + trial).resolve(OutputLock.FILE));
                assertTrue(record.contains("\"run_id\""), "the lock is never seen without its holder: " + record);
                try (var names = Files.list(tmp.resolve("run-" + trial))) {
                    assertEquals(Set.of(OutputLock.FILE), names.map(p -> p.getFileName().toString())
                            .collect(java.util.stream.Collectors.toSet()), "no temporary left behind");
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aLockWhoseProcessIsGoneIsTakenOverAtOnce(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("run"));
        long dead = deadPid();
        Files.writeString(dir.resolve(OutputLock.FILE), holder(OutputLock.hostName(), dead));
        OutputLock.requireFree(conf, dir.toString());
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        try (OutputLock l = OutputLock.acquire(conf, dir.toString(), new PrintStream(said, true, StandardCharsets.UTF_8))) {
            String s = said.toString(StandardCharsets.UTF_8);
            assertTrue(s.contains("taking over") && s.contains("process " + dead + " on this host no longer exists"), s);
            assertTrue(Files.readString(dir.resolve(OutputLock.FILE)).contains("\"pid\":" + ProcessHandle.current().pid()));
        }
    }

    @Test
    void aLockFromAnotherHostIsStaleOnlyOnceItsHeartbeatIsOld(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("run"));
        Path lock = dir.resolve(OutputLock.FILE);
        Files.writeString(lock, holder("some-other-host", 4242));
        OutputLock.HeldException e = assertThrows(OutputLock.HeldException.class, () -> OutputLock.acquire(conf, dir.toString(), QUIET));
        assertTrue(e.getMessage().contains("some-other-host") && e.getMessage().contains("4242"), e.getMessage());
        // a killed holder stops beating: 10 minutes without a heartbeat is past the 120 s timeout
        Files.setLastModifiedTime(lock, FileTime.fromMillis(System.currentTimeMillis() - 600_000));
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        OutputLock.acquire(conf, dir.toString(), new PrintStream(said, true, StandardCharsets.UTF_8)).close();
        assertTrue(said.toString(StandardCharsets.UTF_8).contains("last heartbeat was 600 s ago"), said.toString(StandardCharsets.UTF_8));
        // an empty lock file (its holder was killed between create and write) is judged by its age alone
        Files.writeString(lock, "");
        assertThrows(OutputLock.HeldException.class, () -> OutputLock.acquire(conf, dir.toString(), QUIET));
        Files.setLastModifiedTime(lock, FileTime.fromMillis(System.currentTimeMillis() - 600_000));
        OutputLock.acquire(conf, dir.toString(), QUIET).close();
    }

    @Test
    void aPipelineRunHoldsTheLockAndReleasesItWhenItFails(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: locked",
                "output: " + out,
                "datasets: {adapt: " + tmp.resolve("missing.yaml") + "}",
                "base: {path: " + TinyBase.write(tmp.resolve("base"), 1) + "}", ""), "lock.yaml");
        try (JavaSparkContext sc = SparkSetup.local(1)) {
            // held by another live process on this host (this test's own pid stands in for it): refused, nothing written
            Files.createDirectories(out);
            Files.writeString(out.resolve(OutputLock.FILE), holder(OutputLock.hostName(), ProcessHandle.current().pid()));
            assertThrows(OutputLock.HeldException.class, () -> new PipelineRunner(sc, cfg, QUIET).run(Set.of()));
            assertFalse(Files.exists(out.resolve("report.json")), "a refused run writes nothing");
            Files.delete(out.resolve(OutputLock.FILE));
            // free: the run takes the lock, fails on the missing manifest, and releases it
            assertThrows(PipelineRunner.StageFailedException.class, () -> new PipelineRunner(sc, cfg, QUIET).run(Set.of()));
            assertTrue(Files.exists(out.resolve("report.json")), "the failed run wrote its report");
            assertFalse(Files.exists(out.resolve(OutputLock.FILE)), "released after a failure");
        }
    }
}
