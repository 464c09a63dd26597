package io.sparklora.model;

import io.sparklora.model.kernels.Kernels;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;

/**
 * LayerNorm over the last dimension: y = (x − μ)/σ · γ + β, σ = sqrt(var + eps), var biased.
 *
 * <p>Backward (x̂ = (x − μ)/σ, g = dy·γ): dx = (g − mean(g) − x̂·mean(g·x̂)) / σ; dγ = Σ dy·x̂; dβ = Σ dy.
 * Both directions are one fused pass each ({@link Kernels#normForward}, {@link Kernels#normBackward}).
 */
public final class LayerNorm implements Norm {
    private final Parameter gamma;
    private final Parameter beta;
    private final double eps;

    public LayerNorm(Parameter gamma, Parameter beta, double eps) {
        this.gamma = gamma;
        this.beta = beta;
        this.eps = eps;
    }

    @Override
    public Cache forward(INDArray x) {
        Kernels.NormResult r = Kernels.active().normForward(x, gamma.value(), beta.value(), eps, true);
        return new Cache(r.out(), r.xhat(), r.rstd());
    }

    @Override
    public INDArray backward(Cache c, INDArray dy) {
        INDArray xhat = SavedActivations.load(c.xhat());
        Kernels.NormGrads g = Kernels.active().normBackward(dy, xhat, c.rstd(), gamma.value(), true,
                gamma.trainable(), beta.trainable());
        if (g.dGamma() != null) gamma.accumulate(g.dGamma());
        if (g.dBeta() != null) beta.accumulate(g.dBeta());
        Tensors.release(g.dGamma(), g.dBeta());
        SavedActivations.releaseLoaded(xhat, c.xhat());
        return g.dx();
    }

    @Override
    public List<Parameter> parameters() { return List.of(gamma, beta); }
}
