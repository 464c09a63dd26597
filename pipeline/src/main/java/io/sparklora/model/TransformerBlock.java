package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.List;

/**
 * One pre-norm decoder block: h = x + attn(norm1(x)); y = h + mlp(norm2(h)).
 * Shapes: x, h, y [N, C].
 */
public final class TransformerBlock {
    private final Norm norm1;
    private final CausalSelfAttention attention;
    private final Norm norm2;
    private final FeedForward mlp;

    public record Cache(Norm.Cache norm1, CausalSelfAttention.Cache attention, Norm.Cache norm2,
                        FeedForward.Cache mlp, INDArray out) {
        public void release() {
            release(null);
        }

        /**
         * The same cache with what only backward reads held in bfloat16 ({@link SavedActivations}): both norms' x̂, the
         * attention's q, k, v, the MLP's pre-activations. Layer inputs that an adapter or a trained weight reads stay fp32.
         */
        public Cache halfPrecision() {
            return new Cache(norm1.halfPrecision(), attention.halfPrecision(), norm2.halfPrecision(), mlp.halfPrecision(), out);
        }

        /** Frees everything but {@code keep} (the block output, when the caller still needs it). */
        public void release(INDArray keep) {
            norm1.release();
            attention.release();
            norm2.release();
            mlp.release();
            if (out != keep) Tensors.release(out);
        }
    }

    public CausalSelfAttention attention() { return attention; }

    public TransformerBlock(Norm norm1, CausalSelfAttention attention, Norm norm2, FeedForward mlp) {
        this.norm1 = norm1;
        this.attention = attention;
        this.norm2 = norm2;
        this.mlp = mlp;
    }

    public Cache forward(INDArray x, int batch, int seq, ForwardContext ctx) {
        Norm.Cache n1 = norm1.forward(x);
        CausalSelfAttention.Cache a = attention.forward(n1.out(), batch, seq, ctx);
        // norm outputs are dead once consumed unless a projection that trains keeps them (norm backward uses x̂)
        if (!attention.needsInput()) Tensors.release(n1.out());
        INDArray h = x.add(a.out().out());
        Tensors.release(a.out().out());
        Norm.Cache n2 = norm2.forward(h);
        FeedForward.Cache m = mlp.forward(n2.out(), ctx);
        if (!mlp.needsInput()) Tensors.release(n2.out());
        h.addi(m.out());
        Tensors.release(m.out());
        return new Cache(n1, a, n2, m, h);
    }

    /**
     * Inference with a KV cache: x [B·t, C], the next t tokens of each row, → y [B·t, C]; the attention appends
     * this layer's keys and values to {@code cache} (see {@link CausalSelfAttention#forwardCached}). Nothing is
     * kept for backward.
     */
    public INDArray forwardCached(INDArray x, int batch, int seq, KvCache cache, int layer, int[] positions, ForwardContext ctx) {
        Norm.Cache n1 = norm1.forward(x);
        Tensors.release(n1.xhat(), n1.rstd());
        INDArray a = attention.forwardCached(n1.out(), batch, seq, cache, layer, positions, ctx);
        Tensors.release(n1.out());
        INDArray h = x.add(a);
        Tensors.release(a);
        Norm.Cache n2 = norm2.forward(h);
        Tensors.release(n2.xhat(), n2.rstd());
        FeedForward.Cache m = mlp.forward(n2.out(), ctx);
        h.addi(m.out());
        m.release();
        Tensors.release(n2.out());
        return h;
    }

    public INDArray backward(Cache c, INDArray dy) {
        // dy flows through the residual unchanged and through the MLP branch
        INDArray dMlp = mlp.backward(c.mlp(), dy);
        INDArray dh = norm2.backward(c.norm2(), dMlp).addi(dy);
        INDArray dAtt = attention.backward(c.attention(), dh);
        INDArray dx = norm1.backward(c.norm1(), dAtt).addi(dh);
        Tensors.release(dMlp, dh, dAtt);
        return dx;
    }

    public List<Linear> linears() {
        List<Linear> l = new ArrayList<>(attention.linears());
        l.addAll(mlp.linears());
        return l;
    }
}
