package io.sparklora.model.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.FloatBuffer;
import java.nio.ByteOrder;

/**
 * {@link Kernels} written with the Java Vector API, for ND4J's CPU backend: each function is one loop over the
 * tensor's memory (ND4J's native buffer, read and written through a {@link FloatBuffer}), SIMD-wide. Single-threaded:
 * one engine caller, one core (a Spark task's share).
 *
 * <p><b>Reproducible bit for bit.</b> The JIT compiles the Vector API's {@code lanewise(EXP)} and {@code TANH} to
 * vendor math routines, while the same code run before compilation uses Java's scalar functions, and the two round
 * differently; {@code reduceLanes(ADD)} may also add in either order. A result would then depend on how warm the JVM
 * was. So this class uses only IEEE-exact lane operations (add, multiply, fused multiply-add, divide, compare, blend,
 * integer shifts): {@link #exp} is a range reduction with a degree-7 Taylor polynomial, {@link #tanh} is built on it,
 * and lane sums are added in lane order ({@link #sum}). Rows whose length is not a multiple of the vector width end in
 * one masked step, so every element goes through the same arithmetic. Results depend on the vector width (512 bits
 * with AVX-512, 256 with AVX2), like every other CPU-kind difference (docs/RELIABILITY.md).
 *
 * <p><b>Through heap scratch rows.</b> Each row (or, for GELU, each chunk of 16K elements) is copied from ND4J's buffer
 * into a Java array padded to a whole number of vectors, computed there with whole-vector operations only, and copied
 * back. A masked load or store of a row's last, partial vector, a lane mask built per step ({@code indexInRange}), or a
 * vector merged from two branches makes the JIT of Java 17 allocate every vector of the loop on the heap (about 50 MB
 * per GELU call on [1024, 3072], and 10× slower); lanes past a row's end are instead filled with a value that cannot
 * change the result (0 for sums, −∞ for a maximum, the mean for a variance), and never copied back.
 *
 * <p>fp32 only; other types go to {@link NdKernels}. Views and other arrays that are not plain row-major buffers are
 * copied in (and back, for the in-place functions), so they take the same arithmetic as everything else. Loaded only by
 * {@link Kernels.Holder} when {@code jdk.incubator.vector} is present.
 */
