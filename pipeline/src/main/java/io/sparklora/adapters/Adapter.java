package io.sparklora.adapters;

import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

/**
 * One adapter attached to one {@link io.sparklora.model.Linear} layer. Every method of the LoRA family
 * is an implementation of this interface in a file of its own; the model code never changes for a new one.
 *
 * <p>The layer computes {@code y = x·W0 (+ b)} and adds, for every active adapter, the {@code delta}
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
        default void releaseDelta() { io.sparklora.model.Tensors.release(delta()); }

        /** Frees everything saved for backward. */
        void release();
    }

    /** The adapter's name on its base model ("default" unless the user names several). */
    String adapterName();

    /** The method's name as configs spell it ("lora", ...). */
    String method();

    /** Trainable (and frozen) tensors of this adapter, with their PEFT-style names. */
    List<Parameter> parameters();

    /**
     * Forward: the contribution to add to the layer output. {@code baseOut} (x·W0, without bias) is valid
     * only during the call: the layer adds bias and deltas into it afterwards.
     */
    Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx);

    /**
     * Backward: accumulates the adapter's parameter gradients from {@code dy} ([N, out]) and returns
     * its part of the gradient w.r.t. x ([N, in]), or null if it has none.
     */
    INDArray backward(Activation activation, INDArray dy);

    /**
     * The change this adapter makes to the base weight, in the base layer's storage layout
     * ([in, out] for Conv1D, [out, in] for nn.Linear): merging adds it, unmerging subtracts it.
     */
    INDArray deltaWeight();

    /** Tensors to save in PEFT layout, keyed by the suffix after the module name (e.g. "lora_A.weight"). */
    Map<String, INDArray> stateDict();

    /** Loads tensors saved by {@link #stateDict()}; shapes must match. */
    void loadStateDict(Map<String, INDArray> tensors, String where);
}
