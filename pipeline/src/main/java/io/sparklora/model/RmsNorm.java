package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

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
        INDArray ms = x.mul(x).mean(true, 1);                   // [N,1]
        INDArray rstd = Transforms.pow(ms.addi(eps), -0.5, false);
        INDArray xhat = x.mulColumnVector(rstd);
        return new Cache(xhat.mulRowVector(gamma.value()), xhat, rstd);
    }

    @Override
    public INDArray backward(Cache c, INDArray dy) {
        if (gamma.trainable()) gamma.accumulate(dy.mul(c.xhat()).sum(0));
        INDArray g = dy.mulRowVector(gamma.value());
        INDArray meanGx = g.mul(c.xhat()).mean(true, 1);
        return g.subi(c.xhat().mulColumnVector(meanGx)).muliColumnVector(c.rstd());
    }

    @Override
    public List<Parameter> parameters() { return List.of(gamma); }
}
