package io.sparklora.adapters.dora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;
import java.util.Map;

/**
 * DoRA (Liu et al., 2024) on one layer: the weight split into a magnitude m [out] and a direction,
 * W' = m ⊙ (W0 + s·B·A) / ‖W0 + s·B·A‖, the norm taken per output feature (over the inputs), in whichever
 * layout the checkpoint stores W. m starts at ‖W0‖, so the adapted layer starts equal to the base.
 *
 * <p>As the DoRA paper recommends and PEFT does, the norm c = ‖W0 + s·BA‖ is treated as a constant in
 * backward (detached): no gradient flows through it. With g = m / c [out]:
 * <pre>
 *   forward:  x' = dropout(x); b0 = x'·W0ᵀ; h = x'·Aᵀ; v = b0 + s·h·Bᵀ   [N, out]
 *             delta = g ⊙ v − b0          (so y = x·W0ᵀ + bias + delta; with no dropout y = g ⊙ (x·W0ᵀ + s·x·AᵀBᵀ) + bias)
 *   backward: dm = Σ_n dy ⊙ v / c;   dv = g ⊙ dy
 *             dB = s·dvᵀ·h;  dh = s·dv·B;  dA = dhᵀ·x'
 *             dx = dropout'(dh·A + ((g − 1) ⊙ dy)·W0)
 * </pre>
 * As in PEFT, with dropout on in training the base part of the DoRA term uses the dropped-out input x'.
 *
 * <p>Merge writes W' = g ⊙ (W0 + s·ΔW) and remembers c; unmerge computes W0 = W' / g − s·ΔW with that c,
 * exact to fp32 rounding in both layouts.
 */
public final class DoraAdapter extends LoraAdapter {
    private final Parameter magnitude;
    private INDArray mergedNorm;     // c at merge time, for unmerge
    private INDArray heldNorm;       // c held fixed (gradient checks), or null

    public DoraAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        super(adapterName, base, config, rng);
        DataType dt = base.baseWeight().dataType();
        INDArray w0 = Nd4j.zeros(dt, base.transposed() ? new long[]{base.outFeatures(), base.inFeatures()} : new long[]{base.inFeatures(), base.outFeatures()});
        base.baseWeight().addTo(w0, 1.0);           // a copy also over a quantised base, where dense() would dequantise anyway
        INDArray m = w0.norm2(base.transposed() ? 1 : 0).castTo(dt).reshape(base.outFeatures());
        Tensors.release(w0);
        this.magnitude = new Parameter(module + ".lora_magnitude_vector." + adapterName, m, true, "lora_magnitude_vector");
    }

    @Override public List<Parameter> parameters() { return List.of(a, b, magnitude); }

    public Parameter magnitude() { return magnitude; }

    /**
     * Holds c = ‖W0 + s·BA‖ at its current value (on) or lets forward recompute it (off). Backward treats c as
     * a constant either way; holding it makes the forward the function that backward differentiates, which
     * is what a finite-difference gradient check needs.
     */
    public void holdNorm(boolean on) { heldNorm = on ? weightNorm() : null; }

    private record DoraActivation(INDArray delta, INDArray xIn, INDArray keepMask, INDArray h, INDArray v, INDArray norm,
                                  INDArray g) implements Activation {
        @Override public void release() {
            if (keepMask != null) Tensors.release(xIn, keepMask);
            Tensors.release(h, v, norm, g, delta);
        }

        @Override public long bytesKept() {
            return (keepMask == null ? 0 : Adapter.bytes(xIn) + Adapter.bytes(keepMask)) + Adapter.bytes(h) + Adapter.bytes(v) + Adapter.bytes(norm) + Adapter.bytes(g);
        }
    }

    /** c = ‖W0 + s·BA‖ per output feature [out], detached. */
    private INDArray weightNorm() {
        INDArray w = deltaWeight();
        base.baseWeight().addTo(w, 1.0);
        INDArray c = w.norm2(base.transposed() ? 1 : 0).reshape(base.outFeatures());
        Tensors.release(w);
        return c;
    }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        INDArray keep = dropoutMask(x, ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray c = heldNorm != null ? heldNorm.dup() : weightNorm();
        INDArray g = magnitude.value().div(c);                                     // [out]
        INDArray b0 = keep == null ? baseOut : base.baseWeight().forward(xIn);     // [N,out]
        INDArray h = Nd4j.gemm(xIn, a.value(), false, true);                       // [N,r]
        INDArray v = Nd4j.gemm(h, b.value(), false, true).muli(scale).addi(b0);    // b0 + s·h·Bᵀ
        INDArray delta = v.mulRowVector(g).subi(b0);
        if (b0 != baseOut) Tensors.release(b0);
        return new DoraActivation(delta, xIn, keep, h, v, c, g);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        DoraActivation act = (DoraActivation) activation;
        if (magnitude.trainable()) {
            INDArray dyv = dy.mul(act.v());
            INDArray dm = dyv.sum(0).divi(act.norm());
            magnitude.accumulate(dm);
            Tensors.release(dyv, dm);
        }
        INDArray dv = dy.mulRowVector(act.g());                                            // [N,out]
        if (b.trainable()) Nd4j.gemm(dv, act.h(), b.grad(), true, false, scale, 1.0);       // [out,r]
        INDArray dh = Nd4j.gemm(dv, b.value(), false, false).muli(scale);                    // [N,r]
        if (a.trainable()) Nd4j.gemm(dh, act.xIn(), a.grad(), true, false, 1.0, 1.0);       // [r,in]
        INDArray dx = Nd4j.gemm(dh, a.value(), false, false);                               // [N,in]
        INDArray dyBase = dv.subi(dy);                                                      // (g − 1) ⊙ dy
        INDArray dxBase = base.baseWeight().backwardInput(dyBase);
        dx.addi(dxBase);
        Tensors.release(dh, dv, dxBase);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }

    /** Scales the outputs of a storage-layout weight by v [out]: rows of [out, in], columns of [in, out]. */
    private void scaleOutputs(INDArray w, INDArray v) {
        if (base.transposed()) w.muliColumnVector(v.reshape(v.length(), 1));
        else w.muliRowVector(v.reshape(1, v.length()));
    }

    @Override
    public void merge(Linear layer) {
        INDArray c = weightNorm();
        INDArray w = layer.baseWeight().mutableDense();
        INDArray delta = deltaWeight();
        w.addi(delta);
        scaleOutputs(w, magnitude.value().div(c));
        Tensors.release(delta);
        mergedNorm = c;
    }

    @Override
    public void unmerge(Linear layer) {
        if (mergedNorm == null) throw new IllegalStateException(module + ": DoRA adapter '" + adapterName + "' was not merged");
        INDArray w = layer.baseWeight().mutableDense();
        scaleOutputs(w, mergedNorm.div(magnitude.value()));
        INDArray delta = deltaWeight();
        w.subi(delta);
        Tensors.release(delta, mergedNorm);
        mergedNorm = null;
    }

    @Override
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = super.stateDict();
        m.put("lora_magnitude_vector", magnitude.value());
        return m;
    }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) {
        super.loadStateDict(tensors, where);
        put(magnitude, tensors.get("lora_magnitude_vector"), "lora_magnitude_vector", where);
    }
}
