package io.sparklora.adapters;

import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

/**
 * What one method of the LoRA family computes on one {@link Linear} layer: the per-layer part of an
 * {@link AdapterMethod}. Each method's implementation lives in its own package under {@code adapters/}.
 *
 * <p>The layer computes {@code y = x·W0ᵀ (+ b)} and adds, for every active adapter, the {@code delta}
 * its {@link #forward} returns. Methods that rescale the whole output (DoRA) express that as a delta
 * too, which is why the base output is passed in.
 *
 * <p>Shapes: x is [N, in], baseOut and delta are [N, out], N = batch·sequence.
 */
public interface Adapter {

    /** What {@link #forward} saved for {@link #backward}. */
    interface Activation {
        /** The adapter's contribution to the layer output, [N, out]. */
        INDArray delta();

        /** Frees the delta once the layer has added it (methods whose backward needs it keep it). */
        default void releaseDelta() { Tensors.release(delta()); }

        /** Frees everything saved for backward. */
        void release();

        /**
         * Bytes this activation keeps alive for backward beyond the delta and the layer's input x (which the
         * layer keeps in {@code Linear.Cache.x()} only when an adapter {@link Adapter#needsLayerInput() reads it}).
         */
        long bytesKept();
    }

    /** The adapter's name on its base model ("default" unless the user names several). */
    String adapterName();

    /** The method's name as configs spell it ("lora", "dora", ...). */
    String method();

    /** This layer's tensors (trainable and frozen), with their PEFT-style names; shared ones appear on every layer using them. */
    List<Parameter> parameters();

    /**
     * Forward: the contribution to add to the layer output. {@code baseOut} (x·W0ᵀ, without bias) is valid
     * only during the call: the layer adds bias and deltas into it afterwards.
     */
    Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx);

    /**
     * Backward: accumulates the adapter's parameter gradients from {@code dy} ([N, out]) and returns
     * its part of the gradient w.r.t. x ([N, in]), or null if it has none.
     */
    INDArray backward(Activation activation, INDArray dy);

    /** Whether backward reads the layer's input x (LoRA-FA does not: it keeps only A·x). */
    default boolean needsLayerInput() { return true; }

    /**
     * The change this adapter makes to the base weight, in the base layer's storage layout
     * ([in, out] for Conv1D, [out, in] for nn.Linear), for methods whose merge is additive.
     */
    INDArray deltaWeight();

    /** Writes the merged weight W' into the layer's (private) weight: W0 + ΔW unless the method says otherwise. */
    default void merge(Linear layer) { layer.baseWeight().mutableDense().addi(deltaWeight()); }

    /** Restores W0 from the merged weight, undoing {@link #merge} (to fp32 rounding). */
    default void unmerge(Linear layer) { layer.baseWeight().mutableDense().subi(deltaWeight()); }

    /** Tensors to save in PEFT layout, keyed by the suffix after the module name (e.g. "lora_A.weight"). */
    Map<String, INDArray> stateDict();

    /** Loads tensors saved by {@link #stateDict()}; shapes must match. */
    void loadStateDict(Map<String, INDArray> tensors, String where);

    /**
     * Inverted dropout's mask for an adapter's input: kept entries are 1/(1−p), dropped ones 0; null when not
     * training or p = 0. Drawn from the context's stream, so a seeded run draws the same masks.
     */
    static INDArray dropoutMask(INDArray x, double p, ForwardContext ctx) {
        if (!ctx.training() || p <= 0) return null;
        return org.nd4j.linalg.factory.Nd4j.rand(ctx.random(), x.shape()).castTo(x.dataType()).gt(p).castTo(x.dataType()).muli(1.0 / (1 - p));
    }

    /**
     * A logical [out, in] matrix in {@code layer}'s storage layout ([out, in] for nn.Linear, [in, out] for Conv1D),
     * or a stored one back to [out, in]: the map is its own inverse. The layer's own array is never returned.
     */
    static INDArray inLayerLayout(io.sparklora.model.Linear layer, INDArray m) {
        return layer.transposed() ? m : m.transpose().dup('c');
    }

    /** Bytes of an array (0 for null), for {@link Activation#bytesKept()}. */
    static long bytes(INDArray t) { return t == null ? 0 : t.length() * t.dataType().width(); }

    /** Copies {@code t} into {@code p}, naming the module, key and expected shape when they disagree. */
    static void load(Parameter p, INDArray t, String module, String key, String where) {
        if (t == null) throw new IllegalArgumentException(where + ": missing tensor " + module + "." + key);
        if (!java.util.Arrays.equals(t.shape(), p.value().shape())) {
            throw new IllegalArgumentException(where + ": tensor " + module + "." + key + " has shape " + java.util.Arrays.toString(t.shape())
                    + " but this layer needs " + java.util.Arrays.toString(p.value().shape()));
        }
        p.set(t.castTo(p.value().dataType()));
    }
}
