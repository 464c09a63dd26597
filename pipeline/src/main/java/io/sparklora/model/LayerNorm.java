package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.List;

/**
 * LayerNorm over the last dimension: y = (x − μ)/σ · γ + β, σ = sqrt(var + eps), var biased.
 *
 * <p>Backward (x̂ = (x − μ)/σ, g = dy·γ): dx = (g − mean(g) − x̂·mean(g·x̂)) / σ; dγ = Σ dy·x̂; dβ = Σ dy.
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
        INDArray mean = x.mean(true, 1);                       // [N,1]
        INDArray xc = x.subColumnVector(mean);                 // [N,C]
        INDArray sq = xc.mul(xc);
        INDArray var = sq.mean(true, 1);                       // [N,1]
        INDArray rstd = Transforms.pow(var.addi(eps), -0.5, false);
        INDArray xhat = xc.muliColumnVector(rstd);
        INDArray y = xhat.mulRowVector(gamma.value()).addiRowVector(beta.value());
        Tensors.release(mean, sq);
        return new Cache(y, xhat, rstd);
    }

    @Override
    public INDArray backward(Cache c, INDArray dy) {
        INDArray tmp = dy.mul(c.xhat());
        if (gamma.trainable()) gamma.accumulate(tmp.sum(0));
        if (beta.trainable()) beta.accumulate(dy.sum(0));
        INDArray g = dy.mulRowVector(gamma.value());           // [N,C]
        INDArray meanG = g.mean(true, 1);
        INDArray meanGx = tmp.assign(g).muli(c.xhat()).mean(true, 1);
        INDArray dx = g.subiColumnVector(meanG).subi(tmp.assign(c.xhat()).muliColumnVector(meanGx)).muliColumnVector(c.rstd());
        Tensors.release(tmp, meanG, meanGx);
        return dx;
    }

    @Override
    public List<Parameter> parameters() { return List.of(gamma, beta); }
}
