package io.sparklora.adapters.lokr;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lycoris.Lycoris;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * LoKr (LyCORIS's low-rank Kronecker product, as PEFT implements it) on one layer:
 * ΔW = s·(w1 ⊗ w2), s = alpha/r, in the logical [out, in] layout, with out = a·b and in = c·d split by
 * {@link Factorization}: w1 [a, c] and w2 [b, d]. Each factor is a full matrix ({@code lokr_w1}, {@code lokr_w2})
 * or a rank-r product ({@code lokr_w1_a} [a, r]·{@code lokr_w1_b} [r, c]; the same for w2), by PEFT's rule:
 * w1 is decomposed only with {@code decompose_both} and r &lt; max(a, c)/2, w2 whenever r &lt; max(b, d)/2.
 * Init as PEFT's: w1 (or w1_a) zero, the rest kaiming-uniform, so ΔW = 0.
 *
 * <p>Forward without the out × in matrix: with x [N, in] viewed as X [N, c, d], (w1 ⊗ w2)·x is, per row,
 * Y = w1·X·w2ᵀ [a, b], flattened row-major to out. Two batched matmuls: Z = X·w2ᵀ [N·c, b], then w1 applied
 * over c. Backward (G = s·dy ⊙ m viewed [N, a, b]): dw1 = Σ G·Zᵀ, M = w1ᵀ·G [N, c, b], dw2 = Σ Mᵀ·X,
 * dX = M·w2; the low-rank factors then chain (dw_a = dw·w_bᵀ, dw_b = w_aᵀ·dw). Rank dropout masks output
 * channels (rescaled by 1/mean(kept) only with {@code rank_dropout_scale}, as PEFT); module dropout skips the adapter.
 */
public final class LokrAdapter implements Adapter {
    private final String adapterName;
    private final String module;
    private final Linear base;
    private final AdapterConfig config;
    private final int a, b, c, d;                   // out = a·b, in = c·d
    private final Parameter w1, w1a, w1b, w2, w2a, w2b;   // full or low-rank (the other pair null)
    private final double scale;
    private final double rankDropout, moduleDropout;
    private final boolean rankDropoutScale;

    record LokrActivation(INDArray delta, INDArray x, INDArray w1, INDArray w2, INDArray z, INDArray mask, boolean skipped)
            implements Activation {
        @Override public void release() { Tensors.release(z, mask, delta); }
        @Override public long bytesKept() { return Adapter.bytes(z) + Adapter.bytes(mask); }
    }

    LokrAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        int r = config.r();
        Layout l = Layout.of(base.inFeatures(), base.outFeatures(), config);
        this.a = l.a();
        this.b = l.b();
        this.c = l.c();
        this.d = l.d();
        DataType dt = base.baseWeight().dataType();
        if (l.fullW1()) {
            w1 = new Parameter(name("lokr_w1"), Nd4j.zeros(dt, a, c), true, "lokr_w1");
            w1a = w1b = null;
        } else {
            w1 = null;
            w1a = new Parameter(name("lokr_w1_a"), Nd4j.zeros(dt, a, r), true, "lokr_w1_a");
            w1b = new Parameter(name("lokr_w1_b"), kaiming(rng, r, c, dt), true, "lokr_w1_b");
        }
        if (l.fullW2()) {
            w2 = new Parameter(name("lokr_w2"), kaiming(rng, b, d, dt), true, "lokr_w2");
            w2a = w2b = null;
        } else {
            w2 = null;
            w2a = new Parameter(name("lokr_w2_a"), kaiming(rng, b, r, dt), true, "lokr_w2_a");
            w2b = new Parameter(name("lokr_w2_b"), kaiming(rng, r, d, dt), true, "lokr_w2_b");
        }
        this.scale = config.alpha() / r;
        this.rankDropout = config.doubleOption(LokrMethod.RANK_DROPOUT);
        this.moduleDropout = config.doubleOption(LokrMethod.MODULE_DROPOUT);
        this.rankDropoutScale = config.booleanOption(LokrMethod.RANK_DROPOUT_SCALE);
    }

    /**
     * One layer's factor shapes under PEFT's rule: out = a·b, in = c·d, and whether each factor is a full matrix
     * (w1 is decomposed only with decompose_both and r &lt; max(a, c)/2, w2 whenever r &lt; max(b, d)/2).
     */
    record Layout(int a, int b, int c, int d, boolean fullW1, boolean fullW2) {
        static Layout of(int in, int out, AdapterConfig config) {
            int r = config.r(), f = (int) config.longOption(LokrMethod.DECOMPOSE_FACTOR);
            int[] inSplit = Factorization.split(in, f), outSplit = Factorization.split(out, f);
            int a = outSplit[0], b = outSplit[1], c = inSplit[0], d = inSplit[1];
            return new Layout(a, b, c, d, !(config.booleanOption(LokrMethod.DECOMPOSE_BOTH) && r < Math.max(a, c) / 2.0),
                    !(r < Math.max(b, d) / 2.0));
        }

        /** Trainable scalars: each factor's full size, or r·(rows + columns) where it is a rank-r product. */
        long trainable(int r) {
            return (fullW1 ? (long) a * c : (long) r * (a + c)) + (fullW2 ? (long) b * d : (long) r * (b + d));
        }
    }

    private String name(String key) { return module + "." + key + "." + adapterName; }

    private static INDArray kaiming(Random rng, int rows, int cols, DataType dt) { return Lycoris.kaiming(rng, rows, cols, dt); }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> l = new ArrayList<>();
        for (Parameter p : new Parameter[]{w1, w1a, w1b, w2, w2a, w2b}) if (p != null) l.add(p);
        return l;
    }

    /** The {a, b, c, d} split: out = a·b, in = c·d. */
    public int[] split() { return new int[]{a, b, c, d}; }

    private INDArray w1Value() { return w1 != null ? w1.value() : w1a.value().mmul(w1b.value()); }
    private INDArray w2Value() { return w2 != null ? w2.value() : w2a.value().mmul(w2b.value()); }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        long n = x.size(0);
        if (Lycoris.skipModule(ctx, moduleDropout)) {
            return new LokrActivation(Nd4j.zeros(x.dataType(), n, (long) a * b), x, null, null, null, null, true);
        }
        INDArray k1 = w1Value(), k2 = w2Value();
        INDArray xc = x.isView() ? x.dup('c') : x;
        INDArray z = Nd4j.gemm(xc.reshape('c', n * c, d), k2, false, true);                  // [N·c, b] = X·w2ᵀ
        // [N, c, b] → [c, N·b], then w1 over c: [a, N·b] → [N, a, b] → [N, out]
        INDArray zc = z.reshape('c', n, c, b).permute(1, 0, 2).dup('c').reshape('c', c, n * b);
        INDArray y = Nd4j.gemm(k1, zc, false, false);                                          // [a, N·b]
        Tensors.release(zc);
        INDArray delta = y.reshape('c', a, n, b).permute(1, 0, 2).dup('c').reshape('c', n, (long) a * b).muli(scale);
        Tensors.release(y);
        if (xc != x) Tensors.release(xc);
        INDArray mask = Lycoris.rankMask(ctx, rankDropout, rankDropoutScale, (long) a * b, x.dataType());
        if (mask != null) delta.muliRowVector(mask);
        return new LokrActivation(delta, x, k1, k2, z, mask, false);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        LokrActivation act = (LokrActivation) activation;
        if (act.skipped()) return null;
        long n = dy.size(0);
        INDArray g = dy.mul(scale);
        if (act.mask() != null) g.muliRowVector(act.mask());
        // G as [a, N·b] (matching the forward's layout) and Z as [N·b, c]
        INDArray ga = g.reshape('c', n, a, b).permute(1, 0, 2).dup('c').reshape('c', a, n * b);
        INDArray zt = act.z().reshape('c', n, c, b).permute(0, 2, 1).dup('c').reshape('c', n * b, c);
        INDArray dw1 = Nd4j.gemm(ga, zt, false, false);                                       // [a, c]
        Tensors.release(zt);
        // M = w1ᵀ·G per row: [c, N·b] → [N·c, b]
        INDArray m = Nd4j.gemm(act.w1(), ga, true, false).reshape('c', c, n, b).permute(1, 0, 2).dup('c').reshape('c', n * c, b);
        Tensors.release(ga);
        INDArray xc = act.x().isView() ? act.x().dup('c') : act.x();
        INDArray x2 = xc.reshape('c', n * c, d);
        INDArray dw2 = Nd4j.gemm(m, x2, true, false);                                          // [b, d]
        INDArray dx = Nd4j.gemm(m, act.w2(), false, false).reshape('c', n, (long) c * d);      // [N, in]
        Tensors.release(m, g);
        if (xc != act.x()) Tensors.release(xc);
        accumulate(w1, w1a, w1b, dw1);
        accumulate(w2, w2a, w2b, dw2);
        Tensors.release(dw1, dw2);
        return dx;
    }

    /** dW into a full factor, or through W = W_a·W_b into the pair. */
    private static void accumulate(Parameter full, Parameter pa, Parameter pb, INDArray dw) {
        if (full != null) {
            full.accumulate(dw);
            return;
        }
        Nd4j.gemm(dw, pb.value(), pa.grad(), false, true, 1.0, 1.0);
        Nd4j.gemm(pa.value(), dw, pb.grad(), true, false, 1.0, 1.0);
    }

    /** s·(w1 ⊗ w2) as [out, in] (the explicit matrix; for merges and tests, never in forward). */
    public INDArray deltaLogical() {
        INDArray k1 = w1Value(), k2 = w2Value();
        // kron: rows a·b + b', columns c·d + d' → [a, b, c, d] = k1[a, c]·k2[b, d]
        INDArray out = Nd4j.create(k1.dataType(), a, b, c, d);
        for (int i = 0; i < a; i++) {
            for (int j = 0; j < c; j++) {
                out.get(org.nd4j.linalg.indexing.NDArrayIndex.point(i), org.nd4j.linalg.indexing.NDArrayIndex.all(),
                        org.nd4j.linalg.indexing.NDArrayIndex.point(j), org.nd4j.linalg.indexing.NDArrayIndex.all())
                        .assign(k2.mul(k1.getDouble(i, j)));
            }
        }
        return out.reshape('c', (long) a * b, (long) c * d).muli(scale);
    }

    @Override
    public INDArray deltaWeight() {
        return Adapter.inLayerLayout(base, deltaLogical());
    }

    @Override
    public Map<String, INDArray> stateDict() { return Lycoris.stateDict(parameters()); }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) { Lycoris.loadStateDict(parameters(), tensors, module, where); }
}
