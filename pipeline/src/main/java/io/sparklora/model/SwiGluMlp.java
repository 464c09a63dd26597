package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.List;

/**
 * Llama's MLP: down(silu(gate(x)) ⊙ up(x)), silu(g) = g·σ(g).
 *
 * <p>Shapes: x [N, C] → gate, up [N, F] → down [N, C].
 */
public final class SwiGluMlp implements FeedForward {
    private final Linear gate;
    private final Linear up;
    private final Linear down;

    record SwiGluCache(Linear.Cache gate, Linear.Cache up, INDArray sigmoid, INDArray silu, Linear.Cache down)
            implements Cache {
        @Override public INDArray out() { return down.out(); }
        @Override public void release() { gate.release(); up.release(); down.release(); Tensors.release(sigmoid, silu); }
    }

    public SwiGluMlp(Linear gate, Linear up, Linear down) {
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    @Override
    public Cache forward(INDArray x, ForwardContext ctx) {
        Linear.Cache g = gate.forward(x, ctx);
        Linear.Cache u = up.forward(x, ctx);
        INDArray s = Transforms.sigmoid(g.out(), true);
        INDArray silu = s.mul(g.out());
        INDArray product = silu.mul(u.out());
        Linear.Cache d = down.forward(product, ctx);
        if (!down.needsInput()) Tensors.release(product);
        return new SwiGluCache(g, u, s, silu, d);
    }

    @Override
    public INDArray backward(Cache cache, INDArray dy) {
        SwiGluCache c = (SwiGluCache) cache;
        INDArray dh = down.backward(c.down(), dy);                       // [N,F]
        INDArray dUp = dh.mul(c.silu());
        // d silu/dg = σ + g·σ(1 − σ)
        INDArray s = c.sigmoid();
        INDArray dSilu = s.rsub(1.0).muli(c.gate().out()).addi(1.0).muli(s);
        INDArray dGate = dh.muli(c.up().out()).muli(dSilu);
        INDArray dx = gate.backward(c.gate(), dGate);
        INDArray dxUp = up.backward(c.up(), dUp);
        dx.addi(dxUp);
        Tensors.release(dh, dUp, dSilu, dxUp);
        return dx;
    }

    @Override
    public List<Linear> linears() { return List.of(gate, up, down); }

    @Override
    public boolean needsInput() { return gate.needsInput() || up.needsInput(); }
}
