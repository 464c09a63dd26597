package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * An HDFS DataNode lost in the middle of a write (MiniDFSCluster with its one DataNode and replication 1, so that
 * no other node can take over the block): the DataNode is stopped by {@link DataNodeStoppingFileSystem} once a
 * chosen number of bytes of the file has reached it. The write must fail with an error naming the file by its
 * final name, leave neither a file at that name nor a temporary, keep an older complete version as it was, and
 * succeed once the DataNode is back.
 */
class DataNodeLossTest {
    private static MiniHdfs hdfs;
    private static final AtomicInteger DIRS = new AtomicInteger();
    private MiniDFSCluster.DataNodeProperties stopped;

    @BeforeAll
    static void startHdfs() throws IOException {
        hdfs = MiniHdfs.start();
    }

    @AfterAll
    static void stopHdfs() {
        if (hdfs != null) hdfs.close();
    }

    @AfterEach
    void restoreTheDataNode() throws IOException {
        DataNodeStoppingFileSystem.disarm();
        restartDataNode();
    }

    private void stopDataNode() {
        stopped = hdfs.cluster().stopDataNode(0);
    }

    private void restartDataNode() throws IOException {
        if (stopped == null) return;
        hdfs.cluster().restartDataNode(stopped, true);
        hdfs.cluster().waitActive();
        stopped = null;
    }

    /** A client whose writes can stop the DataNode. */
    private static Configuration conf() {
        return DataNodeStoppingFileSystem.register(hdfs.conf());
    }

    private static String dir() {
        return hdfs.uri("/loss" + DIRS.incrementAndGet());
    }

    /** Names under a directory as the NameNode lists them, hidden temporaries included (no DataNode needed). */
    private static List<String> rawNames(String dirUri) throws IOException {
        FileSystem fs = hdfs.fs();
        return Arrays.stream(fs.listStatus(new Path(dirUri))).map(s -> s.getPath().getName()).sorted().toList();
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void aDataNodeLostMidFileFailsTheWriteNamingTheFileAndKeepsTheOldVersion() throws IOException {
        Configuration conf = conf();
        String d = dir();
        String f = d + "/part-00000.arrow";
        HadoopFiles.writeString(conf, f, "the complete old version");
        byte[] data = random(3 * 1024 * 1024, 1); // three 1 MiB blocks: the DataNode goes in the middle of the second
        DataNodeStoppingFileSystem.arm("/\\.part-00000\\.arrow\\.tmp-", 1_500_000, this::stopDataNode);

        StorageWriteException e = assertThrows(StorageWriteException.class, () -> HadoopFiles.write(conf, f, out -> {
            for (int off = 0; off < data.length; off += 65536) out.write(data, off, Math.min(65536, data.length - off));
        }));
        assertNotNull(stopped, "the DataNode was stopped mid-write");
        System.out.println("DataNodeLossTest, file: " + e.getMessage());
        assertEquals(f, e.target());
        assertTrue(e.getMessage().startsWith("cannot write " + f + ": "), e.getMessage());
        assertInstanceOf(IOException.class, e.getCause());
        assertEquals(List.of("part-00000.arrow"), rawNames(d), "no temporary left, the old file in place");
        assertEquals("the complete old version".length(), hdfs.fs().getFileStatus(new Path(f)).getLen());

        restartDataNode();
        assertEquals("the complete old version", HadoopFiles.readString(conf, f));
        HadoopFiles.write(conf, f, out -> out.write(data));
        assertArrayEquals(data, HadoopFiles.readBytes(conf, f), "the write succeeds once the DataNode is back");
    }

    /** Checkpoints, adapters and models are written as directories copied from a local staging directory. */
    @Test
    void aDataNodeLostWhileADirectoryIsCopiedFailsNamingTheFileAndKeepsTheOldDirectory(@TempDir java.nio.file.Path tmp) throws IOException {
        Configuration conf = conf();
        String d = dir();
        String target = d + "/round-000002";
        byte[] oldWeights = random(1000, 2), newWeights = random(2 * 1024 * 1024 + 17, 3);
        HadoopFiles.writeDirectoryFromLocal(conf, target, local -> {
            Files.createDirectories(local);
            Files.writeString(local.resolve("state.json"), "{\"rounds_done\": 2}");
            Files.write(local.resolve("optimizer.safetensors"), oldWeights);
        });
        DataNodeStoppingFileSystem.arm("/\\.round-000002\\.tmp-[^/]+/optimizer\\.safetensors$", 1_100_000, this::stopDataNode);

        StorageWriteException e = assertThrows(StorageWriteException.class, () -> HadoopFiles.writeDirectoryFromLocal(conf, target, local -> {
            Files.createDirectories(local);
            Files.writeString(local.resolve("state.json"), "{\"rounds_done\": 2, \"again\": true}");
            Files.write(local.resolve("optimizer.safetensors"), newWeights);
        }));
        assertNotNull(stopped, "the DataNode was stopped mid-copy");
        System.out.println("DataNodeLossTest, directory: " + e.getMessage());
        assertEquals(target + "/optimizer.safetensors", e.target(), "named by its final place, not the temporary directory");
        assertTrue(e.getMessage().startsWith("cannot write " + target + "/optimizer.safetensors: "), e.getMessage());
        assertEquals(List.of("round-000002"), rawNames(d), "no temporary directory left");
        FileStatus[] old = hdfs.fs().listStatus(new Path(target));
        assertEquals(2, old.length);
        assertEquals(oldWeights.length, hdfs.fs().getFileStatus(new Path(target + "/optimizer.safetensors")).getLen(), "the old directory as it was");

        restartDataNode();
        assertArrayEquals(oldWeights, HadoopFiles.readBytes(conf, target + "/optimizer.safetensors"));
        HadoopFiles.writeDirectoryFromLocal(conf, target, local -> {
            Files.createDirectories(local);
            Files.write(local.resolve("optimizer.safetensors"), newWeights);
        });
        assertArrayEquals(newWeights, HadoopFiles.readBytes(conf, target + "/optimizer.safetensors"), "the write succeeds once the DataNode is back");
    }
}
