package io.sparklora.spark.tokenize;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import io.sparklora.storage.StorageWriteException;
import io.sparklora.storage.TargetNamingOutputStream;

import java.io.IOException;
import java.io.OutputStream;
import java.util.UUID;

/**
 * A shard file being written by a task: content goes to a hidden temporary sibling that {@link #commit}
 * renames into place, so a failed or retried task never leaves half a shard. The temporary is created
 * without creating parent directories: when the driver has already given up on the stage and removed its
 * temporary output directory, a straggling task fails instead of bringing the directory back. A failure of
 * the storage (a full disk, a lost DataNode) is a {@link StorageWriteException} naming the shard.
 */
final class TokenizeOutputFile implements AutoCloseable {
    private final FileSystem fs;
    private final Path target;
    private final Path tmp;
    private final TargetNamingOutputStream out;
    private boolean committed;

    TokenizeOutputFile(FileSystem fs, Path target) throws IOException {
        this.fs = fs;
        this.target = target;
        this.tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
        try {
            this.out = new TargetNamingOutputStream(
                    fs.createNonRecursive(tmp, false, 1 << 16, fs.getDefaultReplication(tmp), fs.getDefaultBlockSize(tmp), null), target.toString());
        } catch (IOException e) {
            throw StorageWriteException.of(target.toString(), e);
        }
    }

    OutputStream stream() {
        return out;
    }

    /** Closes the file and renames it into place (replacing the file of an earlier attempt, if any). */
    void commit() throws IOException {
        out.hsync();
        out.close();
        try {
            if (fs.exists(target)) fs.delete(target, false);
            if (!fs.rename(tmp, target)) throw new IOException("cannot rename " + tmp + " to " + target);
        } catch (IOException e) {
            throw StorageWriteException.of(target.toString(), e);
        }
        committed = true;
    }

    /** Discards the temporary unless committed. */
    @Override
    public void close() {
        if (committed) return;
        try {
            out.close();
        } catch (IOException ignored) {
            // discarded anyway
        }
        try {
            fs.delete(tmp, false);
        } catch (IOException ignored) {
            // best effort: the task's own failure is the one worth reporting
        }
    }
}
