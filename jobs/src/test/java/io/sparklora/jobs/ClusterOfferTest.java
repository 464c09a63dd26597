package io.sparklora.jobs;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The resource check against a master's /json/ (parsed from a recorded answer; StandaloneClusterIT asks a live master). */
class ClusterOfferTest {
    /** What a Spark 3.5.3 master's /json/ answered with one 2-core, 3 GiB worker (fields trimmed) and a dead one. */
    private static final String MASTER_JSON = """
            {"url":"spark://127.0.0.1:17077","workers":[
              {"id":"worker-1","host":"127.0.0.1","cores":2,"coresused":0,"coresfree":2,"memory":3072,"memoryused":0,"memoryfree":3072,"state":"ALIVE"},
              {"id":"worker-0","host":"127.0.0.2","cores":64,"coresused":0,"coresfree":64,"memory":262144,"memoryused":0,"memoryfree":262144,"state":"DEAD"}],
             "aliveworkers":1,"cores":2,"memory":3072,"status":"ALIVE"}""";

    private static List<ClusterOffer.Worker> workers() throws Exception {
        return ClusterOffer.workers(new com.fasterxml.jackson.databind.ObjectMapper().readTree(MASTER_JSON));
    }

    @Test
    void eightCoreExecutorsOnATwoCoreWorkerGetAMessageNamingBothAndAFit() throws Exception {
        var ask = ClusterOffer.Ask.of(Map.of("spark.executor.cores", "8", "spark.task.cpus", "8", "spark.executor.memory", "16g"));
        String why = ClusterOffer.misfit("spark://m:7077", workers(), ask);
        assertNotNull(why);
        assertTrue(why.contains("spark.executor.cores=8, spark.task.cpus=8 and spark.executor.memory=16g (16384 MiB)"), why);
        assertTrue(why.contains("the largest alive worker offers 2 cores and 3072 MiB (1 alive worker)"), why);
        assertTrue(why.contains("--conf spark.executor.cores=2 --conf spark.task.cpus=2 --conf spark.executorEnv.OMP_NUM_THREADS=2 --conf spark.executor.memory=1536m"), why);
    }

    @Test
    void anExecutorThatFitsPassesAndEachLimitCounts() throws Exception {
        assertNull(ClusterOffer.misfit("spark://m:7077", workers(), ClusterOffer.Ask.of(Map.of("spark.executor.cores", "2", "spark.executor.memory", "3g"))));
        assertNull(ClusterOffer.misfit("spark://m:7077", workers(), ClusterOffer.Ask.of(Map.of())), "defaults: all cores, 1g");
        assertNotNull(ClusterOffer.misfit("spark://m:7077", workers(), ClusterOffer.Ask.of(Map.of("spark.executor.cores", "2", "spark.executor.memory", "3073m"))));
        assertNotNull(ClusterOffer.misfit("spark://m:7077", workers(), ClusterOffer.Ask.of(Map.of("spark.task.cpus", "3"))), "a task wider than the worker");
        assertNotNull(ClusterOffer.misfit("spark://m:7077", workers(), ClusterOffer.Ask.of(Map.of("spark.executor.cores", "2", "spark.task.cpus", "4"))));
        String none = ClusterOffer.misfit("spark://m:7077", List.of(), ClusterOffer.Ask.of(Map.of()));
        assertTrue(none.contains("has no alive worker"), none);
    }

    @Test
    void submitOptionsOverrideThePropertiesFileAsSparkSubmitDoes(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path props = dir.resolve("p.conf");
        java.nio.file.Files.writeString(props, "spark.executor.cores   8\nspark.executor.memory  16g\nspark.task.cpus 8\n");
        Map<String, String> conf = ClusterOffer.submitConf(List.of("--master", "spark://m:7077", "--properties-file", props.toString(),
                "--conf", "spark.executor.cores=2", "--executor-memory", "1g"));
        assertEquals("2", conf.get("spark.executor.cores"));
        assertEquals("1g", conf.get("spark.executor.memory"));
        assertEquals("8", conf.get("spark.task.cpus"));
        assertEquals(1024, ClusterOffer.mib("1g"));
        assertEquals(512, ClusterOffer.mib("512"));
        assertEquals("http://m1:8080", ClusterOffer.defaultWebUi("spark://m1:7077,m2:7077"));
    }
}
