package io.sparklora.spark;

import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * GPU scheduling as on a standalone cluster, without GPUs: two Workers (separate executor JVMs) each
 * discover one "GPU" through a fake discovery script, Spark gives each task one of them, and the task
 * binds it with {@link GpuBinding}.
 */
class GpuSchedulingTest {

    /** What a task saw. (A plain class: Spark's Kryo 4 cannot serialize records.) */
    static final class Seen implements Serializable {
        final String executorId;
        final long pid;
        final List<String> addresses;
        final String bound;
        final boolean cuda;

        Seen(String executorId, long pid, List<String> addresses, String bound, boolean cuda) {
            this.executorId = executorId;
            this.pid = pid;
            this.addresses = new ArrayList<>(addresses);
            this.bound = bound;
            this.cuda = cuda;
        }

        String executorId() { return executorId; }
        long pid() { return pid; }
        List<String> addresses() { return addresses; }
        String bound() { return bound; }
        boolean cuda() { return cuda; }

        @Override
        public String toString() {
            return "task on executor " + executorId + " (pid " + pid + ") saw gpu " + addresses + ", bound " + bound + (cuda ? " (CUDA)" : "");
        }
    }

    /**
     * A fake nvidia-smi discovery: every call claims the lowest index not yet claimed (mkdir is atomic, so
     * two Workers discovering at the same moment still get different indices) and reports it as the one GPU
     * of the machine. Spark runs it once per Worker; executors get their GPU from their Worker.
     */
    private static Path fakeDiscoveryScript(Path dir) throws Exception {
        Path claims = Files.createDirectories(dir.resolve("claims"));
        Path script = dir.resolve("fake-discover-gpus.sh");
        Files.writeString(script, """
                #!/usr/bin/env bash
                set -euo pipefail
                i=0
                while ! mkdir "%s/gpu-$i" 2>/dev/null; do i=$((i+1)); done
                echo "{\\"name\\": \\"gpu\\", \\"addresses\\": [\\"$i\\"]}"
                """.formatted(claims));
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        return script;
    }

    @Test
    void eachTaskRunsInAnExecutorJvmOnTheOneGpuOfItsExecutor(@TempDir Path dir) throws Exception {
        Path script = fakeDiscoveryScript(dir);
        Map<String, String> gpuConf = Map.of(
                "spark.worker.resource.gpu.amount", "1",
                "spark.worker.resource.gpu.discoveryScript", script.toString(),
                "spark.executor.resource.gpu.amount", "1",
                "spark.task.resource.gpu.amount", "1");
        long driverPid = ProcessHandle.current().pid();
        long t0 = System.nanoTime();
        JavaSparkContext sc = SparkClusters.localCluster(2, 1, 768, gpuConf);
        List<Seen> seen;
        try {
            long started = System.nanoTime();
            seen = sc.parallelize(IntStream.range(0, 8).boxed().toList(), 8).map(i -> {
                Optional<String> bound = GpuBinding.bindCurrentTask();
                Thread.sleep(150); // hold the GPU a moment so that both executors get tasks
                return new Seen(SparkEnv.get().executorId(), ProcessHandle.current().pid(),
                        List.of(GpuBinding.taskGpuAddresses()), bound.orElse(null), GpuBinding.isCudaBackend());
            }).collect();
            System.out.printf("GpuSchedulingTest: cluster up in %.1f s, 8 tasks in %.1f s%n",
                    (started - t0) / 1e9, (System.nanoTime() - started) / 1e9);
        } finally {
            sc.stop();
        }

        assertEquals(8, seen.size());
        for (Seen s : seen) {
            assertNotEquals(driverPid, s.pid(), "tasks must run in executor JVMs, not in the driver: " + s);
            assertNotEquals("driver", s.executorId(), s.toString());
            assertEquals(1, s.addresses().size(), "each task holds exactly one GPU: " + s);
            assertEquals(s.addresses().get(0), s.bound(), "GpuBinding returns the task's address: " + s);
            assertFalse(s.cuda(), "the default build runs ND4J on the CPU backend");
        }
        Map<String, Set<String>> addressesByExecutor = new TreeMap<>();
        Map<String, Set<Long>> pidsByExecutor = new TreeMap<>();
        for (Seen s : seen) {
            addressesByExecutor.computeIfAbsent(s.executorId(), k -> new TreeSet<>()).add(s.bound());
            pidsByExecutor.computeIfAbsent(s.executorId(), k -> new TreeSet<>()).add(s.pid());
        }
        assertEquals(2, addressesByExecutor.size(), "both executors ran tasks: " + seen);
        addressesByExecutor.forEach((exec, addrs) -> assertEquals(1, addrs.size(), "executor " + exec + " owns one GPU: " + addrs));
        pidsByExecutor.forEach((exec, pids) -> assertEquals(1, pids.size(), "executor " + exec + " is one JVM: " + pids));
        assertEquals(2, pidsByExecutor.values().stream().flatMap(Set::stream).distinct().count(), "two executor JVMs");
        Set<String> gpus = addressesByExecutor.values().stream().flatMap(Set::stream).collect(Collectors.toCollection(TreeSet::new));
        assertEquals(Set.of("0", "1"), gpus, "the executors were given different GPUs");
    }

