package io.sparklora.model;

import io.sparklora.adapters.Adapter;
import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.List;

/**
 * Multi-head causal self-attention, with the projection layouts we load:
 * GPT-2's fused {@code c_attn} (x → [q|k|v], [N, 3C]) with {@code c_proj}; the Llama family's separate
 * {@code q_proj, k_proj, v_proj, o_proj}, or Phi-3's fused {@code qkv_proj} (x → [q | k | v], [N, (H+2·Hkv)·D]),
 * with rotary positions and grouped-query attention (H query heads share Hkv key/value heads, each kv head
 * serving H/Hkv consecutive query heads); Qwen3 normalises each head of q and k (RMSNorm over D) before the
 * rotation.
 *
 * <p>Shapes: x [N, C] with N = B·T; per head q [B, H, T, D], k, v [B, Hkv, T, D] (D need not be C/H);
 * scores, probabilities [B, H, T, T]; output [N, C].
 */
public final class CausalSelfAttention {
    private final Linear qkv;      // GPT-2 fused projection, or null
    private final Linear q, k, v;  // Llama projections, or null
    private final Linear qkvRows;  // Phi-3 fused projection [q | k | v], or null
    private final Linear o;
    private final Norm qNorm, kNorm;      // Qwen3 per-head RMSNorm, or null
    private final RotaryEmbedding rope;   // null for GPT-2
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private boolean recomputeProbs = true;   // backward recomputes softmax(q·kᵀ + mask) instead of keeping it

    /**
     * What forward saved: q is already scaled by 1/√D; heads holds the fused [3, B, H, T, D] copy (GPT-2) or null;
     * qNorm/kNorm the per-head norms' caches (Qwen3) or null.
     */
    public record Cache(int batch, int seq, List<Linear.Cache> inputs, INDArray heads, INDArray q, INDArray kFull,
                        INDArray vFull, INDArray probs, Linear.Cache out, Norm.Cache qNorm, Norm.Cache kNorm) {
        public void release() {
            inputs.forEach(Linear.Cache::release);
            out.release();
            if (qNorm != null) qNorm.release();
            if (kNorm != null) kNorm.release();
            Tensors.release(heads, q, kFull, vFull, probs);
        }

        /**
         * The same cache with q, k, v (or GPT-2's fused heads, of which they are views), the probabilities if kept and
         * the head norms' x̂ held in bfloat16 ({@link SavedActivations}); backward casts them back.
         */
        public Cache halfPrecision() {
            if (heads != null) {
                return new Cache(batch, seq, inputs, SavedActivations.store(heads), null, null, null, SavedActivations.store(probs),
                        out, qNorm, kNorm);
            }
            return new Cache(batch, seq, inputs, null, SavedActivations.store(q), SavedActivations.store(kFull), SavedActivations.store(vFull),
                    SavedActivations.store(probs), out, qNorm == null ? null : qNorm.halfPrecision(), kNorm == null ? null : kNorm.halfPrecision());
        }

        /** fp32 copies of what {@link #halfPrecision} stored in half (this cache itself when nothing was). */
        Cache loaded() {
            if (heads != null && heads.dataType() == SavedActivations.HALF) {
                INDArray h = SavedActivations.load(heads);
                return new Cache(batch, seq, inputs, h, h.get(NDArrayIndex.point(0)), h.get(NDArrayIndex.point(1)), h.get(NDArrayIndex.point(2)),
                        SavedActivations.load(probs), out, qNorm, kNorm);
            }
            if (heads != null || q == null || q.dataType() != SavedActivations.HALF) return this;
            return new Cache(batch, seq, inputs, null, SavedActivations.load(q), SavedActivations.load(kFull), SavedActivations.load(vFull),
                    SavedActivations.load(probs), out, qNorm, kNorm);
        }

        /** Frees the fp32 copies {@link #loaded} made from this cache. */
        void releaseLoaded(Cache loaded) {
            if (loaded == this) return;
            SavedActivations.releaseLoaded(loaded.heads, heads);
            SavedActivations.releaseLoaded(loaded.q, q);
            SavedActivations.releaseLoaded(loaded.kFull, kFull);
            SavedActivations.releaseLoaded(loaded.vFull, vFull);
            SavedActivations.releaseLoaded(loaded.probs, probs);
        }
    }

