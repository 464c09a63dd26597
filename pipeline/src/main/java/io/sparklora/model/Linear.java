package io.sparklora.model;

import io.sparklora.adapters.Adapter;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A linear layer y = x·W + b with adapters attached.
 *
 * <p>The weight is a {@link BaseWeight}: dense in the layout of the checkpoint it came from (GPT-2's
 * Conv1D stores W as [in, out], {@code transposed == false}; nn.Linear, Llama and lm_head, as [out, in],
 * {@code transposed == true}), or any other representation of the frozen base.
 *
 * <p>Shapes: x [N, in] → y [N, out].
 */
public final class Linear {

    private final String name;
    private final BaseWeight weight;
    private Parameter bias;                // null when the layer has none
    private boolean biasAddedByMerge;      // the bias exists only because a merge needed one (GLoRA's b')
    private PerExampleGradients perExample; // set during a DP step's backward: adapters' per-example gradients
    private final Map<String, Adapter> adapters = new LinkedHashMap<>();
    private final Set<String> active = new LinkedHashSet<>();
    private final Set<String> merged = new LinkedHashSet<>();

    /**
     * What forward saved for backward. {@code rows}: null when every adapter saw all rows; in a mixed-adapter
     * training batch, the row range {from, to} of x that each adapter saw (its activation is over those rows only).
     */
    public record Cache(INDArray x, INDArray out, List<Adapter.Activation> adapterActivations, List<Adapter> adapters, List<long[]> rows) {
        public Cache(INDArray x, INDArray out, List<Adapter.Activation> adapterActivations, List<Adapter> adapters) {
            this(x, out, adapterActivations, adapters, null);
        }

        /** Frees what forward saved (after backward, or when no backward will come). */
        public void release() {
            for (Adapter.Activation a : adapterActivations) a.release();
            Tensors.release(x, out);
        }
    }

    /** A layer over a dense weight in the checkpoint's layout. */
    public Linear(String name, Parameter weight, Parameter bias, boolean transposed) {
        this(name, new DenseWeight(weight, transposed, name), bias);
    }

    public Linear(String name, BaseWeight weight, Parameter bias) {
        this.name = name;
        this.weight = weight;
        this.bias = bias;
        if (bias != null && bias.value().length() != weight.outFeatures()) {
            throw new ModelConfigException(name + ".bias has " + bias.value().length() + " entries, expected " + weight.outFeatures());
        }
    }

    public String name() { return name; }
    /** The weight's tensor under its checkpoint name. */
    public Parameter weight() { return weight.parameter(); }
    public BaseWeight baseWeight() { return weight; }
    public Parameter bias() { return bias; }

    /**
     * The bias for a merge to write into: the layer's own (a private copy if shared) or, on a layer without one, a
     * new zero bias that the layer keeps while a merge needs it ({@link #unmerge} drops it again, {@link #forgetMerged}
     * keeps it). Methods whose merged form has a bias term (GLoRA's b' = b0 + b0 ⊙ D + E + W0·C) call this.
     */
    public INDArray mergeBias() {
        if (bias == null) {
            bias = new Parameter(name + ".bias", org.nd4j.linalg.factory.Nd4j.zeros(weight.dataType(), outFeatures()), false, "bias");
            biasAddedByMerge = true;
        }
        return bias.mutableValue();
    }

    /** Whether this layer's bias was created by a merge ({@link #mergeBias}): the checkpoint must then say the layer has one. */
    public boolean hasMergeAddedBias() { return biasAddedByMerge; }
    /** True when the weight is stored [out, in] (nn.Linear), false for [in, out] (Conv1D). */
    public boolean transposed() { return weight.transposed(); }
    public int inFeatures() { return weight.inFeatures(); }
    public int outFeatures() { return weight.outFeatures(); }

