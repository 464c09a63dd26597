package io.sparklora.adapters.dylora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * DyLoRA (Valipour et al., 2023) on one layer: a LoRA of rank r_max = r whose first b rows of A and first b columns of
 * B form a LoRA of rank b, scaled by alpha/b. Training uses the rank the method's hooks sampled for the step
 * ({@link DyLoraMethod}); inference, merge and export use the evaluation rank (r_max unless set).
 *
 * <p>Forward at rank b (x [N, in]): A_b = A[:b] [b, in], B_b = B[:, :b] [out, b]; h = x'·A_bᵀ [N, b];
 * delta = (alpha/b)·h·B_bᵀ. Backward: dB_b = s_b·dyᵀ·h, dh = s_b·dy·B_b, dA_b = dhᵀ·x', dx = dh·A_b. With the
 * paper's frozen rule ({@code dylora_update: slice}) only row b of A and column b of B receive their gradient (the
 * earlier slices are treated as constants for the step); with {@code all}, the whole first b.
 */
public class DyLoraAdapter extends LoraAdapter {
    private final boolean sliceOnly;
    private final int rMax;
    private int trainRank;
    private int evalRank;

    DyLoraAdapter(String adapterName, Linear base, AdapterConfig config, Random rng, boolean sliceOnly, int evalRank) {
        super(adapterName, base, config, rng);
        this.sliceOnly = sliceOnly;
        this.rMax = config.r();
        this.trainRank = rMax;
        this.evalRank = evalRank;
    }

    /** The rank training forwards use (set by the method's hooks). */
    void setTrainRank(int b) { trainRank = check(b); }

    /** The rank inference, merge and export use. */
    public void setEvalRank(int b) { evalRank = check(b); }

    public int evalRank() { return evalRank; }

    public int trainRank() { return trainRank; }

    private int check(int b) {
        if (b < 1 || b > rMax) throw new IllegalArgumentException(module + ": DyLoRA rank " + b + " is outside [1, " + rMax + "]");
        return b;
    }

    /** alpha/b, DyLoRA's scale at rank b. */
    public double scaleAt(int b) { return config.alpha() / b; }

    private record DyActivation(INDArray delta, INDArray xIn, INDArray keepMask, INDArray h, int rank, boolean training) implements Activation {
        @Override public void release() {
            if (keepMask != null) Tensors.release(xIn, keepMask);
            Tensors.release(h, delta);
        }

        @Override public long bytesKept() { return (keepMask == null ? 0 : Adapter.bytes(xIn) + Adapter.bytes(keepMask)) + Adapter.bytes(h); }
    }

    private INDArray aRows(int b) { return a.value().get(NDArrayIndex.interval(0, b), NDArrayIndex.all()).dup('c'); }

    private INDArray bCols(int b) { return this.b.value().get(NDArrayIndex.all(), NDArrayIndex.interval(0, b)).dup('c'); }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        int rank = ctx.training() ? trainRank : evalRank;
        INDArray keep = dropoutMask(x, ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray ab = aRows(rank), bb = bCols(rank);
        INDArray h = Nd4j.gemm(xIn, ab, false, true);                           // [N, b]
        INDArray delta = Nd4j.gemm(h, bb, false, true).muli(scaleAt(rank));      // [N, out]
        Tensors.release(ab, bb);
        return new DyActivation(delta, xIn, keep, h, rank, ctx.training());
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        DyActivation act = (DyActivation) activation;
        int rank = act.rank();
        double s = scaleAt(rank);
        INDArray ab = aRows(rank), bb = bCols(rank);
        // the first slice that trains: only the b-th under the frozen rule, else all of the first b
        int from = sliceOnly && act.training() ? rank - 1 : 0;
        if (b.trainable()) {
            INDArray dB = Nd4j.gemm(dy, act.h(), true, false).muli(s);                                   // [out, b]
            b.grad().get(NDArrayIndex.all(), NDArrayIndex.interval(from, rank))
                    .addi(dB.get(NDArrayIndex.all(), NDArrayIndex.interval(from, rank)));
            Tensors.release(dB);
        }
        INDArray dh = Nd4j.gemm(dy, bb, false, false).muli(s);                                           // [N, b]
        if (a.trainable()) {
            INDArray dA = Nd4j.gemm(dh, act.xIn(), true, false);                                         // [b, in]
            a.grad().get(NDArrayIndex.interval(from, rank), NDArrayIndex.all())
                    .addi(dA.get(NDArrayIndex.interval(from, rank), NDArrayIndex.all()));
            Tensors.release(dA);
        }
        INDArray dx = Nd4j.gemm(dh, ab, false, false);                                                   // [N, in]
        Tensors.release(dh, ab, bb);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }

    /** (alpha/b)·B_b·A_b at the evaluation rank, [out, in]. */
    @Override
    protected INDArray deltaLogical() {
        INDArray ab = aRows(evalRank), bb = bCols(evalRank);
        INDArray d = bb.mmul(ab).muli(scaleAt(evalRank));
        Tensors.release(ab, bb);
        return d;
    }
}