    @Test
    void outsideATaskAndInTasksWithoutGpusNothingIsBound() {
        assertEquals(Optional.empty(), GpuBinding.bindCurrentTask(), "no TaskContext on the driver thread");
        assertEquals(0, GpuBinding.taskGpuAddresses().length);
        JavaSparkContext sc = SparkSetup.local(2);
        try {
            List<String> r = sc.parallelize(List.of(1, 2, 3, 4), 4)
                    .map(i -> GpuBinding.bindCurrentTask().orElse("none") + "/" + GpuBinding.taskGpuAddresses().length).collect();
            assertEquals(List.of("none/0", "none/0", "none/0", "none/0"), r);
        } finally {
            sc.stop();
        }
    }

    @Test
    void onTheCudaBackendTheThreadIsBoundToTheAssignedDevice() {
        Map<String, ResourceInformation> task = Map.of("gpu", new ResourceInformation("gpu", new String[]{"3"}));
        List<Integer> set = new ArrayList<>();
        assertEquals(Optional.of("3"), GpuBinding.bind(task, () -> true, () -> 4, set::add));
        assertEquals(List.of(3), set);

        set.clear();
        assertEquals(Optional.of("3"), GpuBinding.bind(task, () -> false, () -> 4, set::add), "CPU backend: reported, not bound");
        assertEquals(List.of(), set);

        assertEquals(Optional.empty(), GpuBinding.bind(Map.of(), () -> true, () -> 4, set::add));
        assertEquals(Optional.empty(), GpuBinding.bind(Map.of("gpu", new ResourceInformation("gpu", new String[0])), () -> true, () -> 4, set::add));
        assertEquals(Optional.empty(), GpuBinding.bind(null, () -> true, () -> 4, set::add));
        assertEquals(List.of(), set);

        IllegalStateException outOfRange = assertThrows(IllegalStateException.class, () -> GpuBinding.bind(task, () -> true, () -> 2, set::add));
        assertTrue(outOfRange.getMessage().contains("ND4J sees 2 CUDA device(s)"), outOfRange.getMessage());
        IllegalStateException notIndex = assertThrows(IllegalStateException.class, () -> GpuBinding.bind(
                Map.of("gpu", new ResourceInformation("gpu", new String[]{"GPU-8f3a"})), () -> true, () -> 2, set::add));
        assertTrue(notIndex.getMessage().contains("not a CUDA device index"), notIndex.getMessage());
        assertEquals(List.of(), set);
        assertFalse(GpuBinding.cudaBackendOnClassPath(), "the default build has no CUDA backend");
    }
}
