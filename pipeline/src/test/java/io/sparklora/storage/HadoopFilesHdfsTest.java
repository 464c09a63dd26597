package io.sparklora.storage;

import io.sparklora.spark.SparkSetup;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** HadoopFiles on a real HDFS (MiniDFSCluster): what stages do when their paths are hdfs:// URIs. */
class HadoopFilesHdfsTest {
    private static MiniHdfs hdfs;
    private static final AtomicInteger DIRS = new AtomicInteger();

    @BeforeAll
    static void startHdfs() throws IOException {
        long t0 = System.nanoTime();
        hdfs = MiniHdfs.start();
        System.out.printf("HadoopFilesHdfsTest: MiniDFSCluster up in %.1f s at %s%n", (System.nanoTime() - t0) / 1e9, hdfs.root());
    }

    @AfterAll
    static void stopHdfs() {
        if (hdfs != null) hdfs.close();
    }

    /** A fresh directory per test. */
    private static String dir() {
        return hdfs.uri("/t" + DIRS.incrementAndGet());
    }

    /** Every name under {@code dirUri}, hidden ones included (temporaries start with a dot). */
    private static List<String> rawNames(String dirUri) throws IOException {
        FileSystem fs = hdfs.fs();
        Path p = new Path(dirUri);
        if (!fs.exists(p)) return List.of();
        return Arrays.stream(fs.listStatus(p)).map(s -> s.getPath().getName()).sorted().toList();
    }

    @Test
    void uriAndConfPointAtTheCluster() throws IOException {
        assertTrue(hdfs.uri("/a/b").matches("hdfs://localhost:\\d+/a/b"), hdfs.uri("/a/b"));
        assertEquals(hdfs.uri("/a/b"), hdfs.uri("a/b"));
        Configuration conf = hdfs.conf();
        assertEquals(hdfs.root().toString(), conf.get("fs.defaultFS"));
        assertEquals("hdfs", HadoopFiles.fs(HadoopFiles.path(hdfs.uri("/")), conf).getScheme());
    }

    @Test
    void writeStringThenReadStringRoundTripsAndReplaces() throws IOException {
        Configuration conf = hdfs.conf();
        String d = dir();
        String f = d + "/nested/deeper/config.json";
        HadoopFiles.writeString(conf, f, "{\"a\": \"é\"}");
        assertTrue(HadoopFiles.exists(conf, f));
        assertEquals("{\"a\": \"é\"}", HadoopFiles.readString(conf, f));
        HadoopFiles.writeString(conf, f, "second");
        assertEquals("second", HadoopFiles.readString(conf, f));
        assertEquals(List.of("config.json"), rawNames(d + "/nested/deeper"), "no temporaries left behind");
    }

    @Test
    void writeOfSeveralBlocksIsReadBackWhole() throws IOException {
        Configuration conf = hdfs.conf();
        byte[] data = new byte[3 * 1024 * 1024 + 123]; // more than three 1 MiB blocks
        new Random(7).nextBytes(data);
        String f = dir() + "/shard-00000.bin";
        HadoopFiles.write(conf, f, out -> {
            for (int off = 0; off < data.length; off += 100_000) out.write(data, off, Math.min(100_000, data.length - off));
        });
        assertArrayEquals(data, HadoopFiles.readBytes(conf, f));
        FileStatus st = hdfs.fs().getFileStatus(new Path(f));
        assertEquals(data.length, st.getLen());
        assertTrue(hdfs.fs().getFileBlockLocations(st, 0, st.getLen()).length >= 4, "the file spans several HDFS blocks");
    }

    @Test
    void aFailingBodyLeavesNoFileAndNoTemporary() throws IOException {
        Configuration conf = hdfs.conf();
        String d = dir();
        String f = d + "/adapter_model.safetensors";
        IOException e = assertThrows(IOException.class, () -> HadoopFiles.write(conf, f, out -> {
            out.write(new byte[200_000]);
            throw new IOException("disk on fire");
        }));
        assertEquals("disk on fire", e.getMessage());
        assertFalse(HadoopFiles.exists(conf, f));
        assertEquals(List.of(), rawNames(d), "neither the file nor its temporary");

        RuntimeException r = assertThrows(RuntimeException.class, () -> HadoopFiles.write(conf, f, out -> {
            throw new IllegalStateException("bug in the writer");
        }));
        assertEquals("bug in the writer", r.getMessage());
        assertEquals(List.of(), rawNames(d));
    }

    @Test
    void aFailingBodyKeepsTheOldFile() throws IOException {
        Configuration conf = hdfs.conf();
        String d = dir();
        String f = d + "/metrics.json";
        HadoopFiles.writeString(conf, f, "old");
        assertThrows(IOException.class, () -> HadoopFiles.write(conf, f, out -> {
            out.write("new, but half".getBytes(StandardCharsets.UTF_8));
            throw new IOException("interrupted");
        }));
        assertEquals("old", HadoopFiles.readString(conf, f));
        assertEquals(List.of("metrics.json"), rawNames(d));
    }

