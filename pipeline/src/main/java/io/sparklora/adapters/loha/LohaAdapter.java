package io.sparklora.adapters.loha;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.adapters.lycoris.Lycoris;
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
 * LoHa (FedPara's low-rank Hadamard product, as LyCORIS and PEFT use it) on one layer:
 * ΔW = s·(w1_a·w1_b) ⊙ (w2_a·w2_b), s = alpha/r, with w1_a, w2_a [out, r] and w1_b, w2_b [r, in] (the
 * logical [out, in] layout). Rank of ΔW up to r², for 2·r·(in + out) parameters.
 *
 * <p>Init as PEFT's: w1_a, w1_b, w2_a kaiming-uniform (a = √5, bound 1/√fan_in), w2_b zero, so ΔW = 0.
 *
 * <p>Forward (x [N, in]): P = w1_a·w1_b, Q = w2_a·w2_b [out, in]; W = P ⊙ Q; delta = s·x·Wᵀ, its columns
 * (output channels) scaled by the rank-dropout mask m when training (kept channels 1/mean(keep), as PEFT and
 * LyCORIS scale them); with probability {@code module_dropout} a training forward skips the adapter.
 * ΔW is materialised per forward (out × in), as PEFT and LyCORIS do: the Hadamard product has no cheaper form.
 *
 * <p>Backward (g = s·dy ⊙ m, [N, out]): dW = gᵀ·x; dP = dW ⊙ Q; dQ = dW ⊙ P; dw1_a = dP·w1_bᵀ,
 * dw1_b = w1_aᵀ·dP, dw2_a = dQ·w2_bᵀ, dw2_b = w2_aᵀ·dQ; dx = g·W.
 */
public final class LohaAdapter implements Adapter {
    private final String adapterName;
    private final String module;
    private final Linear base;
    private final AdapterConfig config;
    private final Parameter w1a, w1b, w2a, w2b;
    private final double scale;
    private final double rankDropout, moduleDropout;

    /** P, Q and the rank mask (null when off) kept for backward; skipped: the module dropout left the adapter out. */
    record LohaActivation(INDArray delta, INDArray x, INDArray p, INDArray q, INDArray mask, boolean skipped) implements Activation {
        @Override public void release() { Tensors.release(p, q, mask, delta); }
        @Override public long bytesKept() { return Adapter.bytes(p) + Adapter.bytes(q) + Adapter.bytes(mask); }
    }

    LohaAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        int in = base.inFeatures(), out = base.outFeatures(), r = config.r();
        ParameterCounter.requireRankFits(module, in, out, r);
        DataType dt = base.baseWeight().dataType();
        this.w1a = new Parameter(name("hada_w1_a"), kaiming(rng, out, r, dt), true, "hada_w1_a");
        this.w1b = new Parameter(name("hada_w1_b"), kaiming(rng, r, in, dt), true, "hada_w1_b");
        this.w2a = new Parameter(name("hada_w2_a"), kaiming(rng, out, r, dt), true, "hada_w2_a");
        this.w2b = new Parameter(name("hada_w2_b"), Nd4j.zeros(dt, r, in), true, "hada_w2_b");
        this.scale = config.alpha() / r;
        this.rankDropout = config.doubleOption(LohaMethod.RANK_DROPOUT);
        this.moduleDropout = config.doubleOption(LohaMethod.MODULE_DROPOUT);
    }

    private String name(String key) { return module + "." + key + "." + adapterName; }

    private static INDArray kaiming(Random rng, int rows, int cols, DataType dt) { return Lycoris.kaiming(rng, rows, cols, dt); }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }
    @Override public List<Parameter> parameters() { return List.of(w1a, w1b, w2a, w2b); }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        long n = x.size(0), out = base.outFeatures();
        if (Lycoris.skipModule(ctx, moduleDropout)) {
            return new LohaActivation(Nd4j.zeros(x.dataType(), n, out), x, null, null, null, true);
        }
        INDArray p = w1a.value().mmul(w1b.value());                      // [out,in]
        INDArray q = w2a.value().mmul(w2b.value());
        INDArray w = p.mul(q);
        INDArray delta = Nd4j.gemm(x, w, false, true).muli(scale);        // [N,out]
        Tensors.release(w);
        INDArray mask = Lycoris.rankMask(ctx, rankDropout, true, out, x.dataType());   // LoHa always rescales (PEFT, LyCORIS)
        if (mask != null) delta.muliRowVector(mask);
        return new LohaActivation(delta, x, p, q, mask, false);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        LohaActivation act = (LohaActivation) activation;
        if (act.skipped()) return null;
        INDArray g = dy.mul(scale);                                          // [N,out]
        if (act.mask() != null) g.muliRowVector(act.mask());
        INDArray dW = Nd4j.gemm(g, act.x(), true, false);                    // [out,in]
        INDArray dP = dW.mul(act.q()), dQ = dW.muli(act.p());
        Nd4j.gemm(dP, w1b.value(), w1a.grad(), false, true, 1.0, 1.0);       // [out,r]
        Nd4j.gemm(w1a.value(), dP, w1b.grad(), true, false, 1.0, 1.0);       // [r,in]
        Nd4j.gemm(dQ, w2b.value(), w2a.grad(), false, true, 1.0, 1.0);
        Nd4j.gemm(w2a.value(), dQ, w2b.grad(), true, false, 1.0, 1.0);
        INDArray w = act.p().mul(act.q());
        INDArray dx = Nd4j.gemm(g, w, false, false);                         // [N,in]
        Tensors.release(g, dP, dQ, w);
        return dx;
    }

    /** s·(w1_a·w1_b) ⊙ (w2_a·w2_b) as [out, in]. */
    INDArray deltaLogical() {
        INDArray p = w1a.value().mmul(w1b.value());
        INDArray q = w2a.value().mmul(w2b.value());
        INDArray w = p.muli(q).muli(scale);
        Tensors.release(q);
        return w;
    }

    @Override
    public INDArray deltaWeight() {
        return Adapter.inLayerLayout(base, deltaLogical());
    }

    @Override
    public Map<String, INDArray> stateDict() { return Lycoris.stateDict(parameters()); }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) { Lycoris.loadStateDict(parameters(), tensors, module, where); }
}
