package io.sparklora.adapters.vera;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * VeRA (Kopiczko et al., 2024) on one layer: ΔW = Λ_b·B·Λ_d·A with the model-wide frozen pair A, B
 * ({@link VeraProjections}, sliced to this layer) and two trainable vectors, λ_d [r] (starting at
 * {@code d_initial}) and λ_b [out] (starting at 0, so the adapted model starts equal to the base).
 * There is no alpha/r scale.
 *
 * <pre>
 *   forward:  x' = dropout(x); h = x'·Aᵀ [N, r]; u = (h ⊙ λ_d)·Bᵀ [N, out]; delta = u ⊙ λ_b
 *   backward: dλ_b = Σ_n dy ⊙ u;  du = dy ⊙ λ_b;  dk = du·B [N, r];  dλ_d = Σ_n dk ⊙ h
 *             dx = dropout'((dk ⊙ λ_d)·A)
 * </pre>
 */
public final class VeraAdapter implements Adapter {
    private final String adapterName;
    private final String module;
    private final Linear base;
    private final AdapterConfig config;
    private final VeraProjections projections;
    private final Parameter lambdaD;
    private final Parameter lambdaB;

    private record VeraActivation(INDArray delta, INDArray xIn, INDArray keepMask, INDArray h, INDArray u) implements Activation {
        @Override public void release() {
            if (keepMask != null) Tensors.release(xIn, keepMask);
            Tensors.release(h, u, delta);
        }

        @Override public long bytesKept() {
            return (keepMask == null ? 0 : Adapter.bytes(xIn) + Adapter.bytes(keepMask)) + Adapter.bytes(h) + Adapter.bytes(u);
        }
    }

    VeraAdapter(String adapterName, Linear base, AdapterConfig config, VeraProjections projections, double dInitial) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        this.projections = projections;
        DataType dt = base.baseWeight().dataType();
        this.lambdaD = new Parameter(module + ".vera_lambda_d." + adapterName, Nd4j.valueArrayOf(new long[]{config.r()}, dInitial, dt), true, "vera_lambda_d");
        this.lambdaB = new Parameter(module + ".vera_lambda_b." + adapterName, Nd4j.zeros(dt, base.outFeatures()), true, "vera_lambda_b");
    }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }
    /** λ_d, λ_b, then the shared frozen pair (the same objects on every layer). */
    @Override public List<Parameter> parameters() { return List.of(lambdaD, lambdaB, projections.a(), projections.b()); }
    public VeraProjections projections() { return projections; }
    public Parameter lambdaD() { return lambdaD; }
    public Parameter lambdaB() { return lambdaB; }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        INDArray keep = Adapter.dropoutMask(x, config.dropout(), ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray aS = projections.aSlice(base.inFeatures()), bS = projections.bSlice(base.outFeatures());
        INDArray h = Nd4j.gemm(xIn, aS, false, true);                      // [N,r]
        INDArray hd = h.mulRowVector(lambdaD.value());
        INDArray u = Nd4j.gemm(hd, bS, false, true);                       // [N,out]
        INDArray delta = u.mulRowVector(lambdaB.value());
        Tensors.release(hd);
        releaseSlices(aS, bS);
        return new VeraActivation(delta, xIn, keep, h, u);
    }

    private void releaseSlices(INDArray aS, INDArray bS) {
        if (aS != projections.a().value()) Tensors.release(aS);
        if (bS != projections.b().value()) Tensors.release(bS);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        VeraActivation act = (VeraActivation) activation;
        INDArray aS = projections.aSlice(base.inFeatures()), bS = projections.bSlice(base.outFeatures());
        if (lambdaB.trainable()) {
            INDArray t = dy.mul(act.u());
            INDArray g = t.sum(0);
            lambdaB.accumulate(g);
            Tensors.release(t, g);
        }
        INDArray du = dy.mulRowVector(lambdaB.value());                     // [N,out]
        INDArray dk = Nd4j.gemm(du, bS, false, false);                      // [N,r]
        if (lambdaD.trainable()) {
            INDArray t = dk.mul(act.h());
            INDArray g = t.sum(0);
            lambdaD.accumulate(g);
            Tensors.release(t, g);
        }
        INDArray dh = dk.muliRowVector(lambdaD.value());
        INDArray dx = Nd4j.gemm(dh, aS, false, false);                      // [N,in]
        Tensors.release(du, dk);
        releaseSlices(aS, bS);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }

    @Override
    public INDArray deltaWeight() {
        INDArray aS = projections.aSlice(base.inFeatures()), bS = projections.bSlice(base.outFeatures());
        INDArray lb = bS.mulColumnVector(lambdaB.value().reshape(base.outFeatures(), 1));      // Λ_b·B [out,r]
        INDArray la = aS.mulColumnVector(lambdaD.value().reshape(config.r(), 1));               // Λ_d·A [r,in]
        INDArray dw = lb.mmul(la);                                                              // [out,in]
        Tensors.release(lb, la);
        releaseSlices(aS, bS);
        return Adapter.inLayerLayout(base, dw);
    }

    @Override
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put("vera_lambda_b", lambdaB.value());
        m.put("vera_lambda_d", lambdaD.value());
        return m;
    }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) {
        Adapter.load(lambdaB, tensors.get("vera_lambda_b"), module, "vera_lambda_b", where);
        Adapter.load(lambdaD, tensors.get("vera_lambda_d"), module, "vera_lambda_d", where);
    }
}
