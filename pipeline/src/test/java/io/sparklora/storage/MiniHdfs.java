package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * A real HDFS for tests: Hadoop's MiniDFSCluster (from hadoop-client-minicluster, whose dependencies are
 * shaded under {@code org.apache.hadoop.shaded}, so it lives beside Spark's jars in one JVM) with one
 * NameNode and one DataNode in a temporary directory, on free ports, web UIs on free ports too.
 *
 * <pre>{@code
 * try (MiniHdfs hdfs = MiniHdfs.start()) {
 *     HadoopFiles.writeString(hdfs.conf(), hdfs.uri("/runs/a.txt"), "hello");
 * }
 * }</pre>
 */
public final class MiniHdfs implements AutoCloseable {
    private final Path baseDir;
    private final MiniDFSCluster cluster;
    private final URI root;

    private MiniHdfs(Path baseDir, MiniDFSCluster cluster) {
        this.baseDir = baseDir;
        this.cluster = cluster;
        this.root = URI.create("hdfs://localhost:" + cluster.getNameNodePort());
    }

    /** Starts a one-DataNode HDFS in a fresh temporary directory and waits until it is writable. */
    public static MiniHdfs start() throws IOException {
        Path base = Files.createTempDirectory("spark-lora-minihdfs");
        Configuration conf = new Configuration();
        // one DataNode: blocks cannot have more replicas than that
        conf.setInt("dfs.replication", 1);
        conf.setInt("dfs.namenode.replication.min", 1);
        conf.setBoolean("dfs.permissions.enabled", true);
        // small blocks, so that the tests also cross block boundaries
        conf.setLong("dfs.blocksize", 1024 * 1024);
        conf.setInt("dfs.bytes-per-checksum", 512);
        try {
            MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, base.toFile())
                    .numDataNodes(1)
                    .format(true)
                    .build();
            cluster.waitActive();
            return new MiniHdfs(base, cluster);
        } catch (IOException | RuntimeException e) {
            deleteTree(base);
            throw e;
        }
    }

    /** {@code hdfs://localhost:PORT/path} (a missing leading slash is added). */
    public String uri(String path) {
        return root + (path.startsWith("/") ? path : "/" + path);
    }

    /** The NameNode's address, {@code hdfs://localhost:PORT}. */
    public URI root() {
        return root;
    }

    /**
     * A Hadoop configuration for clients of this HDFS: the cluster's settings, with {@code fs.defaultFS}
     * pointing at it (so bare paths like {@code /a} are on HDFS too; HadoopFiles itself always passes full URIs).
     * A fresh copy each call.
     */
    public Configuration conf() {
        Configuration conf = new Configuration(cluster.getConfiguration(0));
        conf.set("fs.defaultFS", root.toString());
        // a fresh client per call: Hadoop caches clients by scheme and host:port, and an earlier test's client of another
        // cluster that had the same port (with its other settings, such as a 128 MiB block size) would be handed out
        conf.setBoolean("fs.hdfs.impl.disable.cache", true);
        return conf;
    }

    /** The HDFS client for this cluster (cached by Hadoop; closed by {@link #close()}). */
    public FileSystem fs() {
        try {
            return FileSystem.get(root, conf());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public MiniDFSCluster cluster() {
        return cluster;
    }

    /** Closes this cluster's cached clients, stops the cluster and deletes its directory. */
    @Override
    public void close() {
        try {
            FileSystem.get(root, conf()).close(); // removes it from Hadoop's FileSystem cache
        } catch (IOException ignored) {
            // the cluster goes away anyway
        }
        cluster.shutdown(true);
        deleteTree(baseDir);
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // temporary directory: best effort
        }
    }
}
