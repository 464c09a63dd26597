package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Multi-head causal self-attention, with the two projections layouts we load:
 * GPT-2's fused {@code c_attn} (x → [q|k|v], [N, 3C]) with {@code c_proj}, and Llama's separate
 * {@code q_proj, k_proj, v_proj, o_proj} with rotary positions and grouped-query attention
 * (H query heads share Hkv key/value heads, each kv head serving H/Hkv consecutive query heads).
 *
 * <p>Shapes: x [N, C] with N = B·T; per head q [B, H, T, D], k, v [B, Hkv, T, D];
 * scores, probabilities [B, H, T, T]; output [N, C].
 */
public final class CausalSelfAttention {
    private final Linear qkv;      // GPT-2 fused projection, or null
    private final Linear q, k, v;  // Llama projections, or null
    private final Linear o;
    private final RotaryEmbedding rope;   // null for GPT-2
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private static final Map<String, INDArray> MASKS = new ConcurrentHashMap<>();

    public record Cache(int batch, int seq, List<Linear.Cache> inputs, INDArray q, INDArray kFull, INDArray vFull,
                        INDArray probs, Linear.Cache out) {}

    /** GPT-2 layout. */
    public static CausalSelfAttention fused(Linear cAttn, Linear cProj, int heads) {
        return new CausalSelfAttention(cAttn, null, null, null, cProj, null, heads, heads);
    }

    /** Llama layout. */
    public static CausalSelfAttention separate(Linear q, Linear k, Linear v, Linear o, RotaryEmbedding rope,
                                               int heads, int kvHeads) {
        return new CausalSelfAttention(null, q, k, v, o, rope, heads, kvHeads);
    }

    private CausalSelfAttention(Linear qkv, Linear q, Linear k, Linear v, Linear o, RotaryEmbedding rope,
                                int heads, int kvHeads) {
        this.qkv = qkv;
        this.q = q;
        this.k = k;
        this.v = v;
        this.o = o;
        this.rope = rope;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = o.outFeatures() / heads;
    }

    public List<Linear> linears() {
        List<Linear> l = new ArrayList<>();
        if (qkv != null) l.add(qkv);
        else { l.add(q); l.add(k); l.add(v); }
        l.add(o);
        return l;
    }

    public Cache forward(INDArray x, int batch, int seq, ForwardContext ctx) {
        List<Linear.Cache> inputs = new ArrayList<>();
        INDArray qf, kf, vf;   // [N, H·D] and [N, Hkv·D]
        if (qkv != null) {
            Linear.Cache c = qkv.forward(x, ctx);
            inputs.add(c);
            int cDim = heads * headDim;
            qf = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(0, cDim));
            kf = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(cDim, 2 * cDim));
            vf = c.out().get(NDArrayIndex.all(), NDArrayIndex.interval(2 * cDim, 3 * cDim));
        } else {
            Linear.Cache cq = q.forward(x, ctx), ck = k.forward(x, ctx), cv = v.forward(x, ctx);
            inputs.add(cq); inputs.add(ck); inputs.add(cv);
            qf = cq.out(); kf = ck.out(); vf = cv.out();
        }
        INDArray qh = toHeads(qf, batch, seq, heads);
        INDArray kh = toHeads(kf, batch, seq, kvHeads);
        INDArray vh = toHeads(vf, batch, seq, kvHeads);
        if (rope != null) {
            qh = rope.forward(qh);
            kh = rope.forward(kh);
        }
        INDArray kFull = repeatKv(kh), vFull = repeatKv(vh);
        double scale = 1.0 / Math.sqrt(headDim);
        INDArray scores = Nd4j.matmul(qh, kFull, false, true, false).muli(scale).addi(causalMask(seq, x.dataType()));
        INDArray probs = Nd4j.nn().softmax(scores, -1);
        INDArray y = Nd4j.matmul(probs, vFull);                              // [B,H,T,D]
        Linear.Cache out = o.forward(fromHeads(y, batch, seq), ctx);
        return new Cache(batch, seq, inputs, qh, kFull, vFull, probs, out);
    }

    public INDArray backward(Cache c, INDArray dy) {
        int b = c.batch(), t = c.seq();
        INDArray dY = toHeads(o.backward(c.out(), dy), b, t, heads);        // [B,H,T,D]
        INDArray dP = Nd4j.matmul(dY, c.vFull(), false, true, false);       // [B,H,T,T]
        INDArray dV = Nd4j.matmul(c.probs(), dY, true, false, false);       // [B,H,T,D]
        // softmax backward: dS = P ⊙ (dP − Σ_j dP⊙P)
        INDArray rowDot = dP.mul(c.probs()).sum(true, 3);
        INDArray dS = dP.subi(rowDot).muli(c.probs()).muli(1.0 / Math.sqrt(headDim));
        INDArray dQ = Nd4j.matmul(dS, c.kFull());                           // [B,H,T,D]
        INDArray dK = Nd4j.matmul(dS, c.q(), true, false, false);           // [B,H,T,D]
        dK = reduceKv(dK);
        dV = reduceKv(dV);
        if (rope != null) {
            dQ = rope.backward(dQ);
            dK = rope.backward(dK);
        }
        INDArray dq = fromHeads(dQ, b, t), dk = fromHeads(dK, b, t), dv = fromHeads(dV, b, t);
        if (qkv != null) {
            return qkv.backward(c.inputs().get(0), Nd4j.concat(1, dq, dk, dv));
        }
        INDArray dx = q.backward(c.inputs().get(0), dq);
        dx.addi(k.backward(c.inputs().get(1), dk));
        return dx.addi(v.backward(c.inputs().get(2), dv));
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

    /** Additive causal mask [T, T]: 0 on and below the diagonal, a large negative number above. */
    static INDArray causalMask(int seq, DataType dtype) {
        return MASKS.computeIfAbsent(seq + ":" + dtype, key -> {
            float[] m = new float[seq * seq];
            for (int i = 0; i < seq; i++) {
                for (int j = i + 1; j < seq; j++) m[i * seq + j] = -1e9f;
            }
            return Nd4j.createFromArray(m).reshape(seq, seq).castTo(dtype);
        });
    }
}