    /** GPT-2 layout. */
    public static CausalSelfAttention fused(Linear cAttn, Linear cProj, int heads) {
        return new CausalSelfAttention(cAttn, null, null, null, null, cProj, null, null, null, heads, heads, cProj.outFeatures() / heads);
    }

    /** Llama layout. */
    public static CausalSelfAttention separate(Linear q, Linear k, Linear v, Linear o, RotaryEmbedding rope,
                                               int heads, int kvHeads) {
        return separate(q, k, v, o, null, null, rope, heads, kvHeads);
    }

    /** Llama layout with optional per-head q/k norms (Qwen3; null for none). */
    public static CausalSelfAttention separate(Linear q, Linear k, Linear v, Linear o, Norm qNorm, Norm kNorm,
                                               RotaryEmbedding rope, int heads, int kvHeads) {
        return new CausalSelfAttention(null, q, k, v, null, o, qNorm, kNorm, rope, heads, kvHeads, o.inFeatures() / heads);
    }

    /** Phi-3 layout: one projection whose output rows are q (H·D), then k (Hkv·D), then v (Hkv·D). */
    public static CausalSelfAttention fusedRows(Linear qkvProj, Linear o, RotaryEmbedding rope, int heads, int kvHeads) {
        return new CausalSelfAttention(null, null, null, null, qkvProj, o, null, null, rope, heads, kvHeads, o.inFeatures() / heads);
    }

    private CausalSelfAttention(Linear qkv, Linear q, Linear k, Linear v, Linear qkvRows, Linear o, Norm qNorm, Norm kNorm,
                                RotaryEmbedding rope, int heads, int kvHeads, int headDim) {
        this.qkv = qkv;
        this.q = q;
        this.k = k;
        this.v = v;
        this.qkvRows = qkvRows;
        this.o = o;
        this.qNorm = qNorm;
        this.kNorm = kNorm;
        this.rope = rope;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
    }

    public List<Linear> linears() {
        List<Linear> l = new ArrayList<>();
        if (qkv != null) l.add(qkv);
        else if (qkvRows != null) l.add(qkvRows);
        else { l.add(q); l.add(k); l.add(v); }
        l.add(o);
        return l;
    }

    /** The per-head norms' parameters (Qwen3), else empty. */
    public List<Parameter> normParameters() {
        List<Parameter> p = new ArrayList<>();
        if (qNorm != null) p.addAll(qNorm.parameters());
        if (kNorm != null) p.addAll(kNorm.parameters());
        return p;
    }

    /**
     * The projections of x [B·T, C] split into heads, shared by {@link #forward} and {@link #forwardCached}: q
     * [B, H, T, D], k and v [B, Hkv, T, D]. With GPT-2's fused {@code c_attn} the three are views of one copy
     * {@code fused} [3, B, H, T, D] and q is already scaled by 1/√D (no rotary embedding there); otherwise q and k
     * are per-head normalised where the model says so, not yet rotated and not yet scaled. For backward
     * ({@code keep}) the head norms' caches are kept; otherwise everything but q, k, v is released.
     */
    private record Projected(List<Linear.Cache> inputs, INDArray fused, INDArray q, INDArray k, INDArray v,
                             Norm.Cache qNorm, Norm.Cache kNorm) {}

