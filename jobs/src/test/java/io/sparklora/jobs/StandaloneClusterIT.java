package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

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
    private static StandaloneCluster cluster;

    @BeforeAll
    static void startCluster(@TempDir Path dir) throws Exception {
        cluster = StandaloneCluster.start(dir, 2, "3g");
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) cluster.close();
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
        return cluster.submit(logs, name, env, args).await(timeoutSeconds);
    }

    /** Executors (and a cluster-mode driver) of 2 cores and 1 GiB: what the 2-core, 3 GiB worker can host. */
    private static final String FITTING = "--conf spark.executor.cores=2 --conf spark.task.cpus=2 --conf spark.executorEnv.OMP_NUM_THREADS=2 "
            + "--conf spark.executor.memory=1g --conf spark.driver.memory=1g --conf spark.driver.cores=1";

    private static final String FITTING_BESIDE_DRIVER = "--conf spark.executor.cores=1 --conf spark.task.cpus=1 --conf spark.executorEnv.OMP_NUM_THREADS=1 "
            + "--conf spark.executor.memory=1g --conf spark.driver.memory=1g --conf spark.driver.cores=1";

    private static void assertRanOnTheCluster(Path out, CliProcess.Result r) throws Exception {
        assertEquals(0, r.code(), r.err());
        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        assertEquals(cluster.master(), report.path("spark").path("master").asText(), "ran on the standalone master");
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
