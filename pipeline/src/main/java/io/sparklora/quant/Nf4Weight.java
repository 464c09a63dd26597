package io.sparklora.quant;

import io.sparklora.model.BaseWeight;
import io.sparklora.model.DenseWeight;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.concurrency.AffinityManager;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A frozen linear weight held in NF4 ({@link Nf4Tensor}, [out, in]), computed with a tiled matmul that dequantizes
 * one tile of output rows at a time into a per-thread scratch buffer: no fp32 copy of the layer's weight ever exists.
 *
 * <p>Shapes: x [N, in] → y [N, out]. With Wq [out, in] split into row tiles W_t = Wq[r0:r1, :] (≤ {@link #tileElements()}
 * elements each):
 * <ul>
 *   <li>forward: y[:, r0:r1] = x · W_tᵀ. Every output element is one full dot product over {@code in}, exactly as the
 *       untiled product computes it, so logits equal those of the dequantized fp32 model.</li>
 *   <li>backward to the input: dx = Σ_t dy[:, r0:r1] · W_t (accumulated tile by tile).</li>
 * </ul>
 * The weight never trains. Its storage layout ({@link #transposed()}) is the model's (GPT-2's Conv1D [in, out],
 * nn.Linear [out, in]), so adapters see the same layout over NF4 as over fp32; only the codes are always [out, in],
 * bitsandbytes' order.
 *
 * <p>Dequantization runs on the host (libnd4j has no NF4 op): under the CUDA backend each tile is written on the host,
 * tagged as such, and copied to the device for its sgemm, which costs a host-to-device copy of every tile per pass.
 *
 * <p>{@link #mutableDense()} (a merge) dequantizes once into a private fp32 weight that this layer uses from then on:
 * a merged NF4 layer is full precision, since W0 + ΔW is not on the NF4 grid.
 */
public final class Nf4Weight implements BaseWeight {
    /** Default tile size in elements (4 MiB of fp32), settable with the system property {@code sparklora.nf4.tile}. */
    public static final int DEFAULT_TILE_ELEMENTS = Integer.getInteger("sparklora.nf4.tile", 1 << 20);

    private static final ThreadLocal<Scratch> SCRATCH = new ThreadLocal<>();

    private final String name;
    private final Nf4Tensor q;
    private final boolean transposed;
    private int tileElements;
    private DenseWeight dense;               // set once a merge made the weight dense

    /** One thread's tile buffer: dequantized on the heap, then copied into the native array gemm reads. */
    private static final class Scratch {
        final float[] heap;
        final INDArray nativeTile;
        final FloatBuffer view;

        Scratch(int elements) {
            heap = new float[elements];
            nativeTile = Nd4j.create(DataType.FLOAT, elements);
            view = floats(nativeTile);
        }
    }

    /**
     * @param name       the module name (for messages and the merged weight's checkpoint name)
     * @param q          the codes, [out, in]
     * @param transposed the model's storage layout: true for nn.Linear [out, in], false for Conv1D [in, out]
     */
    public Nf4Weight(String name, Nf4Tensor q, boolean transposed) {
        this(name, q, transposed, DEFAULT_TILE_ELEMENTS);
    }

    public Nf4Weight(String name, Nf4Tensor q, boolean transposed, int tileElements) {
        if (tileElements < 1) throw new IllegalArgumentException("tile size must be positive, got " + tileElements);
        this.name = name;
        this.q = q;
        this.transposed = transposed;
        this.tileElements = tileElements;
    }

    public Nf4Tensor codes() { return q; }
    public int tileElements() { return tileElements; }

    /** Sets the tile size in elements (the cost/memory trade-off of the tiled matmul; results do not depend on it for forward). */
    public void setTileElements(int elements) {
        if (elements < 1) throw new IllegalArgumentException("tile size must be positive, got " + elements);
        this.tileElements = elements;
    }

    @Override public int inFeatures() { return q.cols(); }
    @Override public int outFeatures() { return q.rows(); }
    @Override public boolean transposed() { return transposed; }
    @Override public boolean trainable() { return false; }
    @Override public DataType dataType() { return DataType.FLOAT; }
    @Override public boolean quantized() { return dense == null; }
    @Override public long bytesHeld() { return dense != null ? dense.bytesHeld() : q.bytesHeld(); }

    /** Rows per tile: as many whole output rows as fit in the tile size (at least one). */
    private int tileRows() { return Math.max(1, Math.min(q.rows(), tileElements / q.cols())); }

    /** Rows [r0, r1) of Wq, dequantized into this thread's scratch: a [r1 − r0, in] view valid until the next tile. */
    private INDArray tile(int r0, int r1) {
        int n = (r1 - r0) * q.cols();
        Scratch s = SCRATCH.get();
        if (s == null || s.heap.length < n) {
            s = new Scratch(Math.max(n, tileElements));
            SCRATCH.set(s);
        }
        q.dequantizeRows(r0, r1, s.heap);
        s.view.put(0, s.heap, 0, n);
        written(s.nativeTile);
        DataBuffer buf = s.nativeTile.data();
        return Nd4j.create(buf, new long[]{r1 - r0, q.cols()}, new long[]{q.cols(), 1}, 0, 'c', DataType.FLOAT);
    }

    @Override
    public INDArray forward(INDArray x) {
        if (dense != null) return dense.forward(x);
        long n = x.size(0);
        int rows = tileRows();
        if (rows == q.rows()) return Nd4j.gemm(x, tile(0, rows), false, true);
        INDArray y = Nd4j.create(DataType.FLOAT, n, q.rows());
        for (int r0 = 0; r0 < q.rows(); r0 += rows) {
            int r1 = Math.min(q.rows(), r0 + rows);
            INDArray part = Nd4j.gemm(x, tile(r0, r1), false, true);                     // [N, r1 − r0]
            copyColumns(part, y, r0);                                                     // y[:, r0:r1] = part
            Tensors.release(part);
        }
        return y;
    }

    @Override
    public INDArray backwardInput(INDArray dy) {
        if (dense != null) return dense.backwardInput(dy);
        int rows = tileRows();
        if (rows == q.rows()) return Nd4j.gemm(dy, tile(0, rows), false, false);
        INDArray dx = Nd4j.create(DataType.FLOAT, dy.size(0), q.cols());
        INDArray dyc = contiguous(dy);
        INDArray dyPart = Nd4j.create(DataType.FLOAT, dy.size(0), rows);
        for (int r0 = 0; r0 < q.rows(); r0 += rows) {
            int r1 = Math.min(q.rows(), r0 + rows);
            INDArray part = r1 - r0 == rows ? dyPart : Nd4j.create(DataType.FLOAT, dy.size(0), r1 - r0);
            gatherColumns(dyc, r0, part);                                                 // part = dy[:, r0:r1]
            Nd4j.gemm(part, tile(r0, r1), dx, false, false, 1.0, 1.0);                   // dx += dy_t · W_t
            if (part != dyPart) Tensors.release(part);
        }
        Tensors.release(dyPart);
        if (dyc != dy) Tensors.release(dyc);
        return dx;
    }

    /** The array itself when it is a plain row-major FLOAT array, else a row-major copy. */
    private static INDArray contiguous(INDArray a) {
        boolean plain = a.dataType() == DataType.FLOAT && a.ordering() == 'c' && !a.isView()
                && a.stride(1) == 1 && a.stride(0) == a.size(1);
        return plain ? a : a.castTo(DataType.FLOAT).dup('c');
    }

    /**
     * The array's host buffer as floats, current: under the CUDA backend the host copy is brought up to date first
     * (on CPU this is a no-op). Writers call {@link #written} after, so the device copy is refreshed before its next use.
     */
    private static FloatBuffer floats(INDArray a) {
        Nd4j.getAffinityManager().ensureLocation(a, AffinityManager.Location.HOST);
        return a.data().asNio().order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** Marks the host copy as the one written (CUDA backend: the device copy is stale until synchronized). */
    private static void written(INDArray a) { Nd4j.getAffinityManager().tagLocation(a, AffinityManager.Location.HOST); }

    /**
     * dst[:, col0 : col0 + k] = src, for src [N, k] and dst [N, out], both plain row-major FLOAT: one bulk copy per row.
     * (ND4J's assign into a column slice walks the strided view element by element, ~100 ns each.)
     */
    private static void copyColumns(INDArray src, INDArray dst, int col0) {
        INDArray s = contiguous(src);
        int n = (int) s.size(0), k = (int) s.size(1), out = (int) dst.size(1);
        FloatBuffer from = floats(s), to = floats(dst);
        long so = s.offset(), d0 = dst.offset();
        for (int i = 0; i < n; i++) to.put((int) (d0 + (long) i * out + col0), from, (int) (so + (long) i * k), k);
        written(dst);
        if (s != src) Tensors.release(s);
    }

    /** dst = src[:, col0 : col0 + k], for src [N, out] plain row-major and dst [N, k] new row-major. */
    private static void gatherColumns(INDArray src, int col0, INDArray dst) {
        int n = (int) dst.size(0), k = (int) dst.size(1), out = (int) src.size(1);
        FloatBuffer from = floats(src), to = floats(dst);
        long so = src.offset(), d0 = dst.offset();
        for (int i = 0; i < n; i++) to.put((int) (d0 + (long) i * k), from, (int) (so + (long) i * out + col0), k);
        written(dst);
    }

    @Override
    public void accumulateGradient(INDArray x, INDArray dy) {
        throw new UnsupportedOperationException(name + ": an NF4 base weight is frozen; full fine-tuning needs a full-precision base");
    }

    @Override
    public void addTo(INDArray target, double alpha) {
        if (dense != null) {
            dense.addTo(target, alpha);
            return;
        }
        int rows = tileRows();
        boolean plain = target.dataType() == DataType.FLOAT && target.ordering() == 'c' && !target.isView()
                && target.stride(1) == 1 && target.stride(0) == target.size(1);
        if (plain) {
            // dequantize a tile of rows on the heap and add it straight into the target's buffer, in either layout
            FloatBuffer t = floats(target);
            int in = q.cols(), out = q.rows();
            float[] buf = new float[rows * in];
            float a = (float) alpha;
            for (int r0 = 0; r0 < out; r0 += rows) {
                int r1 = Math.min(out, r0 + rows);
                q.dequantizeRows(r0, r1, buf);
                for (int r = r0; r < r1; r++) {
                    int base = (r - r0) * in;
                    for (int c = 0; c < in; c++) {
                        int at = transposed ? r * in + c : c * out + r;                    // [out, in] or Conv1D's [in, out]
                        t.put(at, t.get(at) + a * buf[base + c]);
                    }
                }
            }
            written(target);
            return;
        }
        for (int r0 = 0; r0 < q.rows(); r0 += rows) {
            int r1 = Math.min(q.rows(), r0 + rows);
            INDArray t = tile(r0, r1);
            INDArray dst = transposed ? target.get(NDArrayIndex.interval(r0, r1), NDArrayIndex.all())
                    : target.get(NDArrayIndex.all(), NDArrayIndex.interval(r0, r1));
            INDArray src = transposed ? t : t.transpose();
            if (alpha == 1.0) dst.addi(src);
            else {
                INDArray scaled = src.mul(alpha);
                dst.addi(scaled);
                Tensors.release(scaled);
            }
        }
    }

    @Override
    public INDArray dense() {
        if (dense != null) return dense.dense();
        INDArray w = q.dequantize();                                                      // [out, in]
        if (transposed) return w;
        INDArray t = w.transpose().dup('c');
        Tensors.release(w);
        return t;
    }

    @Override
    public INDArray mutableDense() {
        if (dense == null) {
            dense = new DenseWeight(new Parameter(name + ".weight", dense(), false, "base"), transposed, name);
        }
        return dense.mutableDense();
    }

    @Override
    public Parameter parameter() {
        if (dense != null) return dense.parameter();
        throw new IllegalStateException(name + ".weight is held in NF4 and has no full-precision tensor; read it with dense() or addTo()");
    }
}