    private Projected project(INDArray x, int batch, int seq, ForwardContext ctx, boolean keep) {
        List<Linear.Cache> inputs = new ArrayList<>();
        if (qkv != null) {
            Linear.Cache c = qkv.forward(x, ctx);
            inputs.add(c);
            // one copy for all three: [N, 3C] → [B, T, 3, H, D] → [3, B, H, T, D]
            INDArray fused = c.out().reshape('c', batch, seq, 3, heads, headDim).permute(2, 0, 3, 1, 4).dup('c');
            Tensors.release(c.out());     // backward never reads a projection's output
            return new Projected(inputs, fused, fused.get(NDArrayIndex.point(0)).muli(1.0 / Math.sqrt(headDim)),
                    fused.get(NDArrayIndex.point(1)), fused.get(NDArrayIndex.point(2)), null, null);
        }
        INDArray qFlat, kFlat, vFlat;
        if (qkvRows != null) {
            Linear.Cache c = qkvRows.forward(x, ctx);
            inputs.add(c);
            long qd = (long) heads * headDim, kvd = (long) kvHeads * headDim;
            qFlat = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(0, qd)).dup('c');
            kFlat = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(qd, qd + kvd)).dup('c');
            vFlat = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(qd + kvd, qd + 2 * kvd)).dup('c');
            Tensors.release(c.out());
        } else {
            Linear.Cache cq = q.forward(x, ctx), ck = k.forward(x, ctx), cv = v.forward(x, ctx);
            inputs.add(cq); inputs.add(ck); inputs.add(cv);
            qFlat = cq.out(); kFlat = ck.out(); vFlat = cv.out();
        }
        Norm.Cache qNormCache = null, kNormCache = null;
        if (qNorm != null) {
            qNormCache = headNorm(qNorm, qFlat, heads);
            kNormCache = headNorm(kNorm, kFlat, kvHeads);
            Tensors.release(qFlat, kFlat);
            if (!keep) Tensors.release(qNormCache.xhat(), qNormCache.rstd(), kNormCache.xhat(), kNormCache.rstd());
            qFlat = qNormCache.out();
            kFlat = kNormCache.out();
        }
        INDArray qh = toHeads(qFlat, batch, seq, heads), kh = toHeads(kFlat, batch, seq, kvHeads), vh = toHeads(vFlat, batch, seq, kvHeads);
        if (qNorm == null || !keep) Tensors.release(qFlat, kFlat);
        Tensors.release(vFlat);
        return new Projected(inputs, null, qh, kh, vh, keep ? qNormCache : null, keep ? kNormCache : null);
    }

    /**
     * Whether forward drops the attention probabilities [B, H, T, T] and backward recomputes them from q and k, which
     * forward keeps anyway: one more q·kᵀ matmul and softmax per layer in backward, for the largest activation of a
     * layer at long sequences (B·H·T² floats: 12.6 MB per GPT-2-small layer at 4 × 256). The recomputed probabilities
     * are the same ops on the same inputs, so gradients are identical. On by default: at GPT-2 small (LoRA, 4 × 256)
     * it lowered the step's peak RSS by about 170 MiB and was no slower (docs/BENCHMARKS.md, "Selective
     * recomputation").
     */
    public void setRecomputeProbs(boolean on) { this.recomputeProbs = on; }

    public boolean recomputeProbs() { return recomputeProbs; }

    /** softmax(q·kᵀ + causal mask) over the last axis: q [B, H, T, D] (scaled), k [B, H, T, D]; [B, H, T, T]. */
    private static INDArray attentionProbs(INDArray qh, INDArray kFull) {
        INDArray scores = Nd4j.matmul(qh, kFull, false, true, false);
        INDArray probs = Kernels.active().causalSoftmax(scores);
        if (probs != scores) Tensors.release(scores);
        return probs;
    }

    public Cache forward(INDArray x, int batch, int seq, ForwardContext ctx) {
        Projected p = project(x, batch, seq, ctx, true);
        INDArray qh = p.q(), kh = p.k(), vh = p.v();
        if (p.fused() == null) {
            INDArray qr = rope.forward(qh), kr = rope.forward(kh);
            Tensors.release(qh, kh);
            qh = qr.muli(1.0 / Math.sqrt(headDim));
            kh = kr;
        }
        INDArray kFull = repeatKv(kh), vFull = repeatKv(vh);
        if (kFull != kh) Tensors.release(kh);
        if (vFull != vh) Tensors.release(vh);
        // the 1/√D scale sits in q, so scores need no extra pass
        INDArray probs = attentionProbs(qh, kFull);
        INDArray y = Nd4j.matmul(probs, vFull);                              // [B,H,T,D]
        if (recomputeProbs) {
            Tensors.release(probs);
            probs = null;
        }
        INDArray yFlat = fromHeads(y, batch, seq);
        Tensors.release(y);
        Linear.Cache out = o.forward(yFlat, ctx);
        if (!o.needsInput()) Tensors.release(yFlat);
        return new Cache(batch, seq, p.inputs(), p.fused(), qh, kFull, vFull, probs, out, p.qNorm(), p.kNorm());
    }

    /**
     * Inference with a KV cache: x [B·t, C] holds the next t tokens of each of the B rows (t = the prompt's
     * padded length at prefill, 1 per decoding step); their keys and values are appended to {@code cache}'s slots
     * for {@code layer}, and each query attends to every filled slot of its row up to its own, padding masked.
     * The projections run as in {@link #forward} (adapters included, inference context), rotary positions at each
     * token's absolute position. Returns the output [B·t, C]; nothing is kept for backward.
     *
     * <p>Shapes: q [B, H, t, D]; new k, v [B, Hkv, t, D]; cached k, v [B, Hkv, L, D] with L = cache length + t;
     * scores, probabilities [B, H, t, L].
     */
    public INDArray forwardCached(INDArray x, int batch, int seq, KvCache cache, int layer, int[] positions, ForwardContext ctx) {
        Projected p = project(x, batch, seq, ctx, false);
        INDArray qh = p.q(), kh = p.k(), vh = p.v(), fused = p.fused();
        List<Linear.Cache> inputs = p.inputs();
        if (fused == null) {
            int seqLen = cache.length() + seq;
            INDArray qr = rope.forwardAt(qh, positions, seqLen, cache.capacity()), kr = rope.forwardAt(kh, positions, seqLen, cache.capacity());
            Tensors.release(qh, kh);
            qh = qr.muli(1.0 / Math.sqrt(headDim));
            kh = kr;
        }
        inputs.forEach(Linear.Cache::release);
        INDArray[] kv = cache.append(layer, kh, vh);
        Tensors.release(kh, vh);
        INDArray kFull = repeatKv(kv[0]), vFull = repeatKv(kv[1]);
        INDArray mask = cache.mask(seq, x.dataType());
        INDArray scores = Nd4j.matmul(qh, kFull, false, true, false).addi(mask);
        INDArray probs = Nd4j.nn().softmax(scores, -1);
        INDArray y = Nd4j.matmul(probs, vFull);                               // [B,H,t,D]
        INDArray yFlat = fromHeads(y, batch, seq);
        Tensors.release(qh, mask, scores, probs, y, fused);
        if (kFull != kv[0]) Tensors.release(kFull);
        if (vFull != kv[1]) Tensors.release(vFull);
        Linear.Cache out = o.forward(yFlat, ctx);
        INDArray result = out.out();
        Tensors.release(yFlat);
        for (Adapter.Activation a : out.adapterActivations()) a.release();
        return result;
    }

    /** RMSNorm over each head's D values: [N, h·D] viewed as [N·h, D]; the cache's out() is [N, h·D]. */
    private Norm.Cache headNorm(Norm norm, INDArray flat, int h) {
        long n = flat.size(0);
        Norm.Cache c = norm.forward(flat.reshape('c', n * h, headDim));
        return new Norm.Cache(c.out().reshape('c', n, (long) h * headDim), c.xhat(), c.rstd());
    }

    private INDArray headNormBackward(Norm norm, Norm.Cache c, INDArray dFlat, int h) {
        long n = dFlat.size(0);
        Norm.Cache perHead = new Norm.Cache(c.out().reshape('c', n * h, headDim), c.xhat(), c.rstd());
        return norm.backward(perHead, dFlat.reshape('c', n * h, headDim)).reshape('c', n, (long) h * headDim);
    }

    public INDArray backward(Cache saved, INDArray dy) {
        Cache c = saved.loaded();
        try {
            return backwardLoaded(c, dy);
        } finally {
            saved.releaseLoaded(c);
        }
    }

    private INDArray backwardLoaded(Cache c, INDArray dy) {
        int b = c.batch(), t = c.seq();
        double scale = 1.0 / Math.sqrt(headDim);
        INDArray dyFlat = o.backward(c.out(), dy);
        INDArray dY = toHeads(dyFlat, b, t, heads);                         // [B,H,T,D]
        Tensors.release(dyFlat);
        INDArray probs = c.probs() != null ? c.probs() : attentionProbs(c.q(), c.kFull());
        INDArray dS = Nd4j.matmul(dY, c.vFull(), false, true, false);       // dP [B,H,T,T]
        INDArray dV = Nd4j.matmul(probs, dY, true, false, false);           // [B,H,T,D]
        Tensors.release(dY);
        Kernels.active().causalSoftmaxBackwardInPlace(dS, probs);           // dS = P ⊙ (dP − Σ_j dP⊙P)
        if (c.probs() == null) Tensors.release(probs);
        INDArray dQ = Nd4j.matmul(dS, c.kFull()).muli(scale);             // scores = (q/√D)·kᵀ
        INDArray dK = Nd4j.matmul(dS, c.q(), true, false, false);           // q here is already scaled
        Tensors.release(dS);
        INDArray dKr = reduceKv(dK), dVr = reduceKv(dV);
        if (dKr != dK) Tensors.release(dK);
        if (dVr != dV) Tensors.release(dV);
        if (qkv != null) {
            // [3, B, H, T, D] → [B, T, 3, H, D] → [N, 3C]: the adjoint of the forward's single copy
            INDArray stacked = Nd4j.stack(0, dQ, dKr, dVr);
            Tensors.release(dQ, dKr, dVr);
            INDArray dqkv = stacked.permute(1, 3, 0, 2, 4).dup('c').reshape('c', (long) b * t, 3L * heads * headDim);
            Tensors.release(stacked);
            INDArray dx = qkv.backward(c.inputs().get(0), dqkv);
            Tensors.release(dqkv);
            return dx;
        }
        INDArray dQr = rope.backward(dQ), dKrr = rope.backward(dKr);
        Tensors.release(dQ, dKr);
        INDArray dq = fromHeads(dQr, b, t), dk = fromHeads(dKrr, b, t), dv = fromHeads(dVr, b, t);
        Tensors.release(dQr, dKrr, dVr);
        if (qNorm != null) {
            INDArray dqn = headNormBackward(qNorm, c.qNorm(), dq, heads), dkn = headNormBackward(kNorm, c.kNorm(), dk, kvHeads);
            Tensors.release(dq, dk);
            dq = dqn;
            dk = dkn;
        }
        if (qkvRows != null) {
            INDArray dqkv = Nd4j.concat(1, dq, dk, dv);
            Tensors.release(dq, dk, dv);
            INDArray dx = qkvRows.backward(c.inputs().get(0), dqkv);
            Tensors.release(dqkv);
            return dx;
        }
        INDArray dx = q.backward(c.inputs().get(0), dq);
        INDArray dxk = k.backward(c.inputs().get(1), dk), dxv = v.backward(c.inputs().get(2), dv);
        dx.addi(dxk).addi(dxv);
        Tensors.release(dq, dk, dv, dxk, dxv);
        return dx;
    }

    /** Whether backward needs the input x (some input projection trains). */
    public boolean needsInput() {
        if (qkv != null) return qkv.needsInput();
        if (qkvRows != null) return qkvRows.needsInput();
        return q.needsInput() || k.needsInput() || v.needsInput();
    }

    /** [N, h·D] → [B, h, T, D], contiguous. */
    private INDArray toHeads(INDArray flat, int batch, int seq, int h) {
        INDArray src = flat.isView() ? flat.dup('c') : flat;
        return src.reshape('c', batch, seq, h, headDim).permute(0, 2, 1, 3).dup('c');
    }

    /** [B, h, T, D] → [N, h·D], contiguous. */
    private INDArray fromHeads(INDArray x, int batch, int seq) {
        long h = x.size(1);
        return x.permute(0, 2, 1, 3).dup('c').reshape('c', (long) batch * seq, h * headDim);
    }

    /** [B, Hkv, T, D] → [B, H, T, D]: kv head j serves query heads j·G .. j·G+G−1. */
    private INDArray repeatKv(INDArray x) {
        if (kvHeads == heads) return x;
        int g = heads / kvHeads;
        long b = x.size(0), t = x.size(2);
        return x.reshape('c', b, kvHeads, 1, t, headDim).broadcast(b, kvHeads, g, t, headDim).dup('c')
                .reshape('c', b, heads, t, headDim);
    }

    /** The adjoint of {@link #repeatKv}: sums the gradients of the query heads sharing a kv head. */
    private INDArray reduceKv(INDArray dx) {
        if (kvHeads == heads) return dx;
        int g = heads / kvHeads;
        long b = dx.size(0), t = dx.size(2);
        return dx.reshape('c', b, kvHeads, g, t, headDim).sum(2);
    }
}
