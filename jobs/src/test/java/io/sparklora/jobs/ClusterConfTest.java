package io.sparklora.jobs;

import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The cluster settings files (conf/spark-*.conf), the GPU discovery script and the submit scripts
 * (jobs/scripts/) say what docs/CLUSTER.md says they do.
 */
class ClusterConfTest {
    private static final Path ROOT = findRoot();
    private static final List<String> CLUSTER_CONFS = List.of("spark-standalone.conf", "spark-yarn.conf", "spark-kubernetes.conf", "spark-gpu.conf");

    private static Path findRoot() {
        for (Path d = Path.of(System.getProperty("user.dir")).toAbsolutePath(); d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("conf/jvm.options")) && Files.isDirectory(d.resolve("jobs/scripts"))) return d;
        }
        throw new AssertionError("no checkout (conf/jvm.options, jobs/scripts) above " + System.getProperty("user.dir"));
    }

    /** Read as spark-submit reads --properties-file: java.util.Properties, values trimmed. */
    private static Properties load(String name) throws IOException {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(ROOT.resolve("conf").resolve(name), StandardCharsets.UTF_8)) {
            p.load(r);
        }
        return p;
    }

    private static String get(Properties p, String key) {
        String v = p.getProperty(key);
        assertNotNull(v, key + " missing");
        return v.strip();
    }

    private static long mib(String size) {
        String s = size.strip().toLowerCase(Locale.ROOT);
        long n = Long.parseLong(s.replaceAll("[a-z]+$", ""));
        return switch (s.replaceAll("^[0-9]+", "")) {
            case "g", "gb" -> n * 1024;
            case "m", "mb", "" -> n;
            case "t", "tb" -> n * 1024 * 1024;
            default -> throw new AssertionError("size " + size);
        };
    }

    @Test
    void everySparkConfCarriesExactlyTheJvmOptionsFile() throws IOException {
        List<String> options = Files.readAllLines(ROOT.resolve("conf/jvm.options")).stream()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        List<String> confs;
        try (Stream<Path> s = Files.list(ROOT.resolve("conf"))) {
            confs = s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("spark-") && n.endsWith(".conf")).sorted().toList();
        }
        assertTrue(confs.containsAll(CLUSTER_CONFS), "cluster confs present: " + confs);
        for (String name : confs) {
            Properties p = load(name);
            for (String key : List.of("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")) {
                assertEquals(options, Arrays.asList(get(p, key).split("\\s+")), name + ": " + key + " must equal conf/jvm.options");
            }
        }
    }

    @Test
    void clusterConfsRunOneTaskPerExecutorWithKryoAndRoomForNd4jOffHeap() throws IOException {
        for (String name : CLUSTER_CONFS) {
            Properties p = load(name);
            assertEquals("org.apache.spark.serializer.KryoSerializer", get(p, "spark.serializer"), name);
            String cores = get(p, "spark.executor.cores");
            assertEquals(cores, get(p, "spark.task.cpus"), name + ": one task per executor, on all its cores");
            assertEquals(cores, get(p, "spark.executorEnv.OMP_NUM_THREADS"), name + ": ND4J's threads = the executor's cores");
            assertEquals("false", get(p, "spark.speculation"), name);
            if (!name.equals("spark-standalone.conf")) {
                // ND4J's arrays live off-heap, capped by JavaCPP at the heap size: the overhead must hold them
                assertTrue(mib(get(p, "spark.executor.memoryOverhead")) >= mib(get(p, "spark.executor.memory")),
                        name + ": spark.executor.memoryOverhead must be at least spark.executor.memory");
            }
        }
        assertEquals("cluster", get(load("spark-yarn.conf"), "spark.submit.deployMode"));
        assertEquals("cluster", get(load("spark-kubernetes.conf"), "spark.submit.deployMode"));
        assertEquals(get(load("spark-kubernetes.conf"), "spark.executor.cores"), get(load("spark-kubernetes.conf"), "spark.kubernetes.executor.limit.cores"));
    }

    @Test
    void gpuConfGivesEachTaskOneGpuAndNamesTheDiscoveryScript() throws IOException {
        Properties p = load("spark-gpu.conf");
        assertEquals("1", get(p, "spark.executor.resource.gpu.amount"));
        assertEquals("1", get(p, "spark.task.resource.gpu.amount"));
        assertEquals("nvidia.com", get(p, "spark.executor.resource.gpu.vendor"));
        String script = get(p, "spark.executor.resource.gpu.discoveryScript");
        assertEquals("conf/gpu/discover-gpus.sh", script);
        assertTrue(Files.isExecutable(ROOT.resolve(script)), script + " must be executable");
    }

    private record Run(int code, String out, String err) {}

    private static Run run(Map<String, String> env, String... command) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(command).directory(ROOT.toFile());
        Map<String, String> e = pb.environment();
        e.keySet().removeIf(k -> k.startsWith("SPARK_") || k.startsWith("HADOOP_") || k.startsWith("YARN_"));
        e.putAll(env);
        Process proc = pb.start();
        proc.getOutputStream().close();
        byte[] out = proc.getInputStream().readAllBytes();
        byte[] err = proc.getErrorStream().readAllBytes();
        assertTrue(proc.waitFor(30, TimeUnit.SECONDS), "timed out: " + String.join(" ", command));
        return new Run(proc.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }

    @Test
    void discoveryScriptPrintsSparkResourceJsonFromNvidiaSmi(@TempDir Path dir) throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path smi = bin.resolve("nvidia-smi");
        // what nvidia-smi --query-gpu=index --format=csv,noheader prints on a 4-GPU machine (asserting the flags)
        Files.writeString(smi, """
                #!/bin/sh
                [ "$1" = "--query-gpu=index" ] && [ "$2" = "--format=csv,noheader" ] || exit 9
                printf '0\\n1\\n2\\n3\\n'
                """);
        Files.setPosixFilePermissions(smi, PosixFilePermissions.fromString("rwxr-xr-x"));
        String script = ROOT.resolve("conf/gpu/discover-gpus.sh").toString();
        Run ok = run(Map.of("PATH", bin + ":/usr/bin:/bin"), script);
        assertEquals(0, ok.code(), ok.err());
        ResourceInformation gpus = ResourceInformation.parseJson(ok.out());
        assertEquals("gpu", gpus.name());
        assertArrayEquals(new String[]{"0", "1", "2", "3"}, gpus.addresses());

        Path empty = Files.createDirectories(dir.resolve("empty"));
        Run none = run(Map.of("PATH", empty.toString()), "/bin/bash", script);
        assertNotEquals(0, none.code(), "no nvidia-smi: the executor must fail, not report no GPUs");
        assertTrue(none.err().contains("nvidia-smi not found"), none.err());
    }

    /** Runs a submit script with a fake spark-submit that prints its arguments one per line. */
    private static Run submit(Path dir, String script, Map<String, String> env, String... args) throws Exception {
        Path fake = dir.resolve("spark-submit");
        if (!Files.exists(fake)) {
            Files.writeString(fake, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n");
            Files.setPosixFilePermissions(fake, PosixFilePermissions.fromString("rwxr-xr-x"));
            Files.write(dir.resolve("app.jar"), new byte[]{'P', 'K', 5, 6});
        }
        Map<String, String> e = new java.util.HashMap<>(env);
        e.put("SPARK_SUBMIT", fake.toString());
        e.putIfAbsent("SPARK_LORA_JAR", dir.resolve("app.jar").toString());
        e.put("SPARK_DRIVER_HOST", "driver.example.com");
        e.putIfAbsent("SPARK_LORA_CHECK_FIT", "0");   // no master to ask (StandaloneClusterIT checks it on a real one)
        List<String> cmd = new ArrayList<>(List.of(ROOT.resolve("jobs/scripts").resolve(script).toString()));
        cmd.addAll(List.of(args));
        return run(e, cmd.toArray(String[]::new));
    }

    private static List<String> lines(Run r) {
        assertEquals(0, r.code(), r.err());
        return r.out().lines().toList();
    }

    private static void assertOption(List<String> argv, String option, String value) {
        int i = argv.indexOf(option);
        while (i >= 0 && !argv.get(i + 1).equals(value)) {
            int next = argv.subList(i + 1, argv.size()).indexOf(option);
            i = next < 0 ? -1 : i + 1 + next;
        }
        assertTrue(i >= 0, option + " " + value + " expected in " + argv);
    }

    @Test
    void submitScriptsPickTheStageClassPropertiesFileAndJarAndForwardTheJobArguments(@TempDir Path dir) throws Exception {
        String jar = dir.resolve("app.jar").toString();
        Map<String, String> classes = Map.of("tokenize", "TokenizeJob", "train", "TrainJob", "lora-drop", "LoraDropJob",
                "evaluate", "EvaluateJob", "pipeline", "PipelineJob");
        for (var e : classes.entrySet()) {
            List<String> argv = lines(submit(dir, "submit-standalone.sh", Map.of("SPARK_MASTER", "spark://m:7077"),
                    e.getKey(), "--config", "hdfs:///runs/x.yaml", "--fresh"));
            assertOption(argv, "--class", "io.sparklora.jobs." + e.getValue());
            assertOption(argv, "--properties-file", ROOT.resolve("conf/spark-standalone.conf").toString());
            assertOption(argv, "--master", "spark://m:7077");
            assertOption(argv, "--conf", "spark.driver.host=driver.example.com");
            int j = argv.indexOf(jar);
            assertEquals(List.of("--config", "hdfs:///runs/x.yaml", "--fresh"), argv.subList(j + 1, argv.size()), "job arguments follow the jar");
        }

        List<String> yarn = lines(submit(dir, "submit-yarn.sh", Map.of("HADOOP_CONF_DIR", "/etc/hadoop/conf", "SPARK_LORA_QUEUE", "ml",
                "SPARK_LORA_SUBMIT_ARGS", "--conf spark.executor.instances=8"), "train", "--config=hdfs:///r.yaml", "--output", "hdfs:///out dir"));
        assertOption(yarn, "--master", "yarn");
        assertOption(yarn, "--deploy-mode", "cluster");
        assertOption(yarn, "--queue", "ml");
        assertOption(yarn, "--properties-file", ROOT.resolve("conf/spark-yarn.conf").toString());
        assertOption(yarn, "--conf", "spark.executor.instances=8");
        assertEquals(List.of(jar, "--config=hdfs:///r.yaml", "--output", "hdfs:///out dir"), yarn.subList(yarn.indexOf(jar), yarn.size()));

        List<String> k8s = lines(submit(dir, "submit-kubernetes.sh", Map.of("SPARK_K8S_MASTER", "k8s://https://api:6443",
                "SPARK_LORA_NAMESPACE", "ml", "SPARK_LORA_IMAGE", "reg/spark-lora:1", "SPARK_LORA_UPLOAD_PATH", "s3a://b/up"),
                "evaluate", "--config", "hdfs:///r.yaml"));
        assertOption(k8s, "--master", "k8s://https://api:6443");
        assertOption(k8s, "--conf", "spark.kubernetes.namespace=ml");
        assertOption(k8s, "--conf", "spark.kubernetes.container.image=reg/spark-lora:1");
        assertOption(k8s, "--conf", "spark.kubernetes.file.upload.path=s3a://b/up");
        assertOption(k8s, "--properties-file", ROOT.resolve("conf/spark-kubernetes.conf").toString());

        List<String> gpuYarn = lines(submit(dir, "submit-gpu.sh", Map.of("SPARK_MASTER", "yarn", "HADOOP_CONF_DIR", "/etc/hadoop/conf"),
                "train", "--config", "hdfs:///r.yaml"));
        assertOption(gpuYarn, "--properties-file", ROOT.resolve("conf/spark-gpu.conf").toString());
        assertOption(gpuYarn, "--files", ROOT.resolve("conf/log4j2.properties") + "," + ROOT.resolve("conf/gpu/discover-gpus.sh"));
        assertOption(gpuYarn, "--conf", "spark.executor.resource.gpu.discoveryScript=./discover-gpus.sh");
        assertOption(gpuYarn, "--class", "io.sparklora.jobs.TrainJob");

        List<String> gpuK8s = lines(submit(dir, "submit-gpu.sh", Map.of("SPARK_MASTER", "k8s://https://api:6443",
                "SPARK_LORA_JAR", "local:///opt/spark-lora/spark-lora-jobs.jar"), "pipeline", "--config", "hdfs:///r.yaml"));
        assertOption(gpuK8s, "--conf", "spark.executor.resource.gpu.discoveryScript=/opt/spark-lora/conf/gpu/discover-gpus.sh");
        assertTrue(gpuK8s.contains("local:///opt/spark-lora/spark-lora-jobs.jar"), gpuK8s.toString());
    }

    /**
     * Without SPARK_LORA_JAR each script submits its build's jar of this checkout: the CPU jar, or for submit-gpu.sh the
     * -Pcuda build's jobs/target/cuda/spark-lora-jobs-cuda.jar. Either it is there and is what spark-submit gets, or the
     * script says which jar is missing and how to build it.
     */
    @Test
    void submitScriptsDefaultToTheirBuildsJar(@TempDir Path dir) throws Exception {
        Map<String, String> env = Map.of("SPARK_LORA_JAR", "", "SPARK_MASTER", "yarn", "HADOOP_CONF_DIR", "/etc/hadoop/conf");
        for (String[] c : List.of(new String[]{"submit-yarn.sh", "jobs/target/spark-lora-jobs.jar", "mvn -B -DskipTests package"},
                new String[]{"submit-gpu.sh", "jobs/target/cuda/spark-lora-jobs-cuda.jar", "mvn -B -DskipTests package -Pcuda"})) {
            Path jar = ROOT.resolve(c[1]);
            Run r = submit(dir, c[0], env, "train", "--config", "hdfs:///r.yaml");
            if (Files.isRegularFile(jar)) {
                assertTrue(lines(r).contains(jar.toString()), c[0] + " should submit " + jar + ": " + r.out());
            } else {
                assertEquals(1, r.code(), c[0] + ": " + r.err());
                assertTrue(r.err().contains(jar + " not found") && r.err().contains(c[2]), c[0] + ": " + r.err());
            }
        }
    }

    /**
     * The scripts pass conf/log4j2.properties: shipped with --files, and appended to the properties file's Java
     * options (which stay equal to conf/jvm.options in the file, as the test above checks). Executors on YARN and
     * Kubernetes read the shipped copy in their working directory; on standalone they start before files arrive
     * and read the checkout's path, as the driver does.
     */
    @Test
    void submitScriptsPassTheLog4jFileToDriverAndExecutors(@TempDir Path dir) throws Exception {
        String jvm = String.join(" ", Files.readAllLines(ROOT.resolve("conf/jvm.options")).stream()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList());
        String log4j = ROOT.resolve("conf/log4j2.properties").toString();
        List<String> standalone = lines(submit(dir, "submit-standalone.sh", Map.of(), "train", "--config", "x.yaml"));
        assertOption(standalone, "--files", log4j);
        assertOption(standalone, "--conf", "spark.driver.extraJavaOptions=" + jvm + " -Dlog4j2.configurationFile=file:" + log4j);
        assertOption(standalone, "--conf", "spark.executor.extraJavaOptions=" + jvm + " -Dlog4j2.configurationFile=file:" + log4j);
        List<String> yarn = lines(submit(dir, "submit-yarn.sh", Map.of("HADOOP_CONF_DIR", "/etc/hadoop/conf"), "train", "--config", "x.yaml"));
        assertOption(yarn, "--files", log4j);
        assertOption(yarn, "--conf", "spark.executor.extraJavaOptions=" + jvm + " -Dlog4j2.configurationFile=log4j2.properties");
        assertEquals(1, yarn.stream().filter("--files"::equals).count(), "one --files: spark-submit keeps only the last");
    }

    @Test
    void standaloneScriptSubmitsInClusterDeployModeOnRequest(@TempDir Path dir) throws Exception {
        List<String> client = lines(submit(dir, "submit-standalone.sh", Map.of("SPARK_MASTER", "spark://m:7077"), "train", "--config", "x.yaml"));
        assertOption(client, "--deploy-mode", "client");
        assertOption(client, "--conf", "spark.driver.host=driver.example.com");
        assertOption(client, "--conf", "spark.lora.masterWebUi=http://m:8080");
        for (Run r : List.of(submit(dir, "submit-standalone.sh", Map.of("SPARK_MASTER", "spark://m:7077"), "--deploy-mode", "cluster", "train", "--config", "x.yaml"),
                submit(dir, "submit-standalone.sh", Map.of("SPARK_MASTER", "spark://m:7077", "SPARK_DEPLOY_MODE", "cluster"), "train", "--config", "x.yaml"))) {
            List<String> cluster = lines(r);
            assertOption(cluster, "--deploy-mode", "cluster");
            assertOption(cluster, "--conf", "spark.standalone.submit.waitAppCompletion=true");
            assertTrue(cluster.stream().noneMatch(a -> a.startsWith("spark.driver.host=")), "the driver runs on a worker: " + cluster);
            assertEquals(List.of("--config", "x.yaml"), cluster.subList(cluster.size() - 2, cluster.size()));
        }
        Run bad = submit(dir, "submit-standalone.sh", Map.of(), "--deploy-mode", "yarn", "train", "--config", "x.yaml");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--deploy-mode must be client or cluster"), bad.err());
    }

    @Test
    void submitScriptsRefuseWrongArgumentsWithTheUsage(@TempDir Path dir) throws Exception {
        for (String script : List.of("submit-standalone.sh", "submit-yarn.sh", "submit-kubernetes.sh", "submit-gpu.sh")) {
            for (String[] args : List.of(new String[]{}, new String[]{"finetune", "--config", "x.yaml"}, new String[]{"train"},
                    new String[]{"train", "--config"}, new String[]{"train", "--config", "--fresh"})) {
                Run r = submit(dir, script, Map.of("HADOOP_CONF_DIR", "/etc/hadoop/conf"), args);
                assertEquals(2, r.code(), script + " " + String.join(" ", args) + ": " + r.err());
                assertTrue(r.err().contains("usage: " + script + " STAGE --config URI"), r.err());
                assertEquals("", r.out(), "spark-submit must not run");
            }
            Run help = submit(dir, script, Map.of(), "--help");
            assertEquals(0, help.code());
            assertTrue(help.err().contains("tokenize | train | lora-drop | evaluate | pipeline"), help.err());
        }
        Run noHadoop = submit(dir, "submit-yarn.sh", Map.of(), "train", "--config", "hdfs:///r.yaml");
        assertEquals(2, noHadoop.code());
        assertTrue(noHadoop.err().contains("HADOOP_CONF_DIR"), noHadoop.err());
        Run noJar = submit(dir, "submit-standalone.sh", Map.of("SPARK_LORA_JAR", dir.resolve("missing.jar").toString()), "train", "--config", "x.yaml");
        assertEquals(1, noJar.code());
        assertTrue(noJar.err().contains("mvn -B -DskipTests package"), noJar.err());
        Run k8sLocalJar = submit(dir, "submit-kubernetes.sh", Map.of(), "train", "--config", "x.yaml");
        assertEquals(2, k8sLocalJar.code());
        assertTrue(k8sLocalJar.err().contains("SPARK_LORA_UPLOAD_PATH"), k8sLocalJar.err());
    }
}
