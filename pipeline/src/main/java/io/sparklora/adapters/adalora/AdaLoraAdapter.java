package io.sparklora.adapters.adalora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA (Zhang et al., 2023) on one layer: ΔW = s·P·Λ·Q in SVD form, with Q = {@code lora_A} [r, in] (right singular
 * vectors), Λ = {@code lora_E} [r, 1] (the singular values, a vector) and P = {@code lora_B} [out, r] (left singular
 * vectors), r = {@code init_r}. The scale is PEFT's: s = alpha / (r + 1e-5), r the initial rank, unchanged by pruning.
 * E starts at zero and A, B at N(0, 0.02), so training starts from the base model exactly.
 *
 * <p>Pruning sets singular values to zero ({@link #applyMask}) and keeps the vectors: a pruned triplet can come back
 * when a later allocation keeps it (its E then trains from zero).
 *
 * <p>Forward (x [N, in]): x' = dropout(x); Q' = A ⊙ E (row i scaled by E_i) [r, in]; h = x'·Q'ᵀ [N, r];
 * delta = s·h·Bᵀ [N, out]. Backward: dB = s·dyᵀ·h; dh = s·dy·B [N, r]; dQ' = dhᵀ·x' [r, in];
 * dA = dQ' ⊙ E; dE_i = Σ_j dQ'_ij·A_ij; dx = dh·Q'.
 */
public final class AdaLoraAdapter implements Adapter {
    private final String adapterName;
    private final String module;
    private final Linear base;
    private final AdapterConfig config;
    private final Parameter a;     // [r, in]
    private final Parameter e;     // [r, 1]
    private final Parameter b;     // [out, r]
    private final double scale;
    private final boolean[] mask;  // the triplets in use; pruned ones have E = 0

    private record Act(INDArray delta, INDArray xIn, INDArray keepMask, INDArray h, INDArray q) implements Activation {
        @Override public void release() {
            if (keepMask != null) Tensors.release(xIn, keepMask);
            Tensors.release(h, q, delta);
        }

        @Override public long bytesKept() {
            return (keepMask == null ? 0 : Adapter.bytes(xIn) + Adapter.bytes(keepMask)) + Adapter.bytes(h) + Adapter.bytes(q);
        }
    }

    public AdaLoraAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        int in = base.inFeatures(), out = base.outFeatures(), r = config.r();
        ParameterCounter.requireRankFits(module, in, out, r);
        DataType dt = base.baseWeight().dataType();
        this.a = new Parameter(module + ".lora_A." + adapterName, Nd4j.randn(rng, new long[]{r, in}).castTo(dt).muli(0.02), true, "lora_A");
        this.e = new Parameter(module + ".lora_E." + adapterName, Nd4j.zeros(dt, r, 1), true, "lora_E");
        this.b = new Parameter(module + ".lora_B." + adapterName, Nd4j.randn(rng, new long[]{out, r}).castTo(dt).muli(0.02), true, "lora_B");
        this.scale = config.alpha() / (r + 1e-5);
        this.mask = new boolean[r];
        Arrays.fill(mask, true);
    }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }
    @Override public List<Parameter> parameters() { return List.of(a, e, b); }
    public Parameter loraA() { return a; }
    public Parameter loraE() { return e; }
    public Parameter loraB() { return b; }
    public String module() { return module; }
    public double scale() { return scale; }
    public int initialRank() { return mask.length; }

    /** The triplets in use (a copy). */
    public boolean[] mask() { return mask.clone(); }

    /** Ranks in use. */
    public int rank() {
        int n = 0;
        for (boolean m : mask) if (m) n++;
        return n;
    }

    /** Keeps the triplets where {@code keep} is true and sets the others' singular values to zero. */
    public void applyMask(boolean[] keep) {
        if (keep.length != mask.length) throw new IllegalArgumentException(module + ": a mask of " + keep.length + " for rank " + mask.length);
        System.arraycopy(keep, 0, mask, 0, keep.length);
        zeroPruned();
    }

    /** Records which triplets are in use without touching E (a task receiving the driver's masks with the adapter's values). */
    void setMask(boolean[] keep) {
        if (keep.length != mask.length) throw new IllegalArgumentException(module + ": a mask of " + keep.length + " for rank " + mask.length);
        System.arraycopy(keep, 0, mask, 0, keep.length);
    }

    /** E_i = 0 for every pruned triplet i (PEFT's masked_fill). */
    void zeroPruned() {
        INDArray v = e.mutableValue();
        for (int i = 0; i < mask.length; i++) if (!mask[i]) v.putScalar(i, 0, 0.0);
    }

    /** Q' = A ⊙ E, [r, in]. */
    private INDArray scaledA() { return a.value().mulColumnVector(e.value()); }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        INDArray keep = Adapter.dropoutMask(x, config.dropout(), ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray q = scaledA();                                                    // [r,in]
        INDArray h = Nd4j.gemm(xIn, q, false, true);                               // [N,r]
        INDArray delta = Nd4j.gemm(h, b.value(), false, true).muli(scale);        // [N,out]
        return new Act(delta, xIn, keep, h, q);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        Act act = (Act) activation;
        if (b.trainable()) Nd4j.gemm(dy, act.h(), b.grad(), true, false, scale, 1.0);        // dB = s·dyᵀ·h  [out,r]
        INDArray dh = Nd4j.gemm(dy, b.value(), false, false).muli(scale);                     // [N,r]
        INDArray dq = Nd4j.gemm(dh, act.xIn(), true, false);                                 // dQ' = dhᵀ·x'  [r,in]
        if (a.trainable()) {
            INDArray da = dq.mulColumnVector(e.value());
            a.accumulate(da);
            Tensors.release(da);
        }
        if (e.trainable()) {
            INDArray prod = dq.mul(a.value());
            INDArray de = prod.sum(1).reshape(mask.length, 1);
            e.accumulate(de);
            Tensors.release(prod, de);
        }
        INDArray dx = Nd4j.gemm(dh, act.q(), false, false);                                  // [N,in]
        Tensors.release(dh, dq);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }

    /** s·B·(A ⊙ E), [out, in]. */
    private INDArray deltaLogical() {
        INDArray q = scaledA();
        INDArray d = b.value().mmul(q).muli(scale);
        Tensors.release(q);
        return d;
    }

    @Override
    public INDArray deltaWeight() { return Adapter.inLayerLayout(base, deltaLogical()); }

    /** The full-rank tensors under PEFT's names (no ".weight": PEFT keeps them in ParameterDicts); checkpoints use these. */
    @Override
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put("lora_A", a.value());
        m.put("lora_E", e.value());
        m.put("lora_B", b.value());
        return m;
    }

    /** The tensors sliced to the triplets in use, as PEFT saves an AdaLoRA adapter with a rank pattern. */
    Map<String, INDArray> slicedStateDict() {
        int[] kept = keptIndices();
        Map<String, INDArray> m = new LinkedHashMap<>();
        if (kept.length == mask.length) return stateDict();
        if (kept.length == 0) {
            m.put("lora_A", Nd4j.create(a.value().dataType(), 0, base.inFeatures()));
            m.put("lora_E", Nd4j.create(e.value().dataType(), 0, 1));
            m.put("lora_B", Nd4j.create(b.value().dataType(), base.outFeatures(), 0));
            return m;
        }
        m.put("lora_A", a.value().getRows(kept));
        m.put("lora_E", e.value().getRows(kept));
        m.put("lora_B", b.value().getColumns(kept));
        return m;
    }

    private int[] keptIndices() {
        int[] k = new int[rank()];
        for (int i = 0, j = 0; i < mask.length; i++) if (mask[i]) k[j++] = i;
        return k;
    }

    /**
     * Loads full-rank tensors, or tensors sliced to the triplets of {@code keep} (a PEFT file with a rank pattern): the
     * kept rows go to their places, the others stay with E = 0 (and A, B as initialised: pruned, they do not matter).
     */
    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) {
        INDArray ta = tensors.get("lora_A"), te = tensors.get("lora_E"), tb = tensors.get("lora_B");
        for (String k : new String[]{"lora_A", "lora_E", "lora_B"}) {
            if (tensors.get(k) == null) throw new IllegalArgumentException(where + ": tensor " + module + "." + k + " is missing");
        }
        int rows = (int) ta.size(0);
        boolean[] pattern = AdaLoraMethod.rankPattern(config).get(module);
        if (pattern != null && rows != mask.length) {
            loadSliced(tensors, pattern, where);
            return;
        }
        if (rows == mask.length && te.size(0) == mask.length && tb.size(1) == mask.length) {
            Adapter.load(a, ta, module, "lora_A", where);
            Adapter.load(e, te, module, "lora_E", where);
            Adapter.load(b, tb, module, "lora_B", where);
            return;
        }
        throw new IllegalArgumentException(where + ": " + module + ".lora_A has " + rows + " rows but the adapter's init_r is " + mask.length
                + " (a file sliced to a rank pattern is loaded with its adapter_config.json)");
    }

    /** Loads tensors sliced to the kept triplets of {@code keep} into their rows (the other triplets pruned). */
    private void loadSliced(Map<String, INDArray> tensors, boolean[] keep, String where) {
        if (keep.length != mask.length) {
            throw new IllegalArgumentException(where + ": the rank pattern of " + module + " has " + keep.length + " entries, init_r is " + mask.length);
        }
        System.arraycopy(keep, 0, mask, 0, keep.length);
        int[] kept = keptIndices();
        INDArray ta = tensors.get("lora_A"), te = tensors.get("lora_E"), tb = tensors.get("lora_B");    // present: loadStateDict checked
        long[] wantA = {kept.length, base.inFeatures()}, wantE = {kept.length, 1}, wantB = {base.outFeatures(), kept.length};
        if (!Arrays.equals(ta.shape(), wantA) || !Arrays.equals(te.shape(), wantE) || !Arrays.equals(tb.shape(), wantB)) {
            throw new IllegalArgumentException(where + ": " + module + ": tensors of shapes " + Arrays.toString(ta.shape()) + ", "
                    + Arrays.toString(te.shape()) + ", " + Arrays.toString(tb.shape()) + " do not match its rank pattern of " + kept.length
                    + " kept triplets (expected " + Arrays.toString(wantA) + ", " + Arrays.toString(wantE) + ", " + Arrays.toString(wantB) + ")");
        }
        INDArray av = a.mutableValue(), ev = e.mutableValue(), bv = b.mutableValue();
        ev.assign(0);
        for (int j = 0; j < kept.length; j++) {
            av.putRow(kept[j], ta.getRow(j).castTo(av.dataType()));
            ev.putScalar(kept[j], 0, te.getDouble(j, 0));
            bv.putColumn(kept[j], tb.getColumn(j).castTo(bv.dataType()).reshape(base.outFeatures(), 1));
        }
    }
}
