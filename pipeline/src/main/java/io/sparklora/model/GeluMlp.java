package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.List;

/**
 * GPT-2's MLP: c_proj(gelu(c_fc(x))) with the tanh approximation Hugging Face calls {@code gelu_new}:
 * gelu(u) = ½u(1 + tanh(k(u + 0.044715u³))), k = √(2/π).
 *
 * <p>Shapes: x [N, C] → c_fc [N, F] → gelu [N, F] → c_proj [N, C].
 */
public final class GeluMlp implements FeedForward {
    private static final double K = Math.sqrt(2.0 / Math.PI);
    private static final double A = 0.044715;

    private final Linear fc;
    private final Linear proj;

    record GeluCache(Linear.Cache fc, INDArray pre, Linear.Cache proj) implements Cache {
        @Override public INDArray out() { return proj.out(); }
        @Override public void release() { fc.release(); proj.release(); }
    }

    public GeluMlp(Linear fc, Linear proj) {
        this.fc = fc;
        this.proj = proj;
    }

    @Override
    public Cache forward(INDArray x, ForwardContext ctx) {
        Linear.Cache f = fc.forward(x, ctx);
        INDArray u = f.out();
        INDArray act = tanhTerm(u).addi(1.0).muli(u).muli(0.5);
        Linear.Cache p = proj.forward(act, ctx);
        if (!proj.needsInput()) Tensors.release(act);
        // only u is kept: backward recomputes the tanh, which is cheaper than holding another [N, F]
        return new GeluCache(f, u, p);
    }

    @Override
    public INDArray backward(Cache cache, INDArray dy) {
        GeluCache c = (GeluCache) cache;
        INDArray dAct = proj.backward(c.proj(), dy);
        INDArray u = c.pre();
        INDArray t = tanhTerm(u);
        // d/du gelu = ½(1 + t) + ½u(1 − t²)·k(1 + 3a·u²)
        INDArray grad = u.mul(u).muli(3 * A).addi(1.0).muli(K).muli(u);       // k·u(1 + 3a·u²)
        INDArray sech2 = t.mul(t).rsubi(1.0);
        grad.muli(sech2).addi(t).addi(1.0).muli(0.5);
        INDArray dx = fc.backward(c.fc(), dAct.muli(grad));
        Tensors.release(dAct, grad, sech2, t);
        return dx;
    }

    /** tanh(k(u + a·u³)), a fresh array. */
    private static INDArray tanhTerm(INDArray u) {
        return Transforms.tanh(u.mul(u).muli(A).addi(1.0).muli(u).muli(K), false);
    }

    @Override
    public boolean needsInput() { return fc.needsInput(); }

    @Override
    public List<Linear> linears() { return List.of(fc, proj); }
}
