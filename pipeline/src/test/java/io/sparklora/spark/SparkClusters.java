package io.sparklora.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Spark contexts for tests whose executors must be separate JVMs, as on a real cluster: Spark's
 * {@code local-cluster[N,C,M]} master starts a standalone Master and N Workers inside the test JVM, and
 * every Worker launches its executor as a child process ({@code CoarseGrainedExecutorBackend}), exactly
 * as a standalone cluster does. Tasks therefore cross a real process boundary: closures and results are
 * serialized, statics are not shared, and each executor loads ND4J itself.
 *
 * <p>What local-cluster needs outside Spark's own build (found in Spark 3.5.3's Worker and
 * spark-launcher's AbstractCommandBuilder, which builds the executor command):
 * <ul>
 *   <li>a Spark home for the Workers: a Worker takes {@code $SPARK_HOME} (or the working directory),
 *       except when the system property {@code spark.testing} is set, then {@code spark.test.home}. A test
 *       cannot set environment variables, so both properties are set while the context starts (the Workers
 *       read them in their constructors) and restored afterwards. The home is a temporary directory holding
 *       an empty {@code jars/}: the launcher puts {@code $SPARK_HOME/jars/*} on the executor class path and
 *       fails when that directory is missing;</li>
 *   <li>{@code SPARK_SCALA_VERSION} in the executor environment ({@code spark.executorEnv.*}, which is also
 *       the launcher's environment): without it the launcher looks for Spark's build directories
 *       ({@code launcher/target/scala-2.1x}) and fails with "Cannot find any build directories.";</li>
 *   <li>the test JVM's class path as {@code spark.executor.extraClassPath} (the executors have no Spark
 *       distribution: Spark, Scala, ND4J and the test classes all come from there). It is the union of
 *       {@code java.class.path} (under Surefire a manifest-only jar naming every entry) and the URLs of the
 *       context class loaders (the JUnit console launcher loads tests through a URLClassLoader);</li>
 *   <li>the JVM flags of {@code conf/jvm.options} (--add-opens for Spark and ND4J on Java 17) as
 *       {@code spark.executor.extraJavaOptions};</li>
 *   <li>{@code spark.executor.memory} no larger than the Worker's memory M, else the master never places an
 *       executor; and M at least 512 (Spark refuses executors with less than 450 MiB * 1.5 of heap).</li>
 * </ul>
 * The context returned has all {@code executors} registered, so tasks spread over them at once.
 */
public final class SparkClusters {
    private static Path fakeSparkHome;

    private SparkClusters() {}

    /**
     * Starts {@code local-cluster[executors, coresPerExecutor, memoryMb]}: one Worker per executor, each
     * with {@code coresPerExecutor} cores and {@code memoryMb} MiB, each running one executor JVM with all
     * of it. {@code extraConf} is applied last and overrides everything set here (add
     * {@code spark.executor.extraJavaOptions} flags to the defaults via {@link #executorJavaOptions()}).
     * Blocks until every executor has registered (at most 60 s). Stop the context to stop the cluster.
     */
    public static JavaSparkContext localCluster(int executors, int coresPerExecutor, int memoryMb, Map<String, String> extraConf) {
        if (executors < 1 || coresPerExecutor < 1) throw new IllegalArgumentException("executors and cores must be positive");
        if (memoryMb < 512) throw new IllegalArgumentException("memoryMb must be at least 512 (Spark's minimum executor heap)");
        checkNettyIsOneVersion();
        String classPath = testClassPath();
        SparkConf conf = new SparkConf()
                .setAppName("spark-lora-test-cluster")
                .setMaster("local-cluster[" + executors + "," + coresPerExecutor + "," + memoryMb + "]")
                .set("spark.executor.memory", memoryMb + "m")
                .set("spark.executor.cores", String.valueOf(coresPerExecutor))
                .set("spark.executor.extraClassPath", classPath)
                .set("spark.driver.extraClassPath", classPath)
                .set("spark.executor.extraJavaOptions", executorJavaOptions())
                .set("spark.executorEnv.SPARK_SCALA_VERSION", scalaBinaryVersion())
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.ui.showConsoleProgress", "false");
        extraConf.forEach(conf::set);
        SparkSetup.defaults(conf);

        JavaSparkContext sc;
        String home = fakeSparkHome().toString();
        synchronized (System.class) {
            String oldTesting = System.getProperty("spark.testing");
            String oldHome = System.getProperty("spark.test.home");
            System.setProperty("spark.testing", "true");
            System.setProperty("spark.test.home", home);
            try {
                sc = new JavaSparkContext(conf);
            } finally {
                restore("spark.testing", oldTesting);
                restore("spark.test.home", oldHome);
            }
        }
        try {
            awaitExecutors(sc, executors, 60_000);
        } catch (RuntimeException | Error e) {
            sc.stop();
            throw e;
        }
        return sc;
    }

    /**
     * Spark's RPC between JVMs (driver, master, workers, executors) needs all of netty at one version; in one
     * JVM (local[n]) the mismatch goes unnoticed. Fails fast with the cause instead of a cluster that never
     * gets executors (the driver's first message to the master dies with
     * {@code NoClassDefFoundError: io/netty/util/Recycler$EnhancedHandle}).
     */
    static void checkNettyIsOneVersion() {
        Map<String, io.netty.util.Version> versions = io.netty.util.Version.identify();
        io.netty.util.Version common = versions.get("netty-common");
        io.netty.util.Version transport = versions.get("netty-transport");
        if (common != null && transport != null && !common.artifactVersion().equals(transport.artifactVersion())) {
            throw new IllegalStateException("netty-common " + common.artifactVersion() + " but netty-transport "
                    + transport.artifactVersion() + " on the test class path: Spark's RPC between JVMs fails"
                    + " (NoClassDefFoundError io/netty/util/Recycler$EnhancedHandle). A dependency nearer than Spark"
                    + " (arrow-vector) brings the older netty-common; pin io.netty:netty-common to Spark's version ("
                    + transport.artifactVersion() + ") in the root pom's dependencyManagement.");
        }
    }

    /** The --add-opens flags etc. of conf/jvm.options, space-separated (found from the working directory up). */
    public static String executorJavaOptions() {
        Path options = findUp("conf/jvm.options");
        if (options != null) {
            try {
                return String.join(" ", Files.readAllLines(options).stream().map(String::strip)
                        .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        // not run from the checkout: pass on this JVM's own module flags
        return String.join(" ", ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                .filter(a -> a.startsWith("--add-opens") || a.startsWith("--add-exports") || a.startsWith("-Djdk.reflect")).toList());
    }

    /** This JVM's class path as executors need it: java.class.path plus the context class loaders' URLs. */
    public static String testClassPath() {
        Set<String> entries = new LinkedHashSet<>();
        for (String e : System.getProperty("java.class.path", "").split(File.pathSeparator)) {
            if (!e.isBlank() && new File(e).exists()) entries.add(new File(e).getAbsolutePath());
        }
        List<ClassLoader> loaders = new ArrayList<>();
        for (ClassLoader cl = Thread.currentThread().getContextClassLoader(); cl != null; cl = cl.getParent()) loaders.add(cl);
        for (ClassLoader cl = SparkClusters.class.getClassLoader(); cl != null; cl = cl.getParent()) loaders.add(cl);
        for (ClassLoader cl : loaders) {
            if (!(cl instanceof URLClassLoader u)) continue;
            for (URL url : u.getURLs()) {
                if (!"file".equals(url.getProtocol())) continue;
                try {
                    File f = new File(url.toURI());
                    if (f.exists()) entries.add(f.getAbsolutePath());
                } catch (URISyntaxException | IllegalArgumentException ignored) {
                    // not a plain file URL
                }
            }
        }
        return String.join(File.pathSeparator, entries);
    }

    private static void awaitExecutors(JavaSparkContext sc, int executors, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (registeredExecutors(sc) < executors) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("local-cluster: only " + registeredExecutors(sc) + " of " + executors
                        + " executors registered within " + timeoutMs / 1000 + " s; the executors' stderr is in the"
                        + " Workers' temporary directories (worker*/app-*/N/stderr under java.io.tmpdir)");
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for executors", e);
            }
        }
    }

    /** Executors registered with the driver (the driver itself not counted). */
    public static int registeredExecutors(JavaSparkContext sc) {
        return sc.sc().statusTracker().getExecutorInfos().length - 1;
    }

    private static synchronized Path fakeSparkHome() {
        if (fakeSparkHome == null) {
            try {
                Path home = Files.createTempDirectory("spark-lora-spark-home");
                Files.createDirectories(home.resolve("jars"));
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(home)));
                fakeSparkHome = home;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return fakeSparkHome;
    }

    private static String scalaBinaryVersion() {
        String v = scala.util.Properties.versionNumberString();
        String[] p = v.split("\\.");
        return p[0] + "." + p[1];
    }

    private static Path findUp(String relative) {
        for (Path dir = Path.of(System.getProperty("user.dir")).toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path p = dir.resolve(relative);
            if (Files.isRegularFile(p)) return p;
        }
        return null;
    }

    private static void restore(String key, String old) {
        if (old == null) System.clearProperty(key);
        else System.setProperty(key, old);
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // temporary directory: best effort
        }
    }
}
