package io.sparklora.storage;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.util.Progressable;

import java.io.IOException;
import java.util.EnumSet;
import java.util.regex.Pattern;

/**
 * The HDFS client, with a hook for tests: once a file whose path matches an armed pattern has received a given
 * number of bytes, an action runs in the writing thread (stopping the DataNode, in {@code DataNodeLossTest}),
 * and the write goes on into the real HDFS stream, which then fails as it does when a DataNode dies mid-block.
 * Deterministic: the fault lands at that byte of that file, whatever the timing. Used through
 * {@link #register}, which makes it the {@code hdfs://} implementation of one client configuration.
 */
public class DataNodeStoppingFileSystem extends DistributedFileSystem {
    private static Pattern armed;
    private static long afterBytes;
    private static Runnable action;

    /** {@code conf}'s hdfs:// clients become this class (uncached, so that no plain client is reused). */
    public static Configuration register(Configuration conf) {
        conf.set("fs.hdfs.impl", DataNodeStoppingFileSystem.class.getName());
        conf.setBoolean("fs.hdfs.impl.disable.cache", true);
        return conf;
    }

    /** The next file created whose path matches {@code pathRegex} runs {@code action} after {@code bytes} bytes. */
    public static synchronized void arm(String pathRegex, long bytes, Runnable whenReached) {
        armed = Pattern.compile(pathRegex);
        afterBytes = bytes;
        action = whenReached;
    }

    public static synchronized void disarm() {
        armed = null;
        action = null;
    }

    /** The action of the armed pattern, taken (so it runs once) when {@code f} matches it. */
    private static synchronized Runnable take(Path f) {
        if (armed == null || !armed.matcher(f.toUri().getPath()).find()) return null;
        Runnable a = action;
        armed = null;
        action = null;
        return a;
    }

    private FSDataOutputStream hooked(Path f, FSDataOutputStream out) throws IOException {
        Runnable a = take(f);
        return a == null ? out : new FSDataOutputStream(new HookStream(out, afterBytes, a), statistics);
    }

    @Override
    public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite, int bufferSize, short replication,
                                     long blockSize, Progressable progress) throws IOException {
        return hooked(f, super.create(f, permission, overwrite, bufferSize, replication, blockSize, progress));
    }

    @Override
    public FSDataOutputStream createNonRecursive(Path f, FsPermission permission, EnumSet<CreateFlag> flags, int bufferSize,
                                                 short replication, long blockSize, Progressable progress) throws IOException {
        return hooked(f, super.createNonRecursive(f, permission, flags, bufferSize, replication, blockSize, progress));
    }

    /** Passes everything on; runs the action once, when the byte count is reached. */
    private static final class HookStream extends ForwardingSyncableStream {
        private long room;
        private Runnable action;

        HookStream(FSDataOutputStream out, long room, Runnable action) {
            super(out);
            this.room = room;
            this.action = action;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (action != null && len >= room) {
                out.write(b, off, (int) room);
                hflush();        // these bytes reached the DataNode: the fault lands mid-block
                Runnable a = action;
                action = null;
                a.run();
                out.write(b, off + (int) room, len - (int) room);
                return;
            }
            if (action != null) room -= len;
            out.write(b, off, len);
        }
    }
}
