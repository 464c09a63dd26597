package io.sparklora.model.kernels;

import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scatter.ScatterUpdate;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.factory.ops.NDBase;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * {@link Kernels} as chains of ND4J ops: each arithmetic step is one op, a pass over its tensor. Runs on every backend
 * and data type; the reference {@link VectorKernels} is held equal to.
 */
final class NdKernels implements Kernels {
    static final NdKernels INSTANCE = new NdKernels();
    private static final double K = Math.sqrt(2.0 / Math.PI);
    private static final double A = 0.044715;
    private static final NDBase OPS = new NDBase();
    private static final Map<String, INDArray> MASKS = new ConcurrentHashMap<>();

    private NdKernels() {}

    /** tanh(k(u + a·u³)), a fresh array. */
    private static INDArray tanhTerm(INDArray u) {
        return Transforms.tanh(u.mul(u).muli(A).addi(1.0).muli(u).muli(K), false);
    }

    @Override
    public INDArray gelu(INDArray u) {
        return tanhTerm(u).addi(1.0).muli(u).muli(0.5);
    }

    @Override
    public INDArray geluBackwardInPlace(INDArray u, INDArray dAct) {
        INDArray t = tanhTerm(u);
        // d/du gelu = ½(1 + t) + ½u(1 − t²)·k(1 + 3a·u²)
        INDArray grad = u.mul(u).muli(3 * A).addi(1.0).muli(K).muli(u);       // k·u(1 + 3a·u²)
        INDArray sech2 = t.mul(t).rsubi(1.0);
        grad.muli(sech2).addi(t).addi(1.0).muli(0.5);
        dAct.muli(grad);
        Tensors.release(grad, sech2, t);
        return dAct;
    }

    @Override
    public NormResult normForward(INDArray x, INDArray gamma, INDArray beta, double eps, boolean center) {
        if (center) {
            INDArray mean = x.mean(true, 1);                       // [N,1]
            INDArray xc = x.subColumnVector(mean);                 // [N,C]
            INDArray sq = xc.mul(xc);
            INDArray var = sq.mean(true, 1);                       // [N,1]
            INDArray rstd = Transforms.pow(var.addi(eps), -0.5, false);
            INDArray xhat = xc.muliColumnVector(rstd);
            INDArray y = xhat.mulRowVector(gamma);
            if (beta != null) y.addiRowVector(beta);
            Tensors.release(mean, sq);
            return new NormResult(y, xhat, rstd);
        }
        INDArray sq = x.mul(x);
        INDArray ms = sq.mean(true, 1);                            // [N,1]
        INDArray rstd = Transforms.pow(ms.addi(eps), -0.5, false);
        INDArray xhat = x.mulColumnVector(rstd);
        Tensors.release(sq);
        return new NormResult(xhat.mulRowVector(gamma), xhat, rstd);
    }

    @Override
    public NormGrads normBackward(INDArray dy, INDArray xhat, INDArray rstd, INDArray gamma, boolean center,
                                  boolean wantGamma, boolean wantBeta) {
        INDArray tmp = dy.mul(xhat);
        INDArray dGamma = wantGamma ? tmp.sum(0) : null;
        INDArray dBeta = wantBeta ? dy.sum(0) : null;
        INDArray g = dy.mulRowVector(gamma);                       // [N,C]
        INDArray meanGx = tmp.assign(g).muli(xhat).mean(true, 1);
        if (center) {
            INDArray meanG = g.mean(true, 1);
            g.subiColumnVector(meanG);
            Tensors.release(meanG);
        }
        INDArray dx = g.subi(tmp.assign(xhat).muliColumnVector(meanGx)).muliColumnVector(rstd);
        Tensors.release(tmp, meanGx);
        return new NormGrads(dx, dGamma, dBeta);
    }

    @Override
    public INDArray causalSoftmax(INDArray scores) {
        int seq = (int) scores.size(scores.rank() - 1);
        scores.addi(causalMask(seq, scores.dataType()));
        return Nd4j.nn().softmax(scores, -1);
    }

    @Override
    public INDArray causalSoftmaxBackwardInPlace(INDArray dP, INDArray probs) {
        INDArray pdp = dP.mul(probs);
        INDArray rowDot = pdp.sum(true, dP.rank() - 1);
        Tensors.release(pdp);
        dP.subi(rowDot).muli(probs);
        Tensors.release(rowDot);
        return dP;
    }

    @Override
    public LossSum crossEntropyInPlace(INDArray logits, INDArray targets, boolean withGradient, double gradDenominator) {
        long n = logits.size(0);
        long vocab = logits.size(1);
        DataType dt = logits.dataType();
        INDArray flatTargets = targets.reshape(n).castTo(DataType.INT);
        INDArray counted = flatTargets.gte(0);
        INDArray mask = counted.castTo(dt).reshape(n, 1);                                    // [N,1]
        // ignored positions point at class 0; the mask removes them
        INDArray safeTargets = flatTargets.mul(counted.castTo(DataType.INT));
        INDArray linear = Nd4j.arange(n).castTo(DataType.LONG).muli(vocab).addi(safeTargets.castTo(DataType.LONG));   // i·V + t_i
        INDArray flat = logits.reshape('c', n * vocab, 1);
        INDArray max = logits.max(true, 1);                                                   // [N,1]
        INDArray targetLogit = OPS.gather(flat, linear, 0).subi(max);                         // z_t − max, [N,1]
        logits.subiColumnVector(max);
        Transforms.exp(logits, false);
        INDArray sumExp = logits.sum(true, 1);                                                // [N,1]
        INDArray perToken = Transforms.log(sumExp, true).subi(targetLogit).muli(mask);       // [N,1]
        double sum = perToken.sumNumber().doubleValue();
        long count = mask.sumNumber().longValue();
        if (withGradient) {
            logits.diviColumnVector(sumExp);                                                  // softmax
            Nd4j.scatterUpdate(ScatterUpdate.UpdateOp.SUBTRACT, flat, linear.castTo(DataType.INT), mask, 1);
            double denominator = gradDenominator < 0 ? count : gradDenominator;
            logits.muliColumnVector(mask.muli(denominator == 0 ? 0.0 : 1.0 / denominator));
        }
        Tensors.release(flatTargets, counted, safeTargets, linear, max, targetLogit, sumExp, perToken);
        return new LossSum(sum, count);
    }

    /** Additive causal mask [T, T]: 0 on and below the diagonal, a large negative number above. */
    static INDArray causalMask(int seq, DataType dtype) {
        return MASKS.computeIfAbsent(seq + ":" + dtype, key -> {
            float[] m = new float[seq * seq];
            for (int i = 0; i < seq; i++) {
                for (int j = i + 1; j < seq; j++) m[i * seq + j] = -1e9f;
            }
            return Nd4j.createFromArray(m).reshape(seq, seq).castTo(dtype);
        });
    }
}
