package io.sparklora.model;

import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;

/**
 * GPT-2's MLP: c_proj(gelu(c_fc(x))) with the tanh approximation Hugging Face calls {@code gelu_new}:
 * gelu(u) = ½u(1 + tanh(k(u + 0.044715u³))), k = √(2/π).
 *
 * <p>Shapes: x [N, C] → c_fc [N, F] → gelu [N, F] → c_proj [N, C].
 */
public final class GeluMlp implements FeedForward {
    private final Linear fc;
    private final Linear proj;

    record GeluCache(Linear.Cache fc, INDArray pre, Linear.Cache proj) implements Cache {
        @Override public INDArray out() { return proj.out(); }
        @Override public void release() { fc.release(); proj.release(); }
        @Override public Cache halfPrecision() { return new GeluCache(fc, SavedActivations.store(pre), proj); }
    }

    public GeluMlp(Linear fc, Linear proj) {
        this.fc = fc;
        this.proj = proj;
    }

    @Override
    public Cache forward(INDArray x, ForwardContext ctx) {
        Linear.Cache f = fc.forward(x, ctx);
        INDArray u = f.out();
        INDArray act = Kernels.active().gelu(u);
        Linear.Cache p = proj.forward(act, ctx);
        if (!proj.needsInput()) Tensors.release(act);
        // only u is kept: backward recomputes the tanh, which is cheaper than holding another [N, F]
        return new GeluCache(f, u, p);
    }

    @Override
    public INDArray backward(Cache cache, INDArray dy) {
        GeluCache c = (GeluCache) cache;
        INDArray dAct = proj.backward(c.proj(), dy);
        INDArray pre = SavedActivations.load(c.pre());
        INDArray dx = fc.backward(c.fc(), Kernels.active().geluBackwardInPlace(pre, dAct));
        SavedActivations.releaseLoaded(pre, c.pre());
        Tensors.release(dAct);
        return dx;
    }

    @Override
    public boolean needsInput() { return fc.needsInput(); }

    @Override
    public List<Linear> linears() { return List.of(fc, proj); }
}
