package io.sparklora.adapters.lorafa;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * LoRA-FA (Zhang et al., 2023) on one layer: LoRA with A random and frozen, only B trains. Since A does
 * not learn, backward needs no dA = dhᵀ·x, so the adapter keeps h = A·x (r values per token) instead of
 * the layer input x (in values per token); the layer then keeps no x for it either.
 *
 * <p>Forward: x' = dropout(x); h = x'·Aᵀ [N, r]; delta = s·h·Bᵀ. Backward: dB = s·dyᵀ·h;
 * dx = dropout'(s·dy·B·A). With dropout on, the mask [N, in] is kept as well.
 */
public final class LoraFaAdapter extends LoraAdapter {

    public LoraFaAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        super(adapterName, base, config, rng);
    }

    public LoraFaAdapter(String adapterName, Linear base, AdapterConfig config, LoraFaAdapter other) {
        super(adapterName, base, config, other);
    }

    @Override protected boolean trainsA() { return false; }

    @Override public boolean needsLayerInput() { return false; }

    /** h and the dropout mask only. */
    private record FaActivation(INDArray delta, INDArray keepMask, INDArray h) implements Activation {
        @Override public void release() { Tensors.release(keepMask, h, delta); }

        @Override public long bytesKept() { return Adapter.bytes(keepMask) + Adapter.bytes(h); }
    }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        INDArray keep = dropoutMask(x, ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray h = Nd4j.gemm(xIn, a.value(), false, true);                  // [N,r]
        if (keep != null) Tensors.release(xIn);                               // x' is not kept
        INDArray delta = Nd4j.gemm(h, b.value(), false, true).muli(scale);   // [N,out]
        return new FaActivation(delta, keep, h);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        FaActivation act = (FaActivation) activation;
        if (b.trainable()) Nd4j.gemm(dy, act.h(), b.grad(), true, false, scale, 1.0);       // [out,r]
        INDArray dh = Nd4j.gemm(dy, b.value(), false, false).muli(scale);                    // [N,r]
        INDArray dx = Nd4j.gemm(dh, a.value(), false, false);                               // [N,in]
        Tensors.release(dh);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }
}
