package io.sparklora.adapters.glora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lycoris.Lycoris;
import io.sparklora.adapters.glora.GloraStructure.Support;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * GLoRA (Chavan et al., 2023, "One-for-All: Generalized LoRA") on one layer, in the form PEFT implements:
 * <pre>
 *   W' = W0 + W0 ⊙ A + B          A, B: [out, in] (logical layout)
 *   b' = b0 + b0 ⊙ D + E + W0·C   C: [in, 1]; D, E: [out]; b0 = 0 on a layer without bias
 * </pre>
 * Each term's support ({@link GloraStructure}) is fixed per layer. The tensors are PEFT's, all allocated whatever
 * the support: {@code glora_Ad} [out, r], {@code glora_Au} [r, in], {@code glora_Bd}, {@code glora_Bu},
 * {@code glora_Cd} [in, r], {@code glora_Cu} [r, 1], {@code glora_D} [out], {@code glora_E} [out]. A term reads them as
 * lora: Xd·Xu; vector: Xd[:, 0] (D, E: the whole tensor); constant: Xd[0, 0] (D, E: [0]); none: 0.
 *
 * <p>Init as PEFT's: Ad, Bd, Cd, D and E zero, Au, Bu and Cu kaiming-uniform (a = √5), so W' = W0 and b' = b0.
 * No scaling factor (GLoRA has no alpha) and no dropout.
 *
 * <p>Forward (x [N, in], y0 = x·W0ᵀ given): delta = A-part + B-part + bias-part, with
 * <pre>
 *   A lora:  x·(W0 ⊙ Ad·Au)ᵀ          (W0 ⊙ A materialised, [out, in], as PEFT does)
 *   A vector a / constant α:  y0 ⊙ a  /  α·y0            (diag(a)·W0 needs no new matrix)
 *   B lora:  (x·Buᵀ)·Bdᵀ;   B vector b / constant β:  Σ_i x_i · b  /  β·Σ_i x_i   (B = b·1ᵀ)
 *   bias:    b0 ⊙ D + E + W0·c,  c = Cd·Cu (lora) or Cd[:, 0] (vector)
 * </pre>
 * Backward (g = dy [N, out], gs = Σ_n g): dx = g·(W0 ⊙ A) or (g ⊙ a)·W0, plus g·B; dAd, dAu from W0 ⊙ gᵀx;
 * da = Σ_n g ⊙ y0; dBd = gᵀ·(x·Buᵀ), dBu = (g·Bd)ᵀ·x; db = gᵀ·Σ_i x_i; dD = gs ⊙ b0; dE = gs; dc = W0ᵀ·gs
 * (then dCd = dc·Cuᵀ, dCu = Cdᵀ·dc); a trained base bias also gets gs ⊙ D.
 *
 * <p>Merge: W ← W + W0 ⊙ A + B, b ← b + b0 ⊙ D + E + W0·C, a layer without bias getting one
 * ({@link Linear#mergeBias}); unmerge inverts it as PEFT does (W0 = (W' − B) / (1 + A)).
 */
public final class GloraAdapter implements Adapter {
    /** PEFT's tensor names. */
    public static final List<String> KEYS = List.of("glora_Ad", "glora_Au", "glora_Bd", "glora_Bu", "glora_Cd", "glora_Cu", "glora_D", "glora_E");

    private final String adapterName;
    private final String module;
    private final Linear base;
    private final AdapterConfig config;
    private final GloraStructure s;
    private final GloraStructure saved;     // the structure PEFT's config states for the file (GENERAL when layers differ)
    private final Parameter ad, au, bd, bu, cd, cu, d, e;
    private final int r;

    record GloraActivation(INDArray delta, INDArray x, INDArray wa, INDArray y0, INDArray h, INDArray sx) implements Activation {
        @Override public void release() { Tensors.release(wa, y0, h, sx, delta); }
        @Override public long bytesKept() { return Adapter.bytes(wa) + Adapter.bytes(y0) + Adapter.bytes(h) + Adapter.bytes(sx); }
    }

    GloraAdapter(String adapterName, Linear base, AdapterConfig config, GloraStructure structure, GloraStructure saved, Random rng) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        this.s = structure;
        this.saved = saved;
        this.r = config.r();
        int in = base.inFeatures(), out = base.outFeatures();
        io.sparklora.adapters.ParameterCounter.requireRankFits(module, in, out, r);
        DataType dt = base.baseWeight().dataType();
        this.ad = param("glora_Ad", Nd4j.zeros(dt, out, r));
        this.au = param("glora_Au", Lycoris.kaiming(rng, r, in, dt));
        this.bd = param("glora_Bd", Nd4j.zeros(dt, out, r));
        this.bu = param("glora_Bu", Lycoris.kaiming(rng, r, in, dt));
        this.cd = param("glora_Cd", Nd4j.zeros(dt, in, r));
        this.cu = param("glora_Cu", Lycoris.kaiming(rng, r, 1, dt));
        this.d = param("glora_D", Nd4j.zeros(dt, out));
        this.e = param("glora_E", Nd4j.zeros(dt, out));
    }

    private Parameter param(String key, INDArray value) {
        return new Parameter(module + "." + key + "." + adapterName, value, true, key);
    }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }
    @Override public List<Parameter> parameters() { return List.of(ad, au, bd, bu, cd, cu, d, e); }

    /** This layer's structure. */
    public GloraStructure structure() { return s; }

    /** The frozen W0 as a logical [out, in] view (no copy). */
    private INDArray w0() {
        INDArray w = base.baseWeight().dense();
        return base.transposed() ? w : w.transpose();
    }

    private static INDArray col0(INDArray m) { return m.get(NDArrayIndex.all(), NDArrayIndex.point(0)); }

    /** A = Ad·Au for a lora A, [out, in]. */
    private INDArray loraA() { return ad.value().mmul(au.value()); }

    /** The bias term b0 ⊙ D + E + W0·c, [out] (a new array). */
    private INDArray biasTerm() {
        int out = base.outFeatures();
        INDArray t = Nd4j.zeros(base.baseWeight().dataType(), out);
        Parameter b0 = base.bias();
        if (b0 != null && s.d() != Support.NONE) {
            if (s.d() == Support.VECTOR) t.addi(b0.value().mul(d.value()));
            else t.addi(b0.value().mul(d.value().getDouble(0)));
        }
        if (s.e() == Support.VECTOR) t.addi(e.value());
        else if (s.e() == Support.CONSTANT) t.addi(e.value().getDouble(0));
        INDArray c = cVector();
        if (c != null) {
            INDArray wc = base.baseWeight().forward(c.reshape(1, c.length()));     // (W0·c)ᵀ, [1, out]
            t.addi(wc.reshape(out));
            Tensors.release(wc, c);
        }
        return t;
    }

    /** c [in] for C's support, or null when none. */
    private INDArray cVector() {
        return switch (s.c()) {
            case LORA -> cd.value().mmul(cu.value()).reshape(base.inFeatures());
            case VECTOR -> col0(cd.value()).dup();
            default -> null;
        };
    }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        long n = x.size(0);
        int out = base.outFeatures();
        INDArray delta = Nd4j.zeros(x.dataType(), n, out);
        INDArray wa = null, y0 = null, h = null, sx = null;
        switch (s.a()) {
            case LORA -> {
                INDArray a = loraA();
                wa = a.muli(w0());                                                  // W0 ⊙ A, [out, in]
                Nd4j.gemm(x, wa, delta, false, true, 1.0, 1.0);
            }
            case VECTOR -> {
                y0 = baseOut.dup();
                delta.addi(y0.mulRowVector(col0(ad.value()).reshape(1, out)));
            }
            case CONSTANT -> {
                y0 = baseOut.dup();
                delta.addi(y0.mul(ad.value().getDouble(0, 0)));
            }
            case NONE -> { }
        }
        switch (s.b()) {
            case LORA -> {
                h = Nd4j.gemm(x, bu.value(), false, true);                          // [N, r]
                Nd4j.gemm(h, bd.value(), delta, false, true, 1.0, 1.0);
            }
            case VECTOR -> {
                sx = x.sum(true, 1);                                                 // [N, 1]
                Nd4j.gemm(sx, col0(bd.value()).reshape(1, out), delta, false, false, 1.0, 1.0);
            }
            case CONSTANT -> {
                sx = x.sum(true, 1);
                delta.addiColumnVector(sx.mul(bd.value().getDouble(0, 0)));
            }
            case NONE -> { }
        }
        INDArray bt = biasTerm();
        delta.addiRowVector(bt.reshape(1, out));
        Tensors.release(bt);
        return new GloraActivation(delta, x, wa, y0, h, sx);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        GloraActivation act = (GloraActivation) activation;
        INDArray x = act.x();
        int out = base.outFeatures();
        INDArray dx = null;
        switch (s.a()) {
            case LORA -> {
                INDArray gx = Nd4j.gemm(dy, x, true, false);                         // gᵀ·x, [out, in]
                INDArray dA = gx.muli(w0());                                         // W0 ⊙ gᵀx
                Nd4j.gemm(dA, au.value(), ad.grad(), false, true, 1.0, 1.0);         // [out, r]
                Nd4j.gemm(ad.value(), dA, au.grad(), true, false, 1.0, 1.0);         // [r, in]
                Tensors.release(dA);
                dx = Nd4j.gemm(dy, act.wa(), false, false);                          // [N, in]
            }
            case VECTOR -> {
                INDArray a = col0(ad.value()).reshape(1, out);
                INDArray gy = dy.mul(act.y0());
                col0(ad.grad()).addi(gy.sum(0));
                INDArray ga = dy.mulRowVector(a);
                dx = base.baseWeight().backwardInput(ga);
                Tensors.release(gy, ga);
            }
            case CONSTANT -> {
                INDArray gy = dy.mul(act.y0());
                ad.grad().putScalar(0, 0, ad.grad().getDouble(0, 0) + gy.sumNumber().doubleValue());
                dx = base.baseWeight().backwardInput(dy).muli(ad.value().getDouble(0, 0));
                Tensors.release(gy);
            }
            case NONE -> { }
        }
        INDArray dxB = null;
        switch (s.b()) {
            case LORA -> {
                Nd4j.gemm(dy, act.h(), bd.grad(), true, false, 1.0, 1.0);            // [out, r]
                INDArray dh = Nd4j.gemm(dy, bd.value(), false, false);               // [N, r]
                Nd4j.gemm(dh, x, bu.grad(), true, false, 1.0, 1.0);                  // [r, in]
                dxB = Nd4j.gemm(dh, bu.value(), false, false);
                Tensors.release(dh);
            }
            case VECTOR -> {
                INDArray b = col0(bd.value()).reshape(out, 1);
                INDArray db = Nd4j.gemm(dy, act.sx(), true, false);                  // [out, 1]
                col0(bd.grad()).addi(db.reshape(out));
                INDArray gb = dy.mmul(b);                                            // [N, 1]
                dxB = Nd4j.zeros(x.dataType(), x.size(0), x.size(1)).addiColumnVector(gb);
                Tensors.release(db, gb);
            }
            case CONSTANT -> {
                INDArray gsum = dy.sum(true, 1);                                     // [N, 1]
                bd.grad().putScalar(0, 0, bd.grad().getDouble(0, 0) + gsum.mul(act.sx()).sumNumber().doubleValue());
                dxB = Nd4j.zeros(x.dataType(), x.size(0), x.size(1)).addiColumnVector(gsum.muli(bd.value().getDouble(0, 0)));
                Tensors.release(gsum);
            }
            case NONE -> { }
        }
        if (dxB != null) {
            if (dx == null) dx = dxB;
            else {
                dx.addi(dxB);
                Tensors.release(dxB);
            }
        }
        backwardBias(dy.sum(0));
        return dx;
    }

    /** Gradients of the bias term from gs = Σ_n dy [out]. */
    private void backwardBias(INDArray gs) {
        Parameter b0 = base.bias();
        if (b0 != null && s.d() != Support.NONE) {
            INDArray gb = gs.mul(b0.value());
            if (s.d() == Support.VECTOR) d.grad().addi(gb);
            else d.grad().putScalar(0, d.grad().getDouble(0) + gb.sumNumber().doubleValue());
            Tensors.release(gb);
            if (b0.trainable()) {
                INDArray gd = s.d() == Support.VECTOR ? gs.mul(d.value()) : gs.mul(d.value().getDouble(0));
                b0.accumulate(gd);
                Tensors.release(gd);
            }
        }
        if (s.e() == Support.VECTOR) e.grad().addi(gs);
        else if (s.e() == Support.CONSTANT) e.grad().putScalar(0, e.grad().getDouble(0) + gs.sumNumber().doubleValue());
        if (s.c() != Support.NONE) {
            INDArray dc = base.baseWeight().backwardInput(gs.reshape(1, gs.length())).reshape(base.inFeatures(), 1);   // W0ᵀ·gs
            if (s.c() == Support.LORA) {
                Nd4j.gemm(dc, cu.value(), cd.grad(), false, true, 1.0, 1.0);          // [in, r]
                Nd4j.gemm(cd.value(), dc, cu.grad(), true, false, 1.0, 1.0);          // [r, 1]
            } else {
                col0(cd.grad()).addi(dc.reshape(base.inFeatures()));
            }
            Tensors.release(dc);
        }
        Tensors.release(gs);
    }

    /** W0 ⊙ A + B as [out, in] (a new array), from the logical W0 (read only). */
    private INDArray weightDelta(INDArray w0) {
        int out = base.outFeatures(), in = base.inFeatures();
        INDArray dW = switch (s.a()) {
            case LORA -> loraA().muli(w0);
            case VECTOR -> w0.mulColumnVector(col0(ad.value()).reshape(out, 1));
            case CONSTANT -> w0.mul(ad.value().getDouble(0, 0));
            case NONE -> Nd4j.zeros(w0.dataType(), out, in);
        };
        switch (s.b()) {
            case LORA -> dW.addi(bd.value().mmul(bu.value()));
            case VECTOR -> dW.addiColumnVector(col0(bd.value()).reshape(out, 1));
            case CONSTANT -> dW.addi(bd.value().getDouble(0, 0));
            case NONE -> { }
        }
        return dW;
    }

    /** W0 ⊙ A + B in the layer's storage layout. */
    @Override
    public INDArray deltaWeight() { return Adapter.inLayerLayout(base, weightDelta(w0())); }

    /** The additive form covers the weight; the bias part of the merge is {@link #merge}'s. */
    @Override
    public void merge(Linear layer) {
        INDArray bt = biasTerm();                                    // computed from W0 before W changes
        INDArray dW = deltaWeight();
        layer.baseWeight().mutableDense().addi(dW);
        Tensors.release(dW);
        if (layer.bias() != null || s.addsBias()) layer.mergeBias().addi(bt);
        Tensors.release(bt);
    }

    @Override
    public void unmerge(Linear layer) {
        int out = base.outFeatures();
        INDArray w = layer.baseWeight().mutableDense();
        INDArray wl = base.transposed() ? w : w.transpose();                      // merged W', logical view
        switch (s.b()) {                                                          // W' − B
            case LORA -> {
                INDArray b = bd.value().mmul(bu.value());
                wl.subi(b);
                Tensors.release(b);
            }
            case VECTOR -> wl.subiColumnVector(col0(bd.value()).reshape(out, 1));
            case CONSTANT -> wl.subi(bd.value().getDouble(0, 0));
            case NONE -> { }
        }
        switch (s.a()) {                                                          // / (1 + A)
            case LORA -> {
                INDArray a = loraA().addi(1.0);
                wl.divi(a);
                Tensors.release(a);
            }
            case VECTOR -> wl.diviColumnVector(col0(ad.value()).reshape(out, 1).add(1.0));
            case CONSTANT -> wl.divi(1.0 + ad.value().getDouble(0, 0));
            case NONE -> { }
        }
        if (layer.bias() != null) {
            INDArray b = layer.bias().mutableValue();
            Parameter b0 = base.bias();
            // b' = b0·(1 + D) + E + W0·c  ⇒  b0 = (b' − E − W0·c) / (1 + D); on a layer whose bias the merge created, D plays no part
            if (s.e() == Support.VECTOR) b.subi(e.value());
            else if (s.e() == Support.CONSTANT) b.subi(e.value().getDouble(0));
            INDArray c = cVector();
            if (c != null) {
                INDArray wc = base.baseWeight().forward(c.reshape(1, c.length()));    // W now holds W0 again
                b.subi(wc.reshape(out));
                Tensors.release(wc, c);
            }
            if (!layer.hasMergeAddedBias() && b0 != null && s.d() != Support.NONE) {
                if (s.d() == Support.VECTOR) b.divi(d.value().add(1.0));
                else b.divi(1.0 + d.value().getDouble(0));
            }
        }
    }

    /**
     * PEFT's tensors. When this adapter's layers do not share one structure PEFT's config can state, the file says the
     * most general one ({@link GloraStructure#GENERAL}) and each layer's tensors are rewritten to mean the same under it:
     * a vector a becomes Ad = [a, 0, ...], Au = [1; 0; ...], a constant α the vector α·1, none zeros (the forward is
     * unchanged; entries a layer's own structure does not read are not kept).
     */
    @Override
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = Lycoris.stateDict(parameters());
        if (saved.equals(s)) return m;
        Map<String, INDArray> t = new LinkedHashMap<>(m);
        rewriteMatrix(t, "glora_Ad", "glora_Au", s.a(), saved.a());
        rewriteMatrix(t, "glora_Bd", "glora_Bu", s.b(), saved.b());
        rewriteMatrix(t, "glora_Cd", "glora_Cu", s.c(), saved.c());
        rewriteVector(t, "glora_D", s.d(), saved.d());
        rewriteVector(t, "glora_E", s.e(), saved.e());
        return t;
    }

    private static void rewriteMatrix(Map<String, INDArray> t, String dKey, String uKey, Support own, Support as) {
        if (own == as) return;
        if (as != Support.LORA) throw new IllegalStateException("GLoRA tensors are rewritten into lora form only, not " + as.key());
        INDArray xd = t.get(dKey), xu = t.get(uKey);
        INDArray nd = Nd4j.zeros(xd.dataType(), xd.shape()), nu = xu.dup();
        switch (own) {
            case VECTOR -> col0(nd).assign(col0(xd));
            case CONSTANT -> col0(nd).assign(xd.getDouble(0, 0));
            default -> { }
        }
        if (own != Support.NONE) {
            nu.assign(0);
            nu.getRow(0).assign(1.0);
        }
        t.put(dKey, nd);
        t.put(uKey, nu);
    }

    private static void rewriteVector(Map<String, INDArray> t, String key, Support own, Support as) {
        if (own == as) return;
        if (as != Support.VECTOR) throw new IllegalStateException("GLoRA vectors are rewritten into vector form only, not " + as.key());
        INDArray v = t.get(key);
        t.put(key, own == Support.CONSTANT ? Nd4j.zeros(v.dataType(), v.shape()).addi(v.getDouble(0)) : Nd4j.zeros(v.dataType(), v.shape()));
    }

    /** The tensors as this layer holds them (not rewritten), by PEFT key. */
    Map<String, INDArray> stateDictOwn() { return Lycoris.stateDict(parameters()); }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) { Lycoris.loadStateDict(parameters(), tensors, module, where); }
}