final class VectorKernels implements Kernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final int CHUNK = 1 << 14;                  // elements per GELU chunk: 64 KB, within L2
    private static final float K = (float) Math.sqrt(2.0 / Math.PI);
    private static final float A = 0.044715f;
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;          // ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float SHIFTER = 12582912f;            // 1.5·2²³: adding it rounds to an integer in the low bits
    private static final int SHIFTER_BITS = Float.floatToRawIntBits(SHIFTER);

    VectorKernels() {}

    // ---- memory -------------------------------------------------------------------------------------------------

    /** Whether ND4J's buffer of {@code a} holds exactly its elements in row-major order. */
    static boolean addressable(INDArray a) {
        return a.dataType() == DataType.FLOAT && !a.isView() && a.ordering() == 'c' && a.offset() == 0
                && !a.isEmpty() && a.length() <= Integer.MAX_VALUE / 4 && a.data().length() == a.length();
    }

    /** {@code a} itself when addressable, else a row-major copy. */
    private static INDArray plain(INDArray a) {
        return addressable(a) ? a : a.dup('c');
    }

    /** After an in-place kernel ran on {@code work} (= {@link #plain}(target)): copies it back into a view. */
    private static INDArray writeBack(INDArray target, INDArray work) {
        if (work == target) return target;
        target.assign(work);
        work.close();
        return target;
    }

    /** The elements of an addressable array, as floats. */
    private static FloatBuffer floats(INDArray a) {
        return a.data().asNio().order(NATIVE).asFloatBuffer();
    }

    private static INDArray fresh(long... shape) {
        return Nd4j.createUninitialized(DataType.FLOAT, shape, 'c');
    }

    /** n rounded up to a whole number of vectors. */
    private static int padded(int n) {
        return (n + L - 1) / L * L;
    }

    /** {@code a}'s elements in a Java array padded with zeros to whole vectors. */
    private static float[] paddedCopy(INDArray a, int n) {
        float[] out = new float[padded(n)];
        System.arraycopy(a.castTo(DataType.FLOAT).toFloatVector(), 0, out, 0, n);
        return out;
    }

    private static FloatVector v(float[] a, int i) {
        return FloatVector.fromArray(S, a, i);          // 9 bytes of bytecode: always inlined
    }

    // ---- exact-arithmetic math ----------------------------------------------------------------------------------
    //
    // Each function below is one loop over Java arrays that calls nothing but the Vector API. The JIT inlines a helper
    // taking or returning vectors only while the caller stays small, and a vector that crosses a call it did not inline
    // is allocated on the heap; so the kernels are passes over 64 KB scratch arrays instead of nested vector helpers.

    /** The lanes' sum, added in lane order. */
    static float sum(FloatVector v) {
        float[] lanes = v.toArray();
        float s = 0f;
        for (float x : lanes) s += x;
        return s;
    }

    /** The lanes' maximum. */
    static float max(FloatVector v) {
        float[] lanes = v.toArray();
        float m = Float.NEGATIVE_INFINITY;
        for (float x : lanes) m = Math.max(m, x);
        return m;
    }

    /**
     * a[j] ← e^a[j] for j in [0, n), n a whole number of vectors. For x ≤ 88 (larger x is taken as 88; below −87.3 the
     * result is about 1e−38 instead of 0): x = k·ln 2 + r with |r| ≤ ½ ln 2, e^r by its Taylor series to r⁷ (truncation
     * below 6e−9 relative), 2^k built in the exponent bits. Within about 2 ulp of the true value.
     */
    static void expInPlace(float[] a, int n) {
        FloatVector ln2Hi = FloatVector.broadcast(S, -LN2_HI), ln2Lo = FloatVector.broadcast(S, -LN2_LO);
        FloatVector c5 = FloatVector.broadcast(S, 1f / 120f), c4 = FloatVector.broadcast(S, 1f / 24f);
        FloatVector c3 = FloatVector.broadcast(S, 1f / 6f), c2 = FloatVector.broadcast(S, 0.5f), one = FloatVector.broadcast(S, 1f);
        for (int j = 0; j < n; j += L) {
            FloatVector x = FloatVector.fromArray(S, a, j).max(-87.33654f).min(88f);
            FloatVector t = x.fma(LOG2E, SHIFTER);                 // k in the low mantissa bits
            FloatVector k = t.sub(SHIFTER);
            FloatVector r = k.fma(ln2Hi, x);
            r = k.fma(ln2Lo, r);
            FloatVector p = r.fma(1f / 5040f, 1f / 720f);
            p = p.fma(r, c5);
            p = p.fma(r, c4);
            p = p.fma(r, c3);
            p = p.fma(r, c2);
            p = p.fma(r, one);
            p = p.fma(r, one);
            IntVector bits = (IntVector) t.reinterpretAsInts();
            FloatVector scale = (FloatVector) bits.sub(SHIFTER_BITS).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            p.mul(scale).intoArray(a, j);
        }
    }

    /**
     * t[j] ← tanh z[j] for j in [0, n), n a whole number of vectors: sign(z)·(1 − e^(−2|z|))/(1 + e^(−2|z|)), |z|
     * capped at 9, where tanh is 1 in fp32. {@code t} must not be {@code z}.
     */
    static void tanh(float[] z, float[] t, int n) {
        for (int j = 0; j < n; j += L) FloatVector.fromArray(S, z, j).abs().min(9f).mul(-2f).intoArray(t, j);
        expInPlace(t, n);
        for (int j = 0; j < n; j += L) {
            FloatVector e = FloatVector.fromArray(S, t, j);
            FloatVector th = e.neg().add(1f).div(e.add(1f));
            th.blend(th.neg(), FloatVector.fromArray(S, z, j).lt(0f)).intoArray(t, j);
        }
    }

    // ---- GELU ---------------------------------------------------------------------------------------------------

    /** t[j] ← tanh(k(u + a·u³)) for u = x[j], j in [0, n); z is scratch. Both GELU directions start with it. */
    private static void geluTanh(float[] x, float[] z, float[] t, int n) {
        for (int j = 0; j < n; j += L) {
            FloatVector u = FloatVector.fromArray(S, x, j);
            u.mul(u).fma(A, 1f).mul(u).mul(K).intoArray(z, j);
        }
        tanh(z, t, n);
    }

    @Override
    public INDArray gelu(INDArray u) {
        if (u.dataType() != DataType.FLOAT || u.isEmpty()) return NdKernels.INSTANCE.gelu(u);
        INDArray src = plain(u), out = fresh(u.shape());
        FloatBuffer in = floats(src), o = floats(out);
        int n = (int) u.length();
        float[] a = new float[CHUNK], z = new float[CHUNK], t = new float[CHUNK];
        for (int i = 0; i < n; i += CHUNK) {
            int len = Math.min(CHUNK, n - i), lp = padded(len);
            in.get(i, a, 0, len);
            geluTanh(a, z, t, lp);
            for (int j = 0; j < lp; j += L) {
                FloatVector x = FloatVector.fromArray(S, a, j);
                FloatVector.fromArray(S, t, j).add(1f).mul(x).mul(0.5f).intoArray(z, j);
            }
            o.put(i, z, 0, len);
        }
        if (src != u) src.close();
        return out;
    }

    @Override
    public INDArray geluBackwardInPlace(INDArray u, INDArray dAct) {
        if (u.dataType() != DataType.FLOAT || dAct.dataType() != DataType.FLOAT || u.length() != dAct.length() || u.isEmpty())
            return NdKernels.INSTANCE.geluBackwardInPlace(u, dAct);
        INDArray src = plain(u), work = plain(dAct);
        FloatBuffer in = floats(src), d = floats(work);
        int n = (int) u.length();
        float[] a = new float[CHUNK], b = new float[CHUNK], z = new float[CHUNK], t = new float[CHUNK];
        for (int i = 0; i < n; i += CHUNK) {
            int len = Math.min(CHUNK, n - i), lp = padded(len);
            in.get(i, a, 0, len);
            d.get(i, b, 0, len);
            geluTanh(a, z, t, lp);
            // d/du gelu = ½(1 + t) + ½u(1 − t²)·k(1 + 3a·u²), t = tanh(k(u + a·u³))
            for (int j = 0; j < lp; j += L) {
                FloatVector x = FloatVector.fromArray(S, a, j), th = FloatVector.fromArray(S, t, j);
                FloatVector inner = x.mul(x).fma(3 * A, 1f).mul(x).mul(K);              // k·u(1 + 3a·u²)
                FloatVector grad = inner.mul(th.mul(th).neg().add(1f)).add(th).add(1f).mul(0.5f);
                FloatVector.fromArray(S, b, j).mul(grad).intoArray(b, j);
            }
            d.put(i, b, 0, len);
        }
        if (src != u) src.close();
        return writeBack(dAct, work);
    }

    // ---- LayerNorm / RMSNorm ---------------------------------------------------------------------------------------

    @Override
    public NormResult normForward(INDArray x, INDArray gamma, INDArray beta, double eps, boolean center) {
        if (x.dataType() != DataType.FLOAT || x.rank() != 2 || x.isEmpty()) return NdKernels.INSTANCE.normForward(x, gamma, beta, eps, center);
        int rows = (int) x.size(0), c = (int) x.size(1), cp = padded(c);
        float[] g = paddedCopy(gamma, c), b = beta == null ? new float[cp] : paddedCopy(beta, c);
        INDArray src = plain(x), y = fresh(rows, c), xhat = fresh(rows, c), rstd = fresh(rows, 1);
        FloatBuffer in = floats(src), yb = floats(y), hb = floats(xhat), rb = floats(rstd);
        float[] row = new float[cp], hr = new float[cp], yr = new float[cp];
        FloatVector zero = FloatVector.zero(S);
        for (int r = 0; r < rows; r++) {
            in.get(r * c, row, 0, c);
            java.util.Arrays.fill(row, c, cp, 0f);
            float mean = 0f;
            if (center) {
                FloatVector acc = zero;
                for (int j = 0; j < cp; j += L) acc = acc.add(v(row, j));
                mean = sum(acc) / c;
            }
            java.util.Arrays.fill(row, c, cp, mean);      // padding lanes add (mean − mean)² = 0
            FloatVector acc = zero;
            for (int j = 0; j < cp; j += L) {
                FloatVector dv = v(row, j).sub(mean);
                acc = dv.fma(dv, acc);
            }
            float rs = (float) (1.0 / Math.sqrt(sum(acc) / c + eps));
            for (int j = 0; j < cp; j += L) {
                FloatVector h = v(row, j).sub(mean).mul(rs);
                h.intoArray(hr, j);
                h.fma(v(g, j), v(b, j)).intoArray(yr, j);
            }
            hb.put(r * c, hr, 0, c);
            yb.put(r * c, yr, 0, c);
            rb.put(r, rs);
        }
        if (src != x) src.close();
        return new NormResult(y, xhat, rstd);
    }

    @Override
    public NormGrads normBackward(INDArray dy, INDArray xhat, INDArray rstd, INDArray gamma, boolean center,
                                  boolean wantGamma, boolean wantBeta) {
        if (dy.dataType() != DataType.FLOAT || xhat.dataType() != DataType.FLOAT || rstd.dataType() != DataType.FLOAT
                || dy.rank() != 2 || !dy.equalShapes(xhat) || rstd.length() != dy.size(0) || dy.isEmpty())
            return NdKernels.INSTANCE.normBackward(dy, xhat, rstd, gamma, center, wantGamma, wantBeta);
        int rows = (int) dy.size(0), c = (int) dy.size(1), cp = padded(c);
        float[] g = paddedCopy(gamma, c), dg = new float[cp], db = new float[cp];
        INDArray dySrc = plain(dy), hSrc = plain(xhat), rSrc = plain(rstd), dx = fresh(rows, c);
        FloatBuffer dyb = floats(dySrc), hb = floats(hSrc), rb = floats(rSrc), ob = floats(dx);
        float[] dr = new float[cp], hr = new float[cp], or = new float[cp];
        FloatVector zero = FloatVector.zero(S);
        for (int r = 0; r < rows; r++) {
            dyb.get(r * c, dr, 0, c);                     // padding lanes stay 0 in dr, hr and g
            hb.get(r * c, hr, 0, c);
            FloatVector accG = zero, accGx = zero;
            for (int j = 0; j < cp; j += L) {
                FloatVector d = v(dr, j), h = v(hr, j);
                FloatVector gv = d.mul(v(g, j));
                accG = accG.add(gv);
                accGx = gv.fma(h, accGx);
                if (wantGamma) d.fma(h, v(dg, j)).intoArray(dg, j);
                if (wantBeta) d.add(v(db, j)).intoArray(db, j);
            }
            float meanG = center ? sum(accG) / c : 0f, meanGx = sum(accGx) / c, rs = rb.get(r);
            for (int j = 0; j < cp; j += L)
                v(dr, j).mul(v(g, j)).sub(meanG).sub(v(hr, j).mul(meanGx)).mul(rs).intoArray(or, j);
            ob.put(r * c, or, 0, c);
        }
        if (dySrc != dy) dySrc.close();
        if (hSrc != xhat) hSrc.close();
        if (rSrc != rstd) rSrc.close();
        return new NormGrads(dx,
                wantGamma ? Nd4j.createFromArray(java.util.Arrays.copyOf(dg, c)).castTo(gamma.dataType()) : null,
                wantBeta ? Nd4j.createFromArray(java.util.Arrays.copyOf(db, c)).castTo(gamma.dataType()) : null);
    }

    // ---- causal softmax ----------------------------------------------------------------------------------------------

    @Override
    public INDArray causalSoftmax(INDArray scores) {
        int rank = scores.rank();
        if (scores.dataType() != DataType.FLOAT || rank < 2 || scores.size(rank - 1) != scores.size(rank - 2) || scores.isEmpty())
            return NdKernels.INSTANCE.causalSoftmax(scores);
        INDArray work = plain(scores);
        int t = (int) scores.size(rank - 1);
        long rows = scores.length() / t;
        FloatBuffer s = floats(work);
        float[] row = new float[padded(t)];
        for (long r = 0; r < rows; r++) {
            int base = (int) (r * t), valid = (int) (r % t) + 1;     // query row i sees keys 0..i
            s.get(base, row, 0, valid);
            softmaxRow(row, valid, 1f);                                // zeros the row past valid
            s.put(base, row, 0, t);
        }
        return writeBack(scores, work);
    }

    @Override
    public INDArray causalSoftmaxBackwardInPlace(INDArray dP, INDArray probs) {
        int rank = dP.rank();
        if (dP.dataType() != DataType.FLOAT || probs.dataType() != DataType.FLOAT || rank < 2 || !dP.equalShapes(probs)
                || dP.size(rank - 1) != dP.size(rank - 2) || dP.isEmpty())
            return NdKernels.INSTANCE.causalSoftmaxBackwardInPlace(dP, probs);
        INDArray work = plain(dP), pSrc = plain(probs);
        int t = (int) dP.size(rank - 1), tp = padded(t);
        long rows = dP.length() / t;
        FloatBuffer d = floats(work), p = floats(pSrc);
        float[] dr = new float[tp], pr = new float[tp];
        FloatVector zero = FloatVector.zero(S);
        for (long r = 0; r < rows; r++) {
            int base = (int) (r * t), valid = (int) (r % t) + 1, vp = padded(valid);
            d.get(base, dr, 0, valid);
            p.get(base, pr, 0, valid);
            java.util.Arrays.fill(dr, valid, vp, 0f);     // padding lanes: 0·0 in the dot, 0 out
            java.util.Arrays.fill(pr, valid, vp, 0f);
            FloatVector acc = zero;
            for (int j = 0; j < vp; j += L) acc = v(dr, j).fma(v(pr, j), acc);
            float dot = sum(acc);
            for (int j = 0; j < vp; j += L) v(dr, j).sub(dot).mul(v(pr, j)).intoArray(dr, j);
            java.util.Arrays.fill(dr, vp, tp, 0f);
            d.put(base, dr, 0, t);
        }
        if (pSrc != probs) pSrc.close();
        return writeBack(dP, work);
    }

    /**
     * In place on row[0, valid): row ← scale · softmax(row); row[valid, end of array) ← 0. Returns {max, Σ exp(x − max)}.
     */
    private static float[] softmaxRow(float[] row, int valid, float scale) {
        int vp = padded(valid);
        // lanes past valid: −∞ for the maximum, then 0 for the sum (a mask per step would be slow in Java 17's JIT)
        java.util.Arrays.fill(row, valid, vp, Float.NEGATIVE_INFINITY);
        FloatVector m = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < vp; j += L) m = m.max(FloatVector.fromArray(S, row, j));
        float max = max(m);
        for (int j = 0; j < vp; j += L) FloatVector.fromArray(S, row, j).sub(max).intoArray(row, j);
        expInPlace(row, vp);
        java.util.Arrays.fill(row, valid, vp, 0f);
        FloatVector acc = FloatVector.zero(S);
        for (int j = 0; j < vp; j += L) acc = acc.add(FloatVector.fromArray(S, row, j));
        float sum = sum(acc), inv = scale / sum;
        for (int j = 0; j < vp; j += L) FloatVector.fromArray(S, row, j).mul(inv).intoArray(row, j);
        java.util.Arrays.fill(row, vp, row.length, 0f);
        return new float[]{max, sum};
    }

    // ---- cross-entropy -------------------------------------------------------------------------------------------------

    @Override
    public LossSum crossEntropyInPlace(INDArray logits, INDArray targets, boolean withGradient, double gradDenominator) {
        if (logits.dataType() != DataType.FLOAT || logits.rank() != 2 || targets.length() != logits.size(0) || logits.isEmpty())
            return NdKernels.INSTANCE.crossEntropyInPlace(logits, targets, withGradient, gradDenominator);
        int rows = (int) logits.size(0), v = (int) logits.size(1);
        int[] t = targets.reshape(rows).castTo(DataType.INT).toIntVector();
        long count = 0;
        for (int i = 0; i < rows; i++) {
            if (t[i] >= v) throw new IllegalArgumentException("target " + t[i] + " at row " + i + " is outside the vocabulary of " + v);
            if (t[i] >= 0) count++;
        }
        double denominator = gradDenominator < 0 ? count : gradDenominator;
        float scale = denominator == 0 ? 0f : (float) (1.0 / denominator);
        INDArray work = plain(logits);
        FloatBuffer z = floats(work);
        float[] row = new float[padded(v)];
        double total = 0;
        for (int r = 0; r < rows; r++) {
            if (t[r] < 0) {
                if (withGradient) {
                    java.util.Arrays.fill(row, 0f);
                    z.put(r * v, row, 0, v);
                }
                continue;
            }
            z.get(r * v, row, 0, v);
            float target = row[t[r]];
            float[] maxAndSum = softmaxRow(row, v, scale);                    // softmax / denominator
            total += Math.log(maxAndSum[1]) - (target - maxAndSum[0]);
            if (withGradient) {
                row[t[r]] -= scale;
                z.put(r * v, row, 0, v);
            }
        }
        if (withGradient) writeBack(logits, work);
        else if (work != logits) work.close();
        return new LossSum(total, count);
    }
}
