package io.sparklora.storage;

import java.io.IOException;

/**
 * A write to storage failed (a full disk, a lost DataNode, a refused rename): the message names the file or
 * directory being written, by its final name rather than a temporary's, followed by the storage's own message,
 * for example {@code cannot write hdfs://nn/runs/a/checkpoints/round-000004/optimizer.safetensors: No space
 * left on device}. The cause is the storage's exception. Whatever was half-written has been removed by the time
 * a writer of {@link HadoopFiles} throws it.
 */
public final class StorageWriteException extends IOException {
    private static final long serialVersionUID = 1L;
    private final String target;

    public StorageWriteException(String target, IOException cause) {
        super("cannot write " + target + ": " + cause.getMessage(), cause);
        this.target = target;
    }

    /** What was being written: a file, or a directory (with the file in it, where known). */
    public String target() {
        return target;
    }

    /** {@code e} if it already names what was being written, else a StorageWriteException naming {@code target}. */
    public static StorageWriteException of(String target, IOException e) {
        return e instanceof StorageWriteException s ? s : new StorageWriteException(target, e);
    }

    /**
     * The same failure named by where the file would have ended up: a target inside the temporary directory
     * {@code temporary} is renamed to the same place under {@code destination}.
     */
    StorageWriteException movedTo(String temporary, String destination) {
        if (!target.equals(temporary) && !target.startsWith(temporary + "/")) return this;
        StorageWriteException moved = new StorageWriteException(destination + target.substring(temporary.length()), (IOException) getCause());
        moved.setStackTrace(getStackTrace());
        return moved;
    }
}
