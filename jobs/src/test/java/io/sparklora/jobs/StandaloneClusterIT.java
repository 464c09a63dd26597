package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * spark-submit on a real Spark standalone cluster: a master and a worker (2 cores, 3 GiB) from Spark's own
 * classes, each its own JVM on 127.0.0.1, the worker with a SPARK_HOME whose jars/ are Spark's class path
 * (jobs/target/spark-classpath.txt, as a Spark installation has them; the worker starts executors and
 * drivers from it). jobs/scripts/submit-standalone.sh submits the shaded jar with Spark's SparkSubmit (run
 * with java: there is no spark-submit here) in client and in cluster deploy mode; the run is the shortened
 * demo without LoRA-drop and the full fine-tuning baseline; the report and the stages' markers are checked.
 * Also: an application asking for more than the worker offers (conf/spark-standalone.conf's 8 cores and
 * 16g) fails at once with both sizes named, from the script's check and from the driver's.
 */
class StandaloneClusterIT {
    private static final Path ROOT = CliProcess.ROOT;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final List<Process> DAEMONS = new ArrayList<>();
    private static Path home;
    private static String master, webUi;

    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static List<String> jvm(String mainClass, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m"));
        cmd.addAll(List.of(new String(Files.readAllBytes(ROOT.resolve("conf/jvm.options"))).lines()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toArray(String[]::new)));
        cmd.add("-Dlog4j2.configurationFile=" + ROOT.resolve("conf/log4j2.properties"));
        cmd.addAll(List.of("-cp", home.resolve("jars") + File.separator + "*", mainClass));
        cmd.addAll(List.of(args));
        return cmd;
    }

    private static Process daemon(Path logs, String name, List<String> cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logs.resolve(name + ".log").toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_"));
        pb.environment().put("SPARK_HOME", home.toString());
        pb.environment().put("SPARK_SCALA_VERSION", "2.12");   // Spark's start scripts set it; the worker's launcher needs it
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        Process p = pb.start();
        DAEMONS.add(p);
        return p;
    }

