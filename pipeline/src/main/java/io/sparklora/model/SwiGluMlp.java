package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.List;

/**
 * The Llama family's MLP: down(silu(gate(x)) ⊙ up(x)), silu(g) = g·σ(g). Phi-3 fuses gate and up into one
 * projection, {@code gate_up_proj}, whose first F output rows are the gate and the next F the up projection.
 *
 * <p>Shapes: x [N, C] → gate, up [N, F] (fused: [N, 2F], split by columns) → down [N, C].
 */
public final class SwiGluMlp implements FeedForward {
    private final Linear gate;     // null when fused
    private final Linear up;       // null when fused
    private final Linear gateUp;   // Phi-3's fused [gate | up], or null
    private final Linear down;

    /** {@code up} is null in the fused layout, where {@code gate} holds gate_up_proj's cache; g and u are its two halves. */
    record SwiGluCache(Linear.Cache gate, Linear.Cache up, INDArray g, INDArray u, INDArray sigmoid, INDArray silu,
                       Linear.Cache down) implements Cache {
        @Override public INDArray out() { return down.out(); }
        @Override public void release() {
            gate.release();
            if (up != null) up.release();
            down.release();
            Tensors.release(g, u, sigmoid, silu);
        }
        @Override public Cache halfPrecision() {
            return new SwiGluCache(gate, up, SavedActivations.store(g), SavedActivations.store(u), SavedActivations.store(sigmoid),
                    SavedActivations.store(silu), down);
        }
    }

    public SwiGluMlp(Linear gate, Linear up, Linear down) {
        this(gate, up, null, down);
    }

    private SwiGluMlp(Linear gate, Linear up, Linear gateUp, Linear down) {
        this.gate = gate;
        this.up = up;
        this.gateUp = gateUp;
        this.down = down;
    }

    /** Phi-3 layout: {@code gateUp} [2F outputs] = [gate | up]. */
    public static SwiGluMlp fused(Linear gateUp, Linear down) {
        return new SwiGluMlp(null, null, gateUp, down);
    }

    @Override
    public Cache forward(INDArray x, ForwardContext ctx) {
        Linear.Cache gc, uc = null;
        INDArray g, u;
        if (gateUp != null) {
            gc = gateUp.forward(x, ctx);
            long f = gc.out().size(1) / 2;
            g = gc.out().get(NDArrayIndex.all(), NDArrayIndex.interval(0, f)).dup('c');
            u = gc.out().get(NDArrayIndex.all(), NDArrayIndex.interval(f, 2 * f)).dup('c');
            Tensors.release(gc.out());
        } else {
            gc = gate.forward(x, ctx);
            uc = up.forward(x, ctx);
            g = gc.out();
            u = uc.out();
        }
        INDArray s = Transforms.sigmoid(g, true);
        INDArray silu = s.mul(g);
        INDArray product = silu.mul(u);
        Linear.Cache d = down.forward(product, ctx);
        if (!down.needsInput()) Tensors.release(product);
        return new SwiGluCache(gc, uc, g, u, s, silu, d);
    }

    @Override
    public INDArray backward(Cache cache, INDArray dy) {
        SwiGluCache saved = (SwiGluCache) cache;
        SwiGluCache c = new SwiGluCache(saved.gate(), saved.up(), SavedActivations.load(saved.g()), SavedActivations.load(saved.u()),
                SavedActivations.load(saved.sigmoid()), SavedActivations.load(saved.silu()), saved.down());
        INDArray dh = down.backward(c.down(), dy);                       // [N,F]
        INDArray dUp = dh.mul(c.silu());
        // d silu/dg = σ + g·σ(1 − σ)
        INDArray s = c.sigmoid();
        INDArray dSilu = s.rsub(1.0).muli(c.g()).addi(1.0).muli(s);
        INDArray dGate = dh.muli(c.u()).muli(dSilu);
        SavedActivations.releaseLoaded(c.g(), saved.g());
        SavedActivations.releaseLoaded(c.u(), saved.u());
        SavedActivations.releaseLoaded(c.sigmoid(), saved.sigmoid());
        SavedActivations.releaseLoaded(c.silu(), saved.silu());
        INDArray dx;
        if (gateUp != null) {
            INDArray dgu = Nd4j.concat(1, dGate, dUp);
            dx = gateUp.backward(c.gate(), dgu);
            Tensors.release(dh, dUp, dSilu, dgu);
            return dx;
        }
        dx = gate.backward(c.gate(), dGate);
        INDArray dxUp = up.backward(c.up(), dUp);
        dx.addi(dxUp);
        Tensors.release(dh, dUp, dSilu, dxUp);
        return dx;
    }

    @Override
    public List<Linear> linears() { return gateUp != null ? List.of(gateUp, down) : List.of(gate, up, down); }

    @Override
    public boolean needsInput() { return gateUp != null ? gateUp.needsInput() : gate.needsInput() || up.needsInput(); }
}
