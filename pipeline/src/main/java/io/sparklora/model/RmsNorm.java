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
        INDArray sq = x.mul(x);
        INDArray ms = sq.mean(true, 1);                         // [N,1]
        INDArray rstd = Transforms.pow(ms.addi(eps), -0.5, false);
        INDArray xhat = x.mulColumnVector(rstd);
        Tensors.release(sq);
        return new Cache(xhat.mulRowVector(gamma.value()), xhat, rstd);
    }

    @Override
    public INDArray backward(Cache c, INDArray dy) {
        INDArray tmp = dy.mul(c.xhat());
        if (gamma.trainable()) gamma.accumulate(tmp.sum(0));
        INDArray g = dy.mulRowVector(gamma.value());
        INDArray meanGx = tmp.assign(g).muli(c.xhat()).mean(true, 1);
        INDArray dx = g.subi(tmp.assign(c.xhat()).muliColumnVector(meanGx)).muliColumnVector(c.rstd());
        Tensors.release(tmp, meanGx);
        return dx;
    }

    @Override
    public List<Parameter> parameters() { return List.of(gamma); }
}
