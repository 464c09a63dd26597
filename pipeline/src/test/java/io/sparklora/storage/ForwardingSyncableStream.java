package io.sparklora.storage;

import org.apache.hadoop.fs.Syncable;

import java.io.IOException;
import java.io.OutputStream;

/**
 * An output stream that passes everything on to {@code out}, for the test file systems that act when a file has
 * received a chosen number of bytes ({@link DataNodeStoppingFileSystem}, {@link FullDiskFileSystem}): they override
 * {@link #write(byte[], int, int)} only. {@code hflush}/{@code hsync} reach {@code out} where it is {@link Syncable},
 * else flush it.
 */
abstract class ForwardingSyncableStream extends OutputStream implements Syncable {
    protected final OutputStream out;

    ForwardingSyncableStream(OutputStream out) {
        this.out = out;
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[]{(byte) b}, 0, 1);
    }

    @Override
    public abstract void write(byte[] b, int off, int len) throws IOException;

    @Override
    public void flush() throws IOException {
        out.flush();
    }

    @Override
    public void hflush() throws IOException {
        if (out instanceof Syncable s) s.hflush(); else out.flush();
    }

    @Override
    public void hsync() throws IOException {
        if (out instanceof Syncable s) s.hsync(); else out.flush();
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
