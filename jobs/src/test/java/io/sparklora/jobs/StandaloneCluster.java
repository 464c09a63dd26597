package io.sparklora.jobs;

import java.io.File;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A Spark standalone master and one worker from Spark's own classes, each its own JVM on 127.0.0.1, the worker
 * with a SPARK_HOME whose jars/ are Spark's class path (jobs/target/spark-classpath.txt, symlinked: the worker starts
 * executors from it), and {@code jobs/scripts/submit-standalone.sh} to submit the shaded jar to it in client mode.
 * Needs the {@code package} phase's outputs (the cluster-it profile runs after it). The worker's executors are
 * child processes of {@link #worker()}, so a test can find and kill one.
 */
final class StandaloneCluster implements AutoCloseable {
    private static final Path ROOT = CliProcess.ROOT;
    private final List<Process> daemons = new ArrayList<>();
    private final Path home, logs;
    private final String master, webUi;
    private Process worker;

    private StandaloneCluster(Path dir) throws Exception {
        Path cpFile = ROOT.resolve("jobs/target/spark-classpath.txt");
        assertTrue(Files.isRegularFile(cpFile) && Files.isRegularFile(ROOT.resolve("jobs/target/spark-lora-jobs.jar")),
                "run after package: mvn -B -pl jobs -am verify -Pcluster-it -DskipTests");
        home = Files.createDirectories(dir.resolve("spark-home"));
        Files.createDirectories(home.resolve("jars"));
        for (String jar : Files.readString(cpFile).strip().split(File.pathSeparator)) {
            Path j = Path.of(jar);
            Files.createSymbolicLink(home.resolve("jars").resolve(j.getFileName()), j);
        }
        logs = Files.createDirectories(dir.resolve("logs"));
        int port = freePort();
        master = "spark://127.0.0.1:" + port;
        webUi = "http://127.0.0.1:" + freePort();
    }

    /** Starts a master and a worker offering {@code cores} cores and {@code memory} (e.g. "3g"); waits until it is alive. */
    static StandaloneCluster start(Path dir, int cores, String memory) throws Exception {
        StandaloneCluster c = new StandaloneCluster(dir);
        try {
            c.launch(cores, memory, dir);
            return c;
        } catch (Throwable t) {
            c.close();
            throw t;
        }
    }

    private void launch(int cores, String memory, Path dir) throws Exception {
        String port = master.substring(master.lastIndexOf(':') + 1), ui = webUi.substring(webUi.lastIndexOf(':') + 1);
        daemon("master", jvm("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", port, "--webui-port", ui));
        worker = daemon("worker", jvm("org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "" + cores, "--memory", memory,
                "--work-dir", Files.createDirectories(dir.resolve("work")).toString(), "--webui-port", "" + freePort(), master));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        List<ClusterOffer.Worker> workers = List.of();
        while (System.nanoTime() < deadline) {
            try {
                workers = ClusterOffer.fetch(webUi, 2000);
                if (workers.stream().anyMatch(w -> w.state().equals("ALIVE"))) break;
            } catch (java.io.IOException notYet) {
                // the master is starting
            }
            Thread.sleep(500);
        }
        assertEquals(List.of(cores), workers.stream().filter(w -> w.state().equals("ALIVE")).map(ClusterOffer.Worker::cores).toList(),
                "one alive worker with " + cores + " cores; logs in " + logs + ":\n" + Files.readString(logs.resolve("worker.log")));
    }

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    String master() { return master; }

    /** The worker's JVM: the executors it launches are its children. */
    Process worker() { return worker; }

    private List<String> jvm(String mainClass, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m"));
        cmd.addAll(List.of(Files.readString(ROOT.resolve("conf/jvm.options")).lines()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toArray(String[]::new)));
        cmd.add("-Dlog4j2.configurationFile=" + ROOT.resolve("conf/log4j2.properties"));
        cmd.addAll(List.of("-cp", home.resolve("jars") + File.separator + "*", mainClass));
        cmd.addAll(List.of(args));
        return cmd;
    }

    private Process daemon(String name, List<String> cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logs.resolve(name + ".log").toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_"));
        pb.environment().put("SPARK_HOME", home.toString());
        pb.environment().put("SPARK_SCALA_VERSION", "2.12");   // Spark's start scripts set it; the worker's launcher needs it
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        Process p = pb.start();
        daemons.add(p);
        return p;
    }

    /**
     * Starts {@code submit-standalone.sh ARGS} in client mode (the driver in that process, 1 GiB of heap), its
     * output in {@code <logDir>/<name>.out|.err}; {@code submitArgs} is SPARK_LORA_SUBMIT_ARGS.
     */
    CliProcess.Started submit(Path logDir, String name, String submitArgs, String... args) throws Exception {
        return submit(logDir, name, Map.of("SPARK_LORA_SUBMIT_ARGS", submitArgs), args);
    }

    /** {@code submit-standalone.sh ARGS} against this cluster, with {@code env} added to its environment. */
    CliProcess.Started submit(Path logDir, String name, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(ROOT.resolve("jobs/scripts/submit-standalone.sh").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_"));
        Map<String, String> e = new HashMap<>(Map.of("SPARK_MASTER", master, "SPARK_MASTER_WEBUI", webUi, "SPARK_DRIVER_HOST", "127.0.0.1",
                "SPARK_LOCAL_IP", "127.0.0.1", "SPARK_LORA_DRIVER_MEMORY", "1g"));
        e.putAll(env);
        pb.environment().putAll(e);
        Files.createDirectories(logDir);
        Path out = logDir.resolve(name + ".out"), err = logDir.resolve(name + ".err");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        return new CliProcess.Started(pb.start(), out, err);
    }

    /** Stops the worker's executors, the worker and the master (SIGKILL: nothing of theirs is kept). */
    @Override
    public void close() throws Exception {
        for (Process p : daemons) p.descendants().forEach(ProcessHandle::destroyForcibly);
        for (Process p : daemons) p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
    }
}
