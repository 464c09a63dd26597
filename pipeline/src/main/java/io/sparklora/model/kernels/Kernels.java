package io.sparklora.model.kernels;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The model's elementwise and row-wise passes, each one fused pass over its tensor: GELU and its derivative, LayerNorm
 * and RMSNorm with their backward, the causal softmax with its backward, and the token cross-entropy with its gradient.
 *
 * <p>Two implementations compute the same functions. {@link NdKernels} is a chain of ND4J ops (one op per arithmetic
 * step, each a pass over the tensor) and runs on every backend, CUDA included. {@link VectorKernels} is written with
 * the Java Vector API ({@code jdk.incubator.vector}): one pass per function over fp32 arrays in CPU memory, with
 * SIMD {@code tanh}/{@code exp}. On GPT-2 small it takes a LoRA step's GELU, LayerNorm and softmax from about 3 s to
 * a fraction of a second on 2 cores (docs/BENCHMARKS.md, "Fused kernels"). {@code KernelsEquivalenceTest} holds the
 * two equal.
 *
 * <p>{@link #active()} picks {@link VectorKernels} when the JVM runs with {@code --add-modules
 * jdk.incubator.vector} (conf/jvm.options has it, so spark-submit, the tests and the notebooks do) and ND4J runs on the
 * CPU; otherwise {@link NdKernels}. {@code -Dsparklora.kernels=nd4j} forces the ND4J ops. {@link VectorKernels} takes
 * only fp32, row-major arrays it can address; it hands anything else (fp64 gradient checks, strided views) to
 * {@link NdKernels}, so every input works on either.
 *
 * <p>Shapes: GELU [N, F]; norms x [N, C], gain and shift [C] (or [1, C]), 1/σ [N, 1]; softmax [..., T, T] over the
 * last axis, with query row i of each [T, T] block seeing keys 0..i.
 */
public interface Kernels {

    /** gelu(u) = ½u(1 + tanh(k(u + 0.044715u³))), k = √(2/π) (Hugging Face's {@code gelu_new}); a fresh array. */
    INDArray gelu(INDArray u);

    /** dAct ← dAct ⊙ gelu'(u), in place; returns dAct. */
    INDArray geluBackwardInPlace(INDArray u, INDArray dAct);

    /**
     * y = x̂·γ (+ β), x̂ = (x − μ)·r with r = 1/√(var + eps) (LayerNorm, {@code center}), or x̂ = x·r with r =
     * 1/√(mean(x²) + eps) (RMSNorm, not {@code center}, beta null). Returns y, x̂ and r ([N, 1]), all fresh.
     */
    NormResult normForward(INDArray x, INDArray gamma, INDArray beta, double eps, boolean center);

    /**
     * Backward of {@link #normForward}, with g = dy·γ: dx = (g − mean(g) − x̂·mean(g·x̂))·r for LayerNorm, (g −
     * x̂·mean(g·x̂))·r for RMSNorm. dγ = Σ_rows dy·x̂ and dβ = Σ_rows dy ([C]) are computed when asked for, else null.
     */
    NormGrads normBackward(INDArray dy, INDArray xhat, INDArray rstd, INDArray gamma, boolean center,
                           boolean wantGamma, boolean wantBeta);

    /**
     * softmax over the last axis of scores [..., T, T], with query row i of each block attending to keys 0..i only (the
     * rest of the row gets probability 0). May work in place: returns the probabilities, which may be {@code scores}
     * itself; the caller releases {@code scores} if it is not the result.
     */
    INDArray causalSoftmax(INDArray scores);

    /**
     * The backward of {@link #causalSoftmax}: dP ← P ⊙ (dP − Σ_j dP⊙P) per row, in place; returns dP. Above the
     * diagonal P is 0, so dP becomes 0 there.
     */
    INDArray causalSoftmaxBackwardInPlace(INDArray dP, INDArray probs);

    /**
     * Token cross-entropy over logits [N, V] against targets [N] (negative = ignored), in place. Returns Σ_i
     * (logsumexp(z_i) − z_i[t_i]) over the counted rows, and their count. With {@code withGradient}, the logits become
     * dL/dz of the mean loss: (softmax(z_i) − onehot(t_i)) / denominator on counted rows, 0 on ignored rows, where the
     * denominator is {@code gradDenominator}, or the count when that is negative; otherwise they become scratch.
     */
    LossSum crossEntropyInPlace(INDArray logits, INDArray targets, boolean withGradient, double gradDenominator);

    record LossSum(double sum, long count) {}

    /** Additive causal mask [T, T]: 0 on and below the diagonal, a large negative number above; cached per size. */
    static INDArray causalMask(int seq, DataType dtype) { return NdKernels.causalMask(seq, dtype); }

    record NormResult(INDArray out, INDArray xhat, INDArray rstd) {}

    record NormGrads(INDArray dx, INDArray dGamma, INDArray dBeta) {}

    /** The implementation this JVM uses (see the class comment). */
    static Kernels active() { return Holder.ACTIVE; }

    /** The ND4J-op implementation, on any backend. */
    static Kernels nd4j() { return NdKernels.INSTANCE; }

    /** The Vector API implementation, or null when this JVM lacks the module or ND4J is not on the CPU. */
    static Kernels vector() { return Holder.VECTOR; }

    final class Holder {
        private Holder() {}

        static final Kernels VECTOR = loadVector();
        static final Kernels ACTIVE = "nd4j".equals(System.getProperty("sparklora.kernels")) || VECTOR == null
                ? NdKernels.INSTANCE : VECTOR;

        private static Kernels loadVector() {
            if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) return null;
            if (!Nd4j.getEnvironment().isCPU()) return null;
            try {
                return (Kernels) Class.forName("io.sparklora.model.kernels.VectorKernels").getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException | LinkageError e) {
                return null;
            }
        }
    }
}
