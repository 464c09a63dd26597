package io.sparklora.quant;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A 2-D weight held in NF4, immutable and shareable between threads: the packed codes (two per byte, high nibble
 * first, row-major over [rows, cols]) and one absmax per {@link Nf4#BLOCK} elements, either in fp32 or
 * double-quantized ({@link DoubleQuant}). This is bitsandbytes' {@code Params4bit} content; a linear layer's weight
 * is held as [out, in] (nn.Linear's layout; GPT-2's Conv1D weights are transposed before quantizing, as
 * transformers does).
 *
 * <p>The packed codes live in a {@link ByteBuffer} outside the Java heap: a direct buffer when quantized on load, or a
 * read-only slice of a memory-mapped quantized checkpoint, which the operating system may page out and back in.
 *
 * <p>Bytes held: ⌈n/2⌉ for the codes, plus 4 per block without double quantization (4 + 32/64 = 4.5 bits per
 * parameter), or 1 per block, 4 per 256 blocks and 4 for the offset with it (4 + 8/64 + 32/(64·256) ≈ 4.127).
 */
public final class Nf4Tensor {
    private final int rows;
    private final int cols;
    private final ByteBuffer packed;       // read-only, absolute reads only
    private final float[] absmax;          // fp32 absmax per block, or null when double-quantized
    private final DoubleQuant dq;          // double-quantized absmax, or null
    private final String sourceDtype;      // the checkpoint's floating-point type: float32, float16 or bfloat16

    /**
     * @param packed      ⌈rows·cols/2⌉ bytes of codes (position 0 to limit)
     * @param absmax      one fp32 per block, or null when {@code dq} is given
     * @param dq          the double-quantized absmax, or null when {@code absmax} is given
     * @param sourceDtype the checkpoint's floating-point type (bitsandbytes' quant-state {@code dtype})
     */
    public Nf4Tensor(int rows, int cols, ByteBuffer packed, float[] absmax, DoubleQuant dq, String sourceDtype) {
        long n = (long) rows * cols;
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException("NF4 tensor shape [" + rows + ", " + cols + "] is empty");
        if (packed.remaining() != (n + 1) / 2) {
            throw new IllegalArgumentException("NF4 tensor [" + rows + ", " + cols + "] needs " + (n + 1) / 2 + " packed bytes, got " + packed.remaining());
        }
        if ((absmax == null) == (dq == null)) throw new IllegalArgumentException("give the absmax in fp32 or double-quantized, exactly one");
        int blocks = Nf4.blocks(n);
        int have = absmax != null ? absmax.length : dq.codes().length;
        if (have != blocks) throw new IllegalArgumentException("NF4 tensor [" + rows + ", " + cols + "] has " + blocks + " blocks but " + have + " absmax values");
        if (dq != null && dq.nestedAbsmax().length != (blocks + DoubleQuant.BLOCK - 1) / DoubleQuant.BLOCK) {
            throw new IllegalArgumentException("NF4 tensor [" + rows + ", " + cols + "]: " + dq.nestedAbsmax().length + " nested absmax values for "
                    + blocks + " blocks, expected " + (blocks + DoubleQuant.BLOCK - 1) / DoubleQuant.BLOCK);
        }
        this.rows = rows;
        this.cols = cols;
        this.packed = packed.slice().asReadOnlyBuffer();
        this.absmax = absmax;
        this.dq = dq;
        this.sourceDtype = sourceDtype;
    }

    /**
     * Quantizes a 2-D array (read row-major, as [rows, cols]) into NF4, with the absmax double-quantized when
     * {@code doubleQuant}; the codes go to a direct (off-heap) buffer.
     */
    public static Nf4Tensor quantize(INDArray w, boolean doubleQuant, String sourceDtype) {
        if (w.rank() != 2) throw new IllegalArgumentException("NF4 quantizes 2-D weights, got shape " + java.util.Arrays.toString(w.shape()));
        int rows = (int) w.size(0), cols = (int) w.size(1);
        INDArray c = w.dataType() == DataType.FLOAT && !w.isView() && w.ordering() == 'c' ? w : w.castTo(DataType.FLOAT).dup('c');
        float[] values = c.data().asFloat();
        if (c != w) io.sparklora.model.Tensors.release(c);
        float[] absmax = new float[Nf4.blocks(values.length)];
        byte[] codes = Nf4.quantize(values, absmax);
        ByteBuffer buf = ByteBuffer.allocateDirect(codes.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.put(codes).flip();
        return doubleQuant ? new Nf4Tensor(rows, cols, buf, null, DoubleQuant.of(absmax), sourceDtype)
                : new Nf4Tensor(rows, cols, buf, absmax, null, sourceDtype);
    }

    public int rows() { return rows; }
    public int cols() { return cols; }
    public long length() { return (long) rows * cols; }
    public int blocks() { return Nf4.blocks(length()); }
    public boolean doubleQuantized() { return dq != null; }
    public String sourceDtype() { return sourceDtype; }

    /** The packed codes (a read-only view, position 0). */
    public ByteBuffer packed() { return packed.duplicate(); }

    /** The packed codes copied onto the heap. */
    public byte[] packedBytes() {
        byte[] b = new byte[packed.capacity()];
        packed.duplicate().get(b);
        return b;
    }

    /** The fp32 absmax, or null when double-quantized. */
    public float[] absmaxFp32() { return absmax == null ? null : absmax.clone(); }

    /** The double-quantized absmax, or null. */
    public DoubleQuant doubleQuant() { return dq; }

    /** The absmax of block {@code b}, dequantized when double-quantized. */
    public float absmax(int b) { return absmax != null ? absmax[b] : dq.absmax(b); }

    /** Bytes this tensor holds: the packed codes and the absmax (fp32, or 8-bit codes plus the nested fp32 and the offset). */
    public long bytesHeld() { return packed.capacity() + (absmax != null ? 4L * absmax.length : dq.bytes()); }

    /** The bytes an NF4 tensor of n elements holds (see the class comment), without making one. */
    public static long bytesFor(long n, boolean doubleQuant) {
        long blocks = Nf4.blocks(n);
        return (n + 1) / 2 + (doubleQuant ? blocks + 4 * ((blocks + DoubleQuant.BLOCK - 1) / DoubleQuant.BLOCK) + 4 : 4 * blocks);
    }

    /** Bits per parameter from the bytes held. */
    public double bitsPerParameter() { return 8.0 * bytesHeld() / length(); }

    /**
     * Rows [r0, r1) dequantized into {@code out} (row-major, (r1 − r0)·cols floats from index 0): each element is
     * code[q]·absmax of its block, in fp32, as bitsandbytes' dequantize_4bit computes it.
     */
    public void dequantizeRows(int r0, int r1, float[] out) {
        long from = (long) r0 * cols, to = (long) r1 * cols;
        if (r0 < 0 || r1 > rows || r0 > r1) throw new IndexOutOfBoundsException("rows [" + r0 + ", " + r1 + ") of " + rows);
        if (out.length < to - from) throw new IllegalArgumentException("output holds " + out.length + " floats, rows need " + (to - from));
        float[] lut = new float[16];
        long i = from;
        int o = 0;
        while (i < to) {
            int b = (int) (i / Nf4.BLOCK);
            long end = Math.min(to, (long) (b + 1) * Nf4.BLOCK);
            float a = absmax(b);
            for (int k = 0; k < 16; k++) lut[k] = Nf4.CODE[k] * a;
            // an odd start takes the low nibble of its byte first; then whole bytes; then a lone high nibble
            if ((i & 1) == 1 && i < end) {
                out[o++] = lut[packed.get((int) (i >> 1)) & 0x0F];
                i++;
            }
            for (; i + 1 < end; i += 2) {
                int v = packed.get((int) (i >> 1)) & 0xFF;
                out[o++] = lut[v >>> 4];
                out[o++] = lut[v & 0x0F];
            }
            if (i < end) {
                out[o++] = lut[(packed.get((int) (i >> 1)) & 0xFF) >>> 4];
                i++;
            }
        }
    }

    /** The whole tensor dequantized, a new fp32 [rows, cols] array (tests, exports and merges). */
    public INDArray dequantize() {
        float[] all = new float[Math.toIntExact(length())];
        dequantizeRows(0, rows, all);
        return Nd4j.createFromArray(all).reshape(rows, cols);
    }
}