    @BeforeAll
    static void startCluster(@TempDir Path dir) throws Exception {
        Path cpFile = ROOT.resolve("jobs/target/spark-classpath.txt");
        assertTrue(Files.isRegularFile(cpFile) && Files.isRegularFile(ROOT.resolve("jobs/target/spark-lora-jobs.jar")),
                "run after package: mvn -B -pl jobs -am verify -Pcluster-it -DskipTests");
        home = Files.createDirectories(dir.resolve("spark-home"));
        Files.createDirectories(home.resolve("jars"));
        for (String jar : Files.readString(cpFile).strip().split(File.pathSeparator)) {
            Path j = Path.of(jar);
            Files.createSymbolicLink(home.resolve("jars").resolve(j.getFileName()), j);
        }
        Path logs = Files.createDirectories(dir.resolve("logs"));
        int port = freePort(), ui = freePort();
        master = "spark://127.0.0.1:" + port;
        webUi = "http://127.0.0.1:" + ui;
        daemon(logs, "master", jvm("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "" + port, "--webui-port", "" + ui));
        daemon(logs, "worker", jvm("org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory", "3g",
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
        assertEquals(List.of(2), workers.stream().filter(w -> w.state().equals("ALIVE")).map(ClusterOffer.Worker::cores).toList(),
                "one alive worker with 2 cores; logs in " + logs + ":\n" + Files.readString(logs.resolve("worker.log")));
    }

    @AfterAll
    static void stopCluster() throws Exception {
        for (Process p : DAEMONS) p.descendants().forEach(ProcessHandle::destroyForcibly);
        for (Process p : DAEMONS) p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
    }

    /** The shortened demo without LoRA-drop and the full fine-tuning baseline: every stage runs on executors. */
    private static Path config(Path tmp, Path out) throws Exception {
        ObjectNode c = (ObjectNode) YAML.readTree(PipelineDemoTest.smallConfig(out));
        ((ObjectNode) c.get("lora_drop")).put("enabled", false);
        ((ObjectNode) c.get("full_finetune")).put("enabled", false);
        Path cfg = tmp.resolve("cluster.yaml");
        Files.writeString(cfg, YAML.writeValueAsString(c));
        return cfg;
    }

    private static CliProcess.Result submit(Path logs, String name, long timeoutSeconds, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(ROOT.resolve("jobs/scripts/submit-standalone.sh").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_"));
        Map<String, String> e = new HashMap<>(Map.of("SPARK_MASTER", master, "SPARK_MASTER_WEBUI", webUi, "SPARK_DRIVER_HOST", "127.0.0.1",
                "SPARK_LOCAL_IP", "127.0.0.1", "SPARK_LORA_DRIVER_MEMORY", "1g"));
        e.putAll(env);
        pb.environment().putAll(e);
        Files.createDirectories(logs);
        Path out = logs.resolve(name + ".out"), err = logs.resolve(name + ".err");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        return new CliProcess.Started(pb.start(), out, err).await(timeoutSeconds);
    }

    /** Executors (and a cluster-mode driver) of 2 cores and 1 GiB: what the 2-core, 3 GiB worker can host. */
    private static final String FITTING = "--conf spark.executor.cores=2 --conf spark.task.cpus=2 --conf spark.executorEnv.OMP_NUM_THREADS=2 "
            + "--conf spark.executor.memory=1g --conf spark.driver.memory=1g --conf spark.driver.cores=1";

    private static final String FITTING_BESIDE_DRIVER = "--conf spark.executor.cores=1 --conf spark.task.cpus=1 --conf spark.executorEnv.OMP_NUM_THREADS=1 "
            + "--conf spark.executor.memory=1g --conf spark.driver.memory=1g --conf spark.driver.cores=1";

    private static void assertRanOnTheCluster(Path out, CliProcess.Result r) throws Exception {
        assertEquals(0, r.code(), r.err());
        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        assertEquals(master, report.path("spark").path("master").asText(), "ran on the standalone master");
        for (String s : List.of("tokenizer", "tokenize", "pretrain", "train", "evaluate")) {
            assertTrue(Files.exists(out.resolve("stages").resolve(s).resolve("_SUCCESS")), s + " marked complete");
        }
        assertTrue(Files.exists(out.resolve("shards/adapt/_SUCCESS")));
        for (String m : List.of("base", "adapted", "merged")) {
            assertTrue(report.path("eval").path(m).path("perplexity").asDouble() > 1, m + ": " + report.path("eval"));
        }
        assertEquals(report.path("eval").path("adapted").path("perplexity").asDouble(), report.path("eval").path("merged").path("perplexity").asDouble(), 1e-3);
        assertTrue(Files.exists(out.resolve("adapter/adapter_model.safetensors")));
    }

    @Test
    void clientModeRunsThePipelineOnTheWorkersExecutors(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        CliProcess.Result r = submit(tmp.resolve("logs"), "client", 1500, Map.of("SPARK_LORA_SUBMIT_ARGS", FITTING),
                "pipeline", "--config", config(tmp, out).toString());
        assertRanOnTheCluster(out, r);
        assertTrue(r.out().contains("[train] done"), r.out());
        assertEquals(List.of(), CliProcess.infoOrSlf4jLines(r.err()), "the driver logs warnings only");
    }

    @Test
    void clusterModeRunsTheDriverOnTheWorker(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");   // a local path: driver and executors share this machine
        // the driver takes 1 core and 1g of the worker's 2 cores and 3g: executors of 1 core and 1g beside it
        CliProcess.Result r = submit(tmp.resolve("logs"), "cluster", 1500, Map.of("SPARK_LORA_SUBMIT_ARGS", FITTING_BESIDE_DRIVER),
                "--deploy-mode", "cluster", "pipeline", "--config", config(tmp, out).toString());
        assertRanOnTheCluster(out, r);
        assertFalse(r.out().contains("[train]"), "the driver's progress lines are on the worker, not here");
    }

    @Test
    void anApplicationNoWorkerCanHostFailsAtOnceNamingBothSizes(@TempDir Path tmp) throws Exception {
        Path cfg = config(tmp, tmp.resolve("run"));
        // the script's check, before spark-submit (conf/spark-standalone.conf asks for 8 cores and 16g)
        CliProcess.Result script = submit(tmp.resolve("logs"), "script", 120, Map.of(), "pipeline", "--config", cfg.toString());
        assertEquals(1, script.code(), script.err());
        for (String s : List.of("spark.executor.cores=8", "spark.task.cpus=8", "spark.executor.memory=16g", "offers 2 cores and 3072 MiB",
                "--conf spark.executor.cores=2 --conf spark.task.cpus=2")) {
            assertTrue(script.err().contains(s), s + " in:\n" + script.err());
        }
        assertFalse(script.err().contains("+ java"), "nothing was submitted");
        // the driver's check, for a submission that skips the script's (only 4 cores asked: memory alone misfits)
        CliProcess.Result driver = submit(tmp.resolve("logs"), "driver", 300, Map.of("SPARK_LORA_CHECK_FIT", "0",
                "SPARK_LORA_SUBMIT_ARGS", "--conf spark.executor.cores=2 --conf spark.task.cpus=2"), "pipeline", "--config", cfg.toString());
        assertEquals(1, driver.code(), driver.err());
        assertTrue(driver.err().contains("spark.executor.memory=16g (16384 MiB), but the largest alive worker offers 2 cores and 3072 MiB"), driver.err());
        assertFalse(Files.exists(tmp.resolve("run/stages/tokenizer/_SUCCESS")), "no stage ran");
    }
}
