package io.sparklora.storage;

import org.apache.hadoop.fs.FSDataOutputStream;

import java.io.IOException;
import java.io.OutputStream;

/**
 * A file system's output stream whose failures name the file being written ({@link StorageWriteException}):
 * a full disk or a lost DataNode otherwise reports only "No space left on device" or "All datanodes are bad".
 */
public final class TargetNamingOutputStream extends OutputStream {
    private final FSDataOutputStream out;
    private final String target;

    /** {@code target} is the name the content will have once complete (not the temporary it goes to). */
    public TargetNamingOutputStream(FSDataOutputStream out, String target) {
        this.out = out;
        this.target = target;
    }

    @Override
    public void write(int b) throws IOException {
        try {
            out.write(b);
        } catch (IOException e) {
            throw StorageWriteException.of(target, e);
        }
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        try {
            out.write(b, off, len);
        } catch (IOException e) {
            throw StorageWriteException.of(target, e);
        }
    }

    @Override
    public void flush() throws IOException {
        try {
            out.flush();
        } catch (IOException e) {
            throw StorageWriteException.of(target, e);
        }
    }

    /** Forces the content to the storage's disks (HDFS: to every DataNode of the pipeline). */
    public void hsync() throws IOException {
        try {
            out.hsync();
        } catch (IOException e) {
            throw StorageWriteException.of(target, e);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            out.close();
        } catch (IOException e) {
            throw StorageWriteException.of(target, e);
        }
    }
}
