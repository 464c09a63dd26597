package io.sparklora.adapters.lora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoRA (Hu et al., 2021) on one layer: W' = W0 + s·B·A with A [r, in], B [out, r], s = alpha/r (or
 * alpha/√r, rsLoRA). A starts random, B at zero, so training starts from the base model exactly.
 *
 * <p>Forward (x [N, in]): x' = dropout(x); h = x'·Aᵀ [N, r]; delta = s·h·Bᵀ [N, out].
 * Backward: dB = s·dyᵀ·h; dh = s·dy·B; dA = dhᵀ·x'; dx = dropout'(dh·A).
 */
public class LoraAdapter implements Adapter {
    protected final String adapterName;
    protected final String module;
    protected final Linear base;
    protected final AdapterConfig config;
    protected final Parameter a;
    protected final Parameter b;
    protected final double scale;

    /** What forward keeps: the adapter's input after dropout, the dropout mask (or null) and h = x'·Aᵀ. */
    protected record LoraActivation(INDArray delta, INDArray xIn, INDArray keepMask, INDArray h) implements Activation {
        @Override public void release() {
            // xIn is the layer's input unless dropout made a copy; the layer releases its own input
            if (keepMask != null) Tensors.release(xIn, keepMask);
            Tensors.release(h, delta);
        }

        /** h, and with dropout the dropped-out copy of x and the mask (without dropout xIn is the layer's own x). */
        @Override public long bytesKept() { return (keepMask == null ? 0 : Adapter.bytes(xIn) + Adapter.bytes(keepMask)) + Adapter.bytes(h); }
    }

    public LoraAdapter(String adapterName, Linear base, AdapterConfig config, Random rng) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        int in = base.inFeatures(), out = base.outFeatures();
        ParameterCounter.requireRankFits(module, in, out, config.r());
        DataType dt = base.baseWeight().dataType();
        INDArray aInit;
        if (config.init().equals("gaussian")) {
            aInit = Nd4j.randn(rng, new long[]{config.r(), in}).castTo(dt).muli(1.0 / config.r());
        } else {
            // PEFT's default is kaiming_uniform_(a=√5), whose bound works out to 1/√fan_in.
            double bound = 1.0 / Math.sqrt(in);
            aInit = Nd4j.rand(rng, config.r(), in).castTo(dt).muli(2 * bound).subi(bound);
        }
        this.a = new Parameter(module + ".lora_A." + adapterName + ".weight", aInit, trainsA(), "lora_A");
        this.b = new Parameter(module + ".lora_B." + adapterName + ".weight", Nd4j.zeros(dt, out, config.r()), true, "lora_B");
        this.scale = config.scale();
    }

    /**
     * A LoRA on {@code base} that shares {@code other}'s A and B (LoRA-drop's shared adapter for the less
     * important layers): gradients from every sharing layer accumulate into the same tensors.
     */
    public LoraAdapter(String adapterName, Linear base, AdapterConfig config, LoraAdapter other) {
        this.adapterName = adapterName;
        this.module = base.name();
        this.base = base;
        this.config = config;
        if (base.inFeatures() != other.base.inFeatures() || base.outFeatures() != other.base.outFeatures()) {
            throw new IllegalArgumentException(module + " (" + base.inFeatures() + "→" + base.outFeatures() + ") cannot share the adapter of "
                    + other.module + " (" + other.base.inFeatures() + "→" + other.base.outFeatures() + "): shapes differ");
        }
        this.a = other.a;
        this.b = other.b;
        this.scale = config.scale();
    }

    /** Whether A trains (LoRA-FA freezes it). */
    protected boolean trainsA() { return true; }

    @Override public String adapterName() { return adapterName; }
    @Override public String method() { return config.method(); }
    @Override public List<Parameter> parameters() { return List.of(a, b); }
    public Parameter loraA() { return a; }
    public Parameter loraB() { return b; }
    public double scale() { return scale; }
    public Linear base() { return base; }

    /** Inverted dropout's mask (kept entries scaled by 1/(1−p)), or null when dropout is off. */
    protected INDArray dropoutMask(INDArray x, ForwardContext ctx) { return Adapter.dropoutMask(x, config.dropout(), ctx); }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        INDArray keep = dropoutMask(x, ctx);
        INDArray xIn = keep == null ? x : x.mul(keep);
        INDArray h = Nd4j.gemm(xIn, a.value(), false, true);                  // [N,r]
        INDArray delta = Nd4j.gemm(h, b.value(), false, true).muli(scale);   // [N,out]
        return new LoraActivation(delta, xIn, keep, h);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        LoraActivation act = (LoraActivation) activation;
        // the scale s is folded into the gemms' alpha: dB = s·dyᵀ·h, dh = s·dy·B
        if (b.trainable()) Nd4j.gemm(dy, act.h(), b.grad(), true, false, scale, 1.0);       // [out,r]
        INDArray dh = Nd4j.gemm(dy, b.value(), false, false).muli(scale);                    // [N,r]
        if (a.trainable()) Nd4j.gemm(dh, act.xIn(), a.grad(), true, false, 1.0, 1.0);       // [r,in]
        INDArray dx = Nd4j.gemm(dh, a.value(), false, false);                               // [N,in]
        Tensors.release(dh);
        return act.keepMask() == null ? dx : dx.muli(act.keepMask());
    }

    /** s·B·A as [out, in] (the logical layout). */
    protected INDArray deltaLogical() { return b.value().mmul(a.value()).muli(scale); }

    @Override
    public INDArray deltaWeight() {
        return Adapter.inLayerLayout(base, deltaLogical());
    }

    @Override
    public Map<String, INDArray> stateDict() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put("lora_A.weight", a.value());
        m.put("lora_B.weight", b.value());
        return m;
    }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) {
        put(a, tensors.get("lora_A.weight"), "lora_A.weight", where);
        put(b, tensors.get("lora_B.weight"), "lora_B.weight", where);
    }

    protected void put(Parameter p, INDArray t, String key, String where) {
        if (t != null && !java.util.Arrays.equals(t.shape(), p.value().shape())) {
            throw new IllegalArgumentException(where + ": tensor " + module + "." + key + " has shape " + java.util.Arrays.toString(t.shape())
                    + " but the base layer needs " + java.util.Arrays.toString(p.value().shape()) + " (r=" + config.r() + ", "
                    + base.inFeatures() + " in, " + base.outFeatures() + " out)");
        }
        Adapter.load(p, t, module, key, where);
    }
}