    @Test
    void writeDirectoryAppearsWholeOrNotAtAll() throws IOException {
        Configuration conf = hdfs.conf();
        String d = dir();
        String target = d + "/checkpoint-100";
        HadoopFiles.writeDirectory(conf, target, (tmp, fs) -> {
            assertTrue(tmp.getName().startsWith(".checkpoint-100.tmp-"), tmp.toString());
            assertFalse(fs.exists(new Path(target)), "the target must not exist while the body runs");
            for (String n : List.of("b.bin", "a.json")) {
                try (OutputStream out = fs.create(new Path(tmp, n))) {
                    out.write(n.getBytes(StandardCharsets.UTF_8));
                }
            }
        });
        assertEquals(List.of("checkpoint-100"), rawNames(d));
        assertEquals("a.json", HadoopFiles.readString(conf, target + "/a.json"));
        assertEquals(List.of(target + "/a.json", target + "/b.bin"), HadoopFiles.listFiles(conf, target));

        // a second write replaces the directory as a whole: no file of the old one survives
        HadoopFiles.writeDirectory(conf, target, (tmp, fs) -> {
            try (OutputStream out = fs.create(new Path(tmp, "c.bin"))) {
                out.write(1);
            }
        });
        assertEquals(List.of(target + "/c.bin"), HadoopFiles.listFiles(conf, target));

        // a failing body leaves the last complete directory and no temporary
        IOException e = assertThrows(IOException.class, () -> HadoopFiles.writeDirectory(conf, target, (tmp, fs) -> {
            try (OutputStream out = fs.create(new Path(tmp, "partial.bin"))) {
                out.write(new byte[10_000]);
            }
            throw new IOException("preempted");
        }));
        assertEquals("preempted", e.getMessage());
        assertEquals(List.of("checkpoint-100"), rawNames(d));
        assertEquals(List.of(target + "/c.bin"), HadoopFiles.listFiles(conf, target));

        String never = d + "/checkpoint-200";
        assertThrows(IOException.class, () -> HadoopFiles.writeDirectory(conf, never, (tmp, fs) -> {
            throw new IOException("killed");
        }));
        assertFalse(HadoopFiles.exists(conf, never));
        assertEquals(List.of("checkpoint-100"), rawNames(d));
    }

    @Test
    void listFilesSkipsHiddenMarkerAndDirectoriesAndSortsByName() throws IOException {
        Configuration conf = hdfs.conf();
        String d = dir();
        assertEquals(List.of(), HadoopFiles.listFiles(conf, d + "/missing"));
        for (String n : List.of("part-00002.arrow", "part-00000.arrow", "part-00001.arrow")) {
            HadoopFiles.writeString(conf, d + "/" + n, n);
        }
        FileSystem fs = hdfs.fs();
        fs.create(new Path(d + "/.part-00003.arrow.tmp-123")).close(); // a writer still at work
        fs.create(new Path(d + "/_temporary")).close();
        fs.mkdirs(new Path(d + "/subdir"));
        assertFalse(HadoopFiles.isComplete(conf, d));
        HadoopFiles.markSuccess(conf, d);
        assertTrue(HadoopFiles.isComplete(conf, d));
        assertEquals(0, fs.getFileStatus(new Path(d + "/" + HadoopFiles.SUCCESS)).getLen());
        assertEquals(List.of(d + "/part-00000.arrow", d + "/part-00001.arrow", d + "/part-00002.arrow"),
                HadoopFiles.listFiles(conf, d));
        HadoopFiles.delete(conf, d);
        assertFalse(HadoopFiles.exists(conf, d));
        HadoopFiles.delete(conf, d); // deleting what is gone is fine
    }

    /** Spark and the minicluster in one JVM: tasks write through HadoopFiles, Spark reads the files back. */
    @Test
    void sparkTasksWriteToHdfsAndSparkReadsItBack() throws IOException {
        String d = dir();
        JavaSparkContext sc = SparkSetup.local(2);
        try {
            List<String> written = sc.parallelize(List.of(0, 1, 2, 3), 4).map(i -> {
                String f = d + "/part-" + i + ".txt";
                HadoopFiles.writeString(new Configuration(), f, "line " + i + "\n");
                return f;
            }).collect();
            assertEquals(4, written.size());
            HadoopFiles.markSuccess(hdfs.conf(), d);
            List<String> lines = sc.textFile(d + "/part-*.txt").collect().stream().sorted().toList();
            assertEquals(List.of("line 0", "line 1", "line 2", "line 3"), lines);
        } finally {
            sc.stop();
        }
        assertTrue(HadoopFiles.isComplete(hdfs.conf(), d));
        assertEquals(4, HadoopFiles.listFiles(hdfs.conf(), d).size());
    }
}