    public Cache forward(INDArray x, ForwardContext ctx) {
        INDArray y = weight.forward(x);
        if (ctx.sequenceAdapters() != null) return forwardMixed(x, y, ctx);
        List<Adapter.Activation> acts = new ArrayList<>();
        List<Adapter> used = new ArrayList<>();
        for (String a : active) {
            if (merged.contains(a)) continue;
            Adapter adapter = adapters.get(a);
            // adapters see the bias-free base output and must not keep it: it becomes y below
            acts.add(adapter.forward(x, y, ctx));
            used.add(adapter);
        }
        if (bias != null) y.addiRowVector(bias.value());
        for (Adapter.Activation act : acts) {
            y.addi(act.delta());
            act.releaseDelta();
        }
        // a frozen layer needs only W for backward, so it keeps x alive only for dW or an adapter that reads it
        return new Cache(needsInput() ? x : null, y, acts, used);
    }

    /**
     * A mixed-adapter batch: the base matmul {@code y} has run once for all rows; each maximal run of consecutive
     * sequences that name the same adapter gets that adapter's contribution on its rows only, computed on row views
     * of x and y (no copies), with the adapter's own context ({@link ForwardContext#forAdapter}). Sequences naming an
     * adapter this layer does not have get none here. In training each run's activation is kept with its row range,
     * and {@link #backward} sends each adapter the gradient of its own rows only. x [N, in], N = sequences · rows
     * per sequence.
     */
    private Cache forwardMixed(INDArray x, INDArray y, ForwardContext ctx) {
        String[] route = ctx.sequenceAdapters();
        long n = x.rows();
        if (n % route.length != 0) {
            throw new IllegalArgumentException(name + ": " + n + " rows do not split into " + route.length + " sequences of equal length");
        }
        if (!merged.isEmpty()) {
            throw new IllegalStateException(name + ": adapters " + merged + " are merged into the weight, so every row would get them;"
                    + " unmerge before running a mixed-adapter batch");
        }
        if (ctx.training() && perExample != null) {
            throw new IllegalStateException(name + ": per-example gradients (DP) are not available in a mixed-adapter batch");
        }
        long t = n / route.length;
        List<INDArray> views = new ArrayList<>();
        List<Adapter.Activation> acts = new ArrayList<>();
        List<Adapter> used = new ArrayList<>();
        List<long[]> ranges = new ArrayList<>();
        for (ForwardContext.AdapterRun run : ctx.adapterRuns()) {
            Adapter adapter = adapters.get(run.adapter());
            if (adapter == null) continue;
            if (ctx.training() && adapter.needsLayerInput() && !needsInput()) {
                throw new IllegalStateException(name + ": adapter '" + run.adapter() + "' trains in a mixed batch but is not active;"
                        + " activate every adapter that trains");
            }
            var rows = org.nd4j.linalg.indexing.NDArrayIndex.interval(run.from() * t, run.to() * t);
            INDArray yv = y.get(rows, org.nd4j.linalg.indexing.NDArrayIndex.all());
            // as in forward: the adapter sees its rows' bias-free base output, and its delta is added after the bias
            acts.add(adapter.forward(x.get(rows, org.nd4j.linalg.indexing.NDArrayIndex.all()), yv, ctx.forAdapter(run.adapter())));
            views.add(yv);
            used.add(adapter);
            ranges.add(new long[]{run.from() * t, run.to() * t});
        }
        if (bias != null) y.addiRowVector(bias.value());
        for (int i = 0; i < acts.size(); i++) {
            views.get(i).addi(acts.get(i).delta());
            acts.get(i).releaseDelta();
            if (!ctx.training()) acts.get(i).release();
        }
        if (!ctx.training()) return new Cache(null, y, List.of(), List.of());
        return new Cache(needsInput() ? x : null, y, acts, used, ranges);
    }

    /** Whether backward needs this layer's input (to form dW or an adapter's gradients). */
    public boolean needsInput() {
        if (weight.trainable()) return true;
        for (String a : active) if (!merged.contains(a) && adapters.get(a).needsLayerInput()) return true;
        return false;
    }

