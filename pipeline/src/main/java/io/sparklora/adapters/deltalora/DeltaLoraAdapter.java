package io.sparklora.adapters.deltalora;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Delta-LoRA on one layer, in its telescoped form. The paper updates the frozen weight after every step past the
 * warm-up K by λ·(B_{t+1}A_{t+1} − B_tA_t), with no gradient and no optimizer state for W. Those updates
 * telescope: W_t = W_0 + λ·(B_tA_t − B_KA_K). So the layer keeps W_0 untouched (shared, read-only) and adds
 * ΔW_t = (s + λ)·B_tA_t − λ·B_KA_K once the snapshot (A_K, B_K) is taken; before it, plain s·BA.
 *
 * <p>Gradients are those of the paper's step: W_t is a constant there, so A and B get the gradients of s·BA alone
 * (dB = s·dyᵀ·h, dA = s·(dy·B)ᵀ·x), while the input gradient goes through the whole effective weight:
 * dx = dy·ΔW_t (plus the base's share, added by the layer).
 *
 * <p>Saved as an exact PEFT LoRA of rank 2r (the config says r' = 2r, alpha' = 2·alpha, so the scale stays s):
 * {@code lora_A} = [A; A_K] [2r, in] and {@code lora_B} = [((s+λ)/s)·B | −(λ/s)·B_K] [out, 2r]; before the warm-up
 * ends the second halves are zero and the first is B. Loading splits them back.
 */
public final class DeltaLoraAdapter extends LoraAdapter {
    private final double lambda;
    private INDArray aK, bK;          // the snapshot at the end of the warm-up, or null before it
    private INDArray aHold, bHold;    // holdW: the λ term's B·A frozen at these values (gradient checks), else null

    record DeltaActivation(INDArray delta, INDArray x, INDArray h) implements Activation {
        @Override public void release() { Tensors.release(h, delta); }
        @Override public long bytesKept() { return io.sparklora.adapters.Adapter.bytes(h); }
    }

    DeltaLoraAdapter(String adapterName, Linear base, AdapterConfig config, Random rng, double lambda) {
        super(adapterName, base, config, rng);
        this.lambda = lambda;
    }

    /** Whether the warm-up has ended (the snapshot is taken). */
    public boolean active() { return aK != null; }

    /** Takes the snapshot (A_K, B_K): copies of the current A and B (what the end of the warm-up does). */
    public void snapshot() {
        aK = a.value().dup();
        bK = b.value().dup();
    }

    /**
     * Holds W_t = W_0 + λ·(BA − B_KA_K) at the current A and B, so that only s·BA varies with them: the function whose
     * gradient the method's backward computes (the paper treats W_t as a constant within a step). For gradient checks.
     */
    public void holdW(boolean on) {
        aHold = on ? a.value().dup() : null;
        bHold = on ? b.value().dup() : null;
    }

    void setSnapshot(INDArray snapA, INDArray snapB) {
        aK = snapA == null ? null : snapA.dup();
        bK = snapB == null ? null : snapB.dup();
    }

    INDArray snapshotA() { return aK; }
    INDArray snapshotB() { return bK; }

    @Override
    public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
        if (!active()) return super.forward(x, baseOut, ctx);
        INDArray h = Nd4j.gemm(x, a.value(), false, true);                               // [N,r]
        INDArray delta;
        if (aHold == null) {
            delta = Nd4j.gemm(h, b.value(), false, true).muli(scale + lambda);           // (s+λ)·h·Bᵀ
        } else {
            delta = Nd4j.gemm(h, b.value(), false, true).muli(scale);
            INDArray hh = Nd4j.gemm(x, aHold, false, true);
            Nd4j.gemm(hh, bHold, delta, false, true, lambda, 1.0);
            Tensors.release(hh);
        }
        INDArray hk = Nd4j.gemm(x, aK, false, true);
        Nd4j.gemm(hk, bK, delta, false, true, -lambda, 1.0);                             // − λ·(x·A_Kᵀ)·B_Kᵀ
        Tensors.release(hk);
        return new DeltaActivation(delta, x, h);
    }

    @Override
    public INDArray backward(Activation activation, INDArray dy) {
        if (!(activation instanceof DeltaActivation act)) return super.backward(activation, dy);
        if (b.trainable()) Nd4j.gemm(dy, act.h(), b.grad(), true, false, scale, 1.0);   // dB = s·dyᵀ·h
        INDArray dyB = Nd4j.gemm(dy, b.value(), false, false);                          // [N,r]
        if (a.trainable()) Nd4j.gemm(dyB, act.x(), a.grad(), true, false, scale, 1.0);  // dA = s·(dy·B)ᵀ·x
        INDArray dx = Nd4j.gemm(dyB, a.value(), false, false).muli(scale + lambda);     // dy·ΔW_t
        INDArray dyBk = Nd4j.gemm(dy, bK, false, false);
        Nd4j.gemm(dyBk, aK, dx, false, false, -lambda, 1.0);
        Tensors.release(dyB, dyBk);
        return dx;
    }

    /** ΔW_t as [out, in]: (s+λ)·B·A − λ·B_K·A_K, or s·B·A before the warm-up ends. */
    @Override
    protected INDArray deltaLogical() {
        if (!active()) return super.deltaLogical();
        INDArray w = b.value().mmul(a.value()).muli(scale + lambda);
        return w.subi(bK.mmul(aK).muli(lambda));
    }

    @Override
    public Map<String, INDArray> stateDict() {
        long r = a.value().size(0), in = a.value().size(1), out = b.value().size(0);
        INDArray a2 = Nd4j.zeros(a.value().dataType(), 2 * r, in), b2 = Nd4j.zeros(b.value().dataType(), out, 2 * r);
        a2.get(NDArrayIndex.interval(0, r), NDArrayIndex.all()).assign(a.value());
        if (active()) {
            a2.get(NDArrayIndex.interval(r, 2 * r), NDArrayIndex.all()).assign(aK);
            b2.get(NDArrayIndex.all(), NDArrayIndex.interval(0, r)).assign(b.value().mul((scale + lambda) / scale));
            b2.get(NDArrayIndex.all(), NDArrayIndex.interval(r, 2 * r)).assign(bK.mul(-lambda / scale));
        } else {
            b2.get(NDArrayIndex.all(), NDArrayIndex.interval(0, r)).assign(b.value());
        }
        Map<String, INDArray> m = new LinkedHashMap<>();
        m.put("lora_A.weight", a2);
        m.put("lora_B.weight", b2);
        return m;
    }

    @Override
    public void loadStateDict(Map<String, INDArray> tensors, String where) {
        INDArray a2 = tensors.get("lora_A.weight"), b2 = tensors.get("lora_B.weight");
        long r = a.value().size(0);
        if (a2 == null || b2 == null || a2.size(0) != 2 * r || b2.size(1) != 2 * r) {
            // the adapter tensors alone, as rounds and checkpoints carry them (the snapshot travels as round state)
            super.loadStateDict(tensors, where);
            return;
        }
        INDArray snapA = a2.get(NDArrayIndex.interval(r, 2 * r), NDArrayIndex.all());
        boolean isActive = snapA.amaxNumber().doubleValue() > 0;
        put(a, a2.get(NDArrayIndex.interval(0, r), NDArrayIndex.all()).dup(), "lora_A.weight", where);
        INDArray bFirst = b2.get(NDArrayIndex.all(), NDArrayIndex.interval(0, r)).dup();
        if (isActive) {
            put(b, bFirst.muli(scale / (scale + lambda)), "lora_B.weight", where);
            setSnapshot(snapA.dup(), b2.get(NDArrayIndex.all(), NDArrayIndex.interval(r, 2 * r)).mul(-scale / lambda));
        } else {
            put(b, bFirst, "lora_B.weight", where);
            setSnapshot(null, null);
        }
    }
}
