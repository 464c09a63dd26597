package io.sparklora.model.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * {@link Kernels} written with the Java Vector API, for ND4J's CPU backend: each function is one loop over the
 * tensor's memory (read through a direct {@link ByteBuffer} over ND4J's native buffer), SIMD-wide, with the JIT's vector
 * {@code tanh} and {@code exp}. Single-threaded: one engine caller, one core (a Spark task's share).
 *
 * <p>Takes fp32, row-major, unshared arrays (not views) whose bytes fit a {@link ByteBuffer}; anything else goes to
 * {@link NdKernels}. Loaded only by {@link Kernels.Holder} when {@code jdk.incubator.vector} is present.
 */
final class VectorKernels implements Kernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final float K = (float) Math.sqrt(2.0 / Math.PI);
    private static final float A = 0.044715f;

    VectorKernels() {}

    /** Whether this class can read and write {@code a} in place. */
    static boolean addressable(INDArray a) {
        return a != null && a.dataType() == DataType.FLOAT && !a.isView() && a.ordering() == 'c' && a.offset() == 0
                && !a.isEmpty() && a.length() <= Integer.MAX_VALUE / 4 && a.data().length() == a.length();
    }

    private static boolean addressable(INDArray... arrays) {
        for (INDArray a : arrays) if (!addressable(a)) return false;
        return true;
    }

    private static ByteBuffer bytes(INDArray a) {
        return a.data().asNio().order(NATIVE);
    }

    private static INDArray fresh(long... shape) {
        return Nd4j.createUninitialized(DataType.FLOAT, shape, 'c');
    }

    // ---- GELU ---------------------------------------------------------------------------------------------------

    @Override
    public INDArray gelu(INDArray u) {
        if (!addressable(u)) return NdKernels.INSTANCE.gelu(u);
        INDArray out = fresh(u.shape());
        ByteBuffer in = bytes(u), o = bytes(out);
        int n = (int) u.length(), i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector x = FloatVector.fromByteBuffer(S, in, i * 4, NATIVE);
            FloatVector t = x.mul(x).mul(A).add(1f).mul(x).mul(K).lanewise(VectorOperators.TANH);
            t.add(1f).mul(x).mul(0.5f).intoByteBuffer(o, i * 4, NATIVE);
        }
        for (; i < n; i++) {
            float x = in.getFloat(i * 4);
            o.putFloat(i * 4, (float) (0.5 * x * (1 + Math.tanh(K * (x + A * x * x * x)))));
        }
        return out;
    }

    @Override
    public INDArray geluBackwardInPlace(INDArray u, INDArray dAct) {
        if (!addressable(u, dAct) || u.length() != dAct.length()) return NdKernels.INSTANCE.geluBackwardInPlace(u, dAct);
        ByteBuffer in = bytes(u), d = bytes(dAct);
        int n = (int) u.length(), i = 0;
        // d/du gelu = ½(1 + t) + ½u(1 − t²)·k(1 + 3a·u²), t = tanh(k(u + a·u³))
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector x = FloatVector.fromByteBuffer(S, in, i * 4, NATIVE);
            FloatVector x2 = x.mul(x);
            FloatVector t = x2.mul(A).add(1f).mul(x).mul(K).lanewise(VectorOperators.TANH);
            FloatVector inner = x2.mul(3 * A).add(1f).mul(x).mul(K);                 // k·u(1 + 3a·u²)
            FloatVector sech2 = t.mul(t).neg().add(1f);
            FloatVector grad = inner.mul(sech2).add(t).add(1f).mul(0.5f);
            FloatVector.fromByteBuffer(S, d, i * 4, NATIVE).mul(grad).intoByteBuffer(d, i * 4, NATIVE);
        }
        for (; i < n; i++) {
            double x = in.getFloat(i * 4);
            double t = Math.tanh(K * (x + A * x * x * x));
            double grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * A * x * x);
            d.putFloat(i * 4, (float) (d.getFloat(i * 4) * grad));
        }
        return dAct;
    }

    // ---- LayerNorm / RMSNorm ---------------------------------------------------------------------------------------

    @Override
    public NormResult normForward(INDArray x, INDArray gamma, INDArray beta, double eps, boolean center) {
        if (!addressable(x) || x.rank() != 2) return NdKernels.INSTANCE.normForward(x, gamma, beta, eps, center);
        int rows = (int) x.size(0), c = (int) x.size(1);
        float[] g = gamma.castTo(DataType.FLOAT).toFloatVector();
        float[] b = beta == null ? null : beta.castTo(DataType.FLOAT).toFloatVector();
        INDArray y = fresh(rows, c), xhat = fresh(rows, c), rstd = fresh(rows, 1);
        ByteBuffer in = bytes(x), yb = bytes(y), hb = bytes(xhat), rb = bytes(rstd);
        int ub = S.loopBound(c);
        for (int r = 0; r < rows; r++) {
            int base = r * c * 4;
            float mean = 0f;
            if (center) {
                FloatVector acc = FloatVector.zero(S);
                int j = 0;
                for (; j < ub; j += L) acc = acc.add(FloatVector.fromByteBuffer(S, in, base + j * 4, NATIVE));
                float sum = acc.reduceLanes(VectorOperators.ADD);
                for (; j < c; j++) sum += in.getFloat(base + j * 4);
                mean = sum / c;
            }
            FloatVector acc = FloatVector.zero(S);
            int j = 0;
            for (; j < ub; j += L) {
                FloatVector dv = FloatVector.fromByteBuffer(S, in, base + j * 4, NATIVE).sub(mean);
                acc = dv.fma(dv, acc);
            }
            float sq = acc.reduceLanes(VectorOperators.ADD);
            for (; j < c; j++) {
                float dv = in.getFloat(base + j * 4) - mean;
                sq += dv * dv;
            }
            float rs = (float) (1.0 / Math.sqrt(sq / c + eps));
            rb.putFloat(r * 4, rs);
            j = 0;
            for (; j < ub; j += L) {
                FloatVector h = FloatVector.fromByteBuffer(S, in, base + j * 4, NATIVE).sub(mean).mul(rs);
                h.intoByteBuffer(hb, base + j * 4, NATIVE);
                FloatVector o = h.mul(FloatVector.fromArray(S, g, j));
                if (b != null) o = o.add(FloatVector.fromArray(S, b, j));
                o.intoByteBuffer(yb, base + j * 4, NATIVE);
            }
            for (; j < c; j++) {
                float h = (in.getFloat(base + j * 4) - mean) * rs;
                hb.putFloat(base + j * 4, h);
                yb.putFloat(base + j * 4, b == null ? h * g[j] : h * g[j] + b[j]);
            }
        }
        return new NormResult(y, xhat, rstd);
    }

    @Override
    public NormGrads normBackward(INDArray dy, INDArray xhat, INDArray rstd, INDArray gamma, boolean center,
                                  boolean wantGamma, boolean wantBeta) {
        if (!addressable(dy, xhat, rstd) || dy.rank() != 2 || !dy.equalShapes(xhat) || rstd.length() != dy.size(0))
            return NdKernels.INSTANCE.normBackward(dy, xhat, rstd, gamma, center, wantGamma, wantBeta);
        int rows = (int) dy.size(0), c = (int) dy.size(1);
        float[] g = gamma.castTo(DataType.FLOAT).toFloatVector();
        float[] dg = wantGamma ? new float[c] : null, db = wantBeta ? new float[c] : null;
        INDArray dx = fresh(rows, c);
        ByteBuffer dyb = bytes(dy), hb = bytes(xhat), rb = bytes(rstd), ob = bytes(dx);
        int ub = S.loopBound(c);
        for (int r = 0; r < rows; r++) {
            int base = r * c * 4;
            FloatVector accG = FloatVector.zero(S), accGx = FloatVector.zero(S);
            int j = 0;
            for (; j < ub; j += L) {
                FloatVector d = FloatVector.fromByteBuffer(S, dyb, base + j * 4, NATIVE);
                FloatVector h = FloatVector.fromByteBuffer(S, hb, base + j * 4, NATIVE);
                FloatVector gv = d.mul(FloatVector.fromArray(S, g, j));
                accG = accG.add(gv);
                accGx = gv.fma(h, accGx);
                if (dg != null) d.fma(h, FloatVector.fromArray(S, dg, j)).intoArray(dg, j);
                if (db != null) d.add(FloatVector.fromArray(S, db, j)).intoArray(db, j);
            }
            float sumG = accG.reduceLanes(VectorOperators.ADD), sumGx = accGx.reduceLanes(VectorOperators.ADD);
            for (; j < c; j++) {
                float d = dyb.getFloat(base + j * 4), h = hb.getFloat(base + j * 4), gv = d * g[j];
                sumG += gv;
                sumGx += gv * h;
                if (dg != null) dg[j] += d * h;
                if (db != null) db[j] += d;
            }
            float meanG = center ? sumG / c : 0f, meanGx = sumGx / c, rs = rb.getFloat(r * 4);
            j = 0;
            for (; j < ub; j += L) {
                FloatVector d = FloatVector.fromByteBuffer(S, dyb, base + j * 4, NATIVE);
                FloatVector h = FloatVector.fromByteBuffer(S, hb, base + j * 4, NATIVE);
                d.mul(FloatVector.fromArray(S, g, j)).sub(meanG).sub(h.mul(meanGx)).mul(rs)
                        .intoByteBuffer(ob, base + j * 4, NATIVE);
            }
            for (; j < c; j++) {
                float gv = dyb.getFloat(base + j * 4) * g[j], h = hb.getFloat(base + j * 4);
                ob.putFloat(base + j * 4, (gv - meanG - h * meanGx) * rs);
            }
        }
        return new NormGrads(dx,
                dg == null ? null : Nd4j.createFromArray(dg).castTo(gamma.dataType()),
                db == null ? null : Nd4j.createFromArray(db).castTo(gamma.dataType()));
    }

    // ---- causal softmax ----------------------------------------------------------------------------------------------

    @Override
    public INDArray causalSoftmax(INDArray scores) {
        int rank = scores.rank();
        if (!addressable(scores) || rank < 2 || scores.size(rank - 1) != scores.size(rank - 2))
            return NdKernels.INSTANCE.causalSoftmax(scores);
        int t = (int) scores.size(rank - 1);
        long rows = scores.length() / t;
        ByteBuffer s = bytes(scores);
        for (long r = 0; r < rows; r++) {
            int base = (int) (r * t * 4), valid = (int) (r % t) + 1, ub = S.loopBound(valid), j = 0;
            FloatVector m = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            for (; j < ub; j += L) m = m.max(FloatVector.fromByteBuffer(S, s, base + j * 4, NATIVE));
            float max = m.reduceLanes(VectorOperators.MAX);
            for (; j < valid; j++) max = Math.max(max, s.getFloat(base + j * 4));
            FloatVector acc = FloatVector.zero(S);
            j = 0;
            for (; j < ub; j += L) {
                FloatVector e = FloatVector.fromByteBuffer(S, s, base + j * 4, NATIVE).sub(max).lanewise(VectorOperators.EXP);
                e.intoByteBuffer(s, base + j * 4, NATIVE);
                acc = acc.add(e);
            }
            float sum = acc.reduceLanes(VectorOperators.ADD);
            for (; j < valid; j++) {
                float e = (float) Math.exp(s.getFloat(base + j * 4) - max);
                s.putFloat(base + j * 4, e);
                sum += e;
            }
            float inv = 1f / sum;
            j = 0;
            for (; j < ub; j += L)
                FloatVector.fromByteBuffer(S, s, base + j * 4, NATIVE).mul(inv).intoByteBuffer(s, base + j * 4, NATIVE);
            for (; j < valid; j++) s.putFloat(base + j * 4, s.getFloat(base + j * 4) * inv);
            zero(s, base, valid, t);
        }
        return scores;
    }

    @Override
    public INDArray causalSoftmaxBackwardInPlace(INDArray dP, INDArray probs) {
        int rank = dP.rank();
        if (!addressable(dP, probs) || rank < 2 || !dP.equalShapes(probs) || dP.size(rank - 1) != dP.size(rank - 2))
            return NdKernels.INSTANCE.causalSoftmaxBackwardInPlace(dP, probs);
        int t = (int) dP.size(rank - 1);
        long rows = dP.length() / t;
        ByteBuffer d = bytes(dP), p = bytes(probs);
        for (long r = 0; r < rows; r++) {
            int base = (int) (r * t * 4), valid = (int) (r % t) + 1, ub = S.loopBound(valid), j = 0;
            FloatVector acc = FloatVector.zero(S);
            for (; j < ub; j += L)
                acc = FloatVector.fromByteBuffer(S, d, base + j * 4, NATIVE).fma(FloatVector.fromByteBuffer(S, p, base + j * 4, NATIVE), acc);
            float dot = acc.reduceLanes(VectorOperators.ADD);
            for (; j < valid; j++) dot += d.getFloat(base + j * 4) * p.getFloat(base + j * 4);
            j = 0;
            for (; j < ub; j += L) {
                FloatVector pv = FloatVector.fromByteBuffer(S, p, base + j * 4, NATIVE);
                FloatVector.fromByteBuffer(S, d, base + j * 4, NATIVE).sub(dot).mul(pv).intoByteBuffer(d, base + j * 4, NATIVE);
            }
            for (; j < valid; j++) d.putFloat(base + j * 4, (d.getFloat(base + j * 4) - dot) * p.getFloat(base + j * 4));
            zero(d, base, valid, t);
        }
        return dP;
    }

    /** Zeroes elements [from, to) of the row at byte offset {@code base}. */
    private static void zero(ByteBuffer b, int base, int from, int to) {
        int j = from;
        FloatVector z = FloatVector.zero(S);
        for (; j + L <= to; j += L) z.intoByteBuffer(b, base + j * 4, NATIVE);
        for (; j < to; j++) b.putFloat(base + j * 4, 0f);
    }
}