    /** Accumulates weight, bias and adapter gradients (for those that train) and returns dL/dx [N, in]. */
    public INDArray backward(Cache c, INDArray dy) {
        if (weight.trainable()) weight.accumulateGradient(c.x(), dy);
        if (bias != null && bias.trainable()) {
            INDArray db = dy.sum(0);
            bias.accumulate(db);
            Tensors.release(db);
        }
        INDArray dx = weight.backwardInput(dy);
        for (int i = 0; i < c.adapters().size(); i++) {
            // in a mixed-adapter batch each adapter gets the gradient of its own rows and adds to theirs only
            var rows = c.rows() == null ? null : org.nd4j.linalg.indexing.NDArrayIndex.interval(c.rows().get(i)[0], c.rows().get(i)[1]);
            INDArray dyA = rows == null ? dy : dy.get(rows, org.nd4j.linalg.indexing.NDArrayIndex.all());
            INDArray dxa = c.adapters().get(i).backward(c.adapterActivations().get(i), dyA);
            if (perExample != null) perExample.collect(c.adapters().get(i), c.adapterActivations().get(i), dyA);
            if (dxa != null) {
                (rows == null ? dx : dx.get(rows, org.nd4j.linalg.indexing.NDArrayIndex.all())).addi(dxa);
                Tensors.release(dxa);
            }
        }
        return dx;
    }

    /** While set, {@link #backward} also forms each adapter's per-example gradients into {@code g} (null: off). */
    void collectPerExample(PerExampleGradients g) { this.perExample = g; }

    // ---- adapters -------------------------------------------------------------------------------

    public void attach(Adapter adapter) {
        if (adapters.containsKey(adapter.adapterName())) {
            throw new IllegalArgumentException(name + ": an adapter named '" + adapter.adapterName() + "' is already attached");
        }
        adapters.put(adapter.adapterName(), adapter);
        active.add(adapter.adapterName());
    }

    public Adapter detach(String adapterName) {
        if (merged.contains(adapterName)) unmerge(adapterName);
        active.remove(adapterName);
        return adapters.remove(adapterName);
    }

    /** Forgets a merged adapter but keeps its change in W: the layer becomes a plain fine-tuned layer. */
    public Adapter forgetMerged(String adapterName) {
        if (!merged.remove(adapterName)) throw new IllegalStateException(name + ": adapter '" + adapterName + "' is not merged");
        active.remove(adapterName);
        return adapters.remove(adapterName);
    }

    public Adapter adapter(String adapterName) { return adapters.get(adapterName); }
    public Collection<Adapter> adapters() { return adapters.values(); }

    /** Makes exactly the named adapters (those attached here) contribute to the output. */
    public void setActive(Collection<String> names) {
        active.clear();
        for (String n : names) if (adapters.containsKey(n)) active.add(n);
    }

    public boolean isMerged(String adapterName) { return merged.contains(adapterName); }

    /** W ← W' (the adapter's merge: W0 + ΔW for most methods); the adapter then stops adding its delta at run time. */
    public void merge(String adapterName) {
        Adapter a = requireAdapter(adapterName);
        if (merged.contains(adapterName)) throw new IllegalStateException(name + ": adapter '" + adapterName + "' is already merged");
        a.merge(this);
        merged.add(adapterName);
    }

    /** Undoes {@link #merge}: restores the base weight (to fp32 rounding). */
    public void unmerge(String adapterName) {
        Adapter a = requireAdapter(adapterName);
        if (!merged.contains(adapterName)) throw new IllegalStateException(name + ": adapter '" + adapterName + "' is not merged");
        a.unmerge(this);
        merged.remove(adapterName);
        if (merged.isEmpty() && biasAddedByMerge) {
            bias = null;
            biasAddedByMerge = false;
        }
    }

    private Adapter requireAdapter(String adapterName) {
        Adapter a = adapters.get(adapterName);
        if (a == null) throw new IllegalArgumentException(name + ": no adapter named '" + adapterName + "'");
        return a;
    }
}
