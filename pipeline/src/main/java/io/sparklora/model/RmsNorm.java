package io.sparklora.model;

import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;

/**
 * RMSNorm over the last dimension (Llama): y = x / sqrt(mean(x²) + eps) · γ.
 *
 * <p>Backward (x̂ = x·r, r = 1/rms, g = dy·γ): dx = r·(g − x̂·mean(g·x̂)); dγ = Σ dy·x̂.
 */
public final class RmsNorm implements Norm {
    private final Parameter gamma;
    private final double eps;

    public RmsNorm(Parameter gamma, double eps) {
        this.gamma = gamma;
        this.eps = eps;
    }

    @Override
    public Cache forward(INDArray x) {
        Kernels.NormResult r = Kernels.active().normForward(x, gamma.value(), null, eps, false);
        return new Cache(r.out(), r.xhat(), r.rstd());
    }

    @Override
    public INDArray backward(Cache c, INDArray dy) {
        INDArray xhat = SavedActivations.load(c.xhat());
        Kernels.NormGrads g = Kernels.active().normBackward(dy, xhat, c.rstd(), gamma.value(), false,
                gamma.trainable(), false);
        if (g.dGamma() != null) gamma.accumulate(g.dGamma());
        Tensors.release(g.dGamma());
        SavedActivations.releaseLoaded(xhat, c.xhat());
        return g.dx();
    }

    @Override
    public List<Parameter> parameters() { return List.of(gamma); }
}
