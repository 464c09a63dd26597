package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.floating.Sqrt;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.Axpy;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * AdamW with decoupled weight decay (Loshchilov &amp; Hutter), with the semantics of PyTorch's
 * {@code torch.optim.AdamW}:
 * <pre>
 *   p  -= lr·wd·p
 *   m   = β1·m + (1-β1)·g
 *   v   = β2·v + (1-β2)·g²
 *   p  -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)
 * </pre>
 * where {@code lr} is the group's peak rate times the schedule factor passed to {@link #step(double)}.
 *
 * <p>Gradient accumulation: parameters add every micro-batch's gradient into their buffer
 * ({@link Parameter#accumulate}), and a step uses whatever has accumulated. The trainer divides each
 * micro-batch loss by the number of micro-batches so the accumulated gradient is the mean, and calls
 * {@link #zeroGrad()} after the step.
 *
 * <p>State (first and second moment, step count) exists only for trainable parameters and is allocated
 * at their first step. Each parameter keeps its own step count, so one unfrozen mid-run gets correct
 * bias correction. The update is a few whole-array in-place ND4J ops per parameter, so it runs on any
 * backend; the one intermediate lives in a scratch buffer the optimizer keeps (see {@link #scratchBytes()}),
 * so a step allocates no full-size temporaries.
 *
 * <p><b>Paged state.</b> With {@link StateStorage#MAPPED} the two moments of every parameter live in a
 * memory-mapped file (one per parameter) in a directory of their own under a directory the caller names, e.g.
 * an executor's local spill directory. Steps, {@link #exportState()} and {@link #importState} give the same
 * results bit for bit as with {@link StateStorage#MEMORY}: the arrays are the same ND4J arrays doing the same
 * ops, only their memory is a {@code MAP_SHARED} file mapping instead of anonymous native memory. That memory
 * is what the kernel can take back: under pressure it writes dirty moment pages to the file and drops them,
 * and the next step faults them back in, so a memory spike elsewhere in the process slows the optimizer down
 * instead of getting the executor killed, with no swap configured. {@link #pageOutState()} moves the moments
 * out of the process on purpose (before a known spike: evaluation, merging, a checkpoint). The mechanism and
 * what ND4J 1.0.0-M2.1 does and does not allow (notably on CUDA, where MAPPED is refused) are in
 * {@code MappedMomentStore} and
 * {@code docs/paged-optimizer.md}. {@link #close()} deletes the files; a shutdown hook deletes those of
 * optimizers still open when the JVM exits.
 */
public final class AdamW implements AutoCloseable {
    /** Key of the optimizer's step count in {@link #exportState()}. */
    public static final String STEP_KEY = "step";
    public static final String EXP_AVG_SUFFIX = ".exp_avg";
    public static final String EXP_AVG_SQ_SUFFIX = ".exp_avg_sq";
    public static final String PARAM_STEP_SUFFIX = ".step";

    public static final double DEFAULT_BETA1 = 0.9;
    public static final double DEFAULT_BETA2 = 0.999;
    public static final double DEFAULT_EPS = 1e-8;

    /** Where the first and second moments live. */
    public enum StateStorage {
        /** Ordinary ND4J arrays in native (off-heap) memory: anonymous memory the OS cannot page out without swap. */
        MEMORY,
        /** Arrays over memory-mapped files, one per parameter, which the OS pages to and from the file. */
        MAPPED
    }

    private final List<ParamGroup> groups;
    private final double baseLr;
    private final double beta1;
    private final double beta2;
    private final double eps;
    /** Moments by parameter name; only parameters that have been stepped (or imported) have an entry. */
    private final Map<String, State> state = new LinkedHashMap<>();
    private final Map<String, Parameter> paramsByName = new LinkedHashMap<>();
    /** Scratch space for the update by data type, sized to the largest trainable parameter of that type. */
    private final Map<DataType, INDArray> scratch = new EnumMap<>(DataType.class);
    private long stepCount;
    private final StateStorage storage;
    /** The files of {@link StateStorage#MAPPED} state; null for {@link StateStorage#MEMORY}. */
    private final MappedMomentStore store;
    private boolean closed;

    /** The moments of one parameter: in-memory arrays, or a mapped file (mapped again on use after a page-out). */
    private static final class State {
        private final INDArray expAvg;
        private final INDArray expAvgSq;
        final MappedMomentStore.Slot slot;
        final long bytes;
        long step;

        State(INDArray expAvg, INDArray expAvgSq, long step) {
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
            this.slot = null;
            this.bytes = expAvg.length() * expAvg.dataType().width() + expAvgSq.length() * expAvgSq.dataType().width();
            this.step = step;
        }

        State(MappedMomentStore.Slot slot, long step) {
            this.expAvg = null;
            this.expAvgSq = null;
            this.slot = slot;
            this.bytes = 2 * slot.momentBytes;
            this.step = step;
        }

        INDArray expAvg() { return slot == null ? expAvg : slot.expAvg(); }

        INDArray expAvgSq() { return slot == null ? expAvgSq : slot.expAvgSq(); }
    }

    public AdamW(List<ParamGroup> groups, double baseLr, double beta1, double beta2, double eps) {
        this(groups, baseLr, beta1, beta2, eps, StateStorage.MEMORY, null);
    }

    /**
     * AdamW whose moments are kept as {@code storage} says.
     *
     * @param stateDirectory for {@link StateStorage#MAPPED}: the directory under which the optimizer creates its
     *                       own uniquely named directory ({@code adamw-state-*}) for the moment files (created if
     *                       missing; local disk, e.g. an executor's spill directory); must be null for
     *                       {@link StateStorage#MEMORY}
     * @throws UnsupportedOperationException for MAPPED when ND4J does not run on its CPU backend
     */
    public AdamW(List<ParamGroup> groups, double baseLr, double beta1, double beta2, double eps,
                 StateStorage storage, Path stateDirectory) {
        Objects.requireNonNull(storage, "storage");
        if (storage == StateStorage.MAPPED && stateDirectory == null) {
            throw new IllegalArgumentException("MAPPED optimizer state needs a state directory");
        }
        if (storage == StateStorage.MEMORY && stateDirectory != null) {
            throw new IllegalArgumentException("a state directory is only used with MAPPED optimizer state");
        }
        if (!(baseLr >= 0) || Double.isInfinite(baseLr)) throw new IllegalArgumentException("lr must be finite and >= 0, got " + baseLr);
        if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("beta1 must be in [0, 1), got " + beta1);
        if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("beta2 must be in [0, 1), got " + beta2);
        if (!(eps >= 0)) throw new IllegalArgumentException("eps must be >= 0, got " + eps);
        this.groups = List.copyOf(groups);
        this.baseLr = baseLr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        for (ParamGroup g : this.groups) {
            for (Parameter p : g.params()) {
                // State is keyed by name, so a name must identify one parameter in one group.
                if (paramsByName.putIfAbsent(p.name(), p) != null) {
                    throw new IllegalArgumentException("parameter " + p.name() + " appears more than once in the param groups");
                }
            }
        }
        this.storage = storage;
        // Last, so an invalid argument above leaves no directory behind.
        this.store = storage == StateStorage.MAPPED ? new MappedMomentStore(stateDirectory) : null;
    }

    /** AdamW with PyTorch's default betas (0.9, 0.999) and eps 1e-8. */
    public AdamW(List<ParamGroup> groups, double baseLr) {
        this(groups, baseLr, DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS);
    }

    public List<ParamGroup> groups() { return groups; }
    public double baseLr() { return baseLr; }
    public double beta1() { return beta1; }
    public double beta2() { return beta2; }
    public double eps() { return eps; }
    public StateStorage stateStorage() { return storage; }

    /** The directory holding this optimizer's moment files ({@link StateStorage#MAPPED}); empty for MEMORY. */
    public Optional<Path> stateDirectory() {
        return store == null ? Optional.empty() : Optional.of(store.directory());
    }

    /**
     * The moment file of every parameter that has state ({@link StateStorage#MAPPED}; empty for MEMORY), in
     * allocation order. A file holds {@code exp_avg} at offset 0 and {@code exp_avg_sq} at offset
     * {@link #secondMomentOffset(long)}, each in the parameter's data type, native byte order, 'c' order.
     */
    public Map<String, Path> stateFiles() {
        Map<String, Path> out = new LinkedHashMap<>();
        for (Map.Entry<String, State> e : state.entrySet()) {
            if (e.getValue().slot != null) out.put(e.getKey(), e.getValue().slot.file);
        }
        return Collections.unmodifiableMap(out);
    }

    /** Offset of {@code exp_avg_sq} in a moment file, for moments of {@code momentBytes} bytes each. */
    public static long secondMomentOffset(long momentBytes) {
        long a = MappedMomentStore.ALIGNMENT;
        return (momentBytes + a - 1) / a * a;
    }

    /** Number of {@link #step} calls so far (including those restored by {@link #importState}). */
    public long stepCount() { return stepCount; }

    /** The parameters this optimizer updates right now (trainable members of its groups). */
    public List<Parameter> trainableParameters() {
        List<Parameter> out = new ArrayList<>();
        for (ParamGroup g : groups) for (Parameter p : g.params()) if (p.trainable()) out.add(p);
        return out;
    }

    /** Learning rate a group gets at the given schedule factor; useful for logging. */
    public double lr(ParamGroup group, double lrFactor) {
        return group.peakLr(baseLr) * lrFactor;
    }

    /** One update at the groups' peak learning rates. */
    public void step() {
        step(1.0);
    }

    /**
     * One update of every trainable parameter from its accumulated gradient.
     *
     * @param lrFactor the schedule's factor for this step ({@link LrSchedule#factor}); each group's lr is
     *                 its peak lr times this factor
     */
    public void step(double lrFactor) {
        ensureOpen();
        if (!(lrFactor >= 0) || Double.isInfinite(lrFactor)) {
            throw new IllegalArgumentException("lr factor must be finite and >= 0, got " + lrFactor);
        }
        for (ParamGroup group : groups) {
            double lr = lr(group, lrFactor);
            for (Parameter p : group.params()) {
                if (!p.trainable()) continue;
                update(p, lr, group.weightDecay());
            }
        }
        stepCount++;
    }

    private void update(Parameter p, double lr, double weightDecay) {
        INDArray value = p.value();
        INDArray grad = p.grad();
        State s = state.get(p.name());
        if (s == null) {
            if (store != null) {
                s = new State(store.allocate(p.name(), value.dataType(), value.shape()), 0); // a new file reads as zeros
            } else {
                try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                    s = new State(Nd4j.zeros(value.dataType(), value.shape()), Nd4j.zeros(value.dataType(), value.shape()), 0);
                }
            }
            state.put(p.name(), s);
        }
        s.step++;
        double biasCorrection1 = 1 - Math.pow(beta1, s.step);
        double biasCorrection2Sqrt = Math.sqrt(1 - Math.pow(beta2, s.step));
        INDArray m = s.expAvg();   // maps the file again if the state was paged out
        INDArray v = s.expAvgSq();
        INDArray tmp = scratchFor(value);

        // Every op below writes into m, v, p or the scratch, so a step allocates no full-size arrays. The
        // element-wise arithmetic is that of the allocating form
        //   m.muli(β1).addi(g.mul(1-β1)); v.muli(β2).addi(g.mul(g).muli(1-β2));
        //   p.subi(m.div(sqrt(v).divi(sqrt(bc2)).addi(eps)).muli(lr/bc1))
        // operation for operation, so results are unchanged bit for bit. libnd4j's Axpy transform
        // (z = a·x + y, product and sum each rounded) stands in for a multiply and an add, saving a pass;
        // BLAS saxpy/daxpy would not do: its fused multiply-add rounds once and moves the last bit.

        // Decoupled weight decay acts on the weights before the Adam step, as in torch.optim.AdamW.
        if (weightDecay != 0 && lr != 0) value.muli(1 - lr * weightDecay);

        m.muli(beta1);
        axpy(1 - beta1, grad, m);                    // m = β1·m + (1-β1)·g

        grad.mul(grad, tmp);                         // tmp = g²
        v.muli(beta2);
        axpy(1 - beta2, tmp, v);                     // v = β2·v + (1-β2)·g²

        // denom = sqrt(v)/sqrt(1-β2^t) + eps; update = (lr/(1-β1^t)) · m/denom — same order of ops as PyTorch.
        Nd4j.getExecutioner().exec(new Sqrt(v, tmp)); // tmp = sqrt(v)
        tmp.divi(biasCorrection2Sqrt).addi(eps);     // tmp = denom
        tmp.rdivi(m);                                // tmp = m/denom
        axpy(-(lr / biasCorrection1), tmp, value);   // p -= (lr/bc1)·m/denom
    }

    /** {@code y += a·x} in place, via libnd4j's element-wise Axpy transform. */
    private static void axpy(double a, INDArray x, INDArray y) {
        Nd4j.getExecutioner().exec(new Axpy(x, y, y, a));
    }

    /**
     * A scratch array of {@code like}'s shape: a 'c'-order view of the first {@code like.length()} entries
     * of this optimizer's scratch buffer for that data type. The buffer is allocated (outside any
     * workspace) at the size of the largest trainable parameter of that type, and grown if a larger one
     * is unfrozen later, so steps reuse it instead of allocating temporaries.
     */
    private INDArray scratchFor(INDArray like) {
        DataType type = like.dataType();
        long n = like.length();
        INDArray buffer = scratch.get(type);
        if (buffer == null || buffer.length() < n) {
            long size = n;
            for (Parameter q : paramsByName.values()) {
                if (q.trainable() && q.value().dataType() == type) size = Math.max(size, q.value().length());
            }
            scratch.remove(type); // drop the old buffer before allocating its replacement
            try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                buffer = Nd4j.createUninitialized(type, size);
            }
            scratch.put(type, buffer);
        }
        long[] shape = like.shape();
        // Offset 0 and 'c' strides over the shared buffer: contiguous, so ND4J's ops never copy it.
        return Nd4j.create(buffer.data(), shape, Nd4j.getStrides(shape, 'c'), 0, 'c', type);
    }

    /** Zeroes the gradient buffers of all parameters in the groups. */
    public void zeroGrad() {
        for (ParamGroup g : groups) for (Parameter p : g.params()) p.zeroGrad();
    }

    /**
     * A copy of the optimizer state: {@code <param>.exp_avg}, {@code <param>.exp_avg_sq} and
     * {@code <param>.step} (an INT64 scalar) for every parameter that has state, and {@link #STEP_KEY}
     * (an INT64 scalar) for the optimizer's step count. Moments have the parameter's shape and data type.
     */
    public Map<String, INDArray> exportState() {
        ensureOpen();
        Map<String, INDArray> out = new LinkedHashMap<>();
        out.put(STEP_KEY, Nd4j.scalar(DataType.INT64, stepCount));
        for (Map.Entry<String, State> e : state.entrySet()) {
            State s = e.getValue();
            out.put(e.getKey() + EXP_AVG_SUFFIX, s.expAvg().dup());
            out.put(e.getKey() + EXP_AVG_SQ_SUFFIX, s.expAvgSq().dup());
            out.put(e.getKey() + PARAM_STEP_SUFFIX, Nd4j.scalar(DataType.INT64, s.step));
        }
        return out;
    }

    /**
     * Replaces the optimizer state with a copy of {@code saved} (as written by {@link #exportState()},
     * possibly with moments averaged across workers). Parameters without saved moments start fresh; a
     * missing {@code <param>.step} falls back to the saved optimizer step count. Moments are cast to the
     * parameter's data type.
     *
     * @throws IllegalArgumentException for keys naming unknown parameters, shape mismatches, or a moment
     *                                  without its partner
     */
    public void importState(Map<String, INDArray> saved) {
        ensureOpen();
        INDArray savedStep = saved.get(STEP_KEY);
        if (savedStep == null) throw new IllegalArgumentException("optimizer state has no '" + STEP_KEY + "' entry");
        long optimizerStep = Math.round(savedStep.getDouble(0));

        Map<String, INDArray[]> moments = new HashMap<>();
        Map<String, Long> paramSteps = new HashMap<>();
        for (Map.Entry<String, INDArray> e : saved.entrySet()) {
            String key = e.getKey();
            if (key.equals(STEP_KEY)) continue;
            if (key.endsWith(EXP_AVG_SQ_SUFFIX)) {
                moments.computeIfAbsent(paramNameOf(key, EXP_AVG_SQ_SUFFIX), k -> new INDArray[2])[1] = e.getValue();
            } else if (key.endsWith(EXP_AVG_SUFFIX)) {
                moments.computeIfAbsent(paramNameOf(key, EXP_AVG_SUFFIX), k -> new INDArray[2])[0] = e.getValue();
            } else if (key.endsWith(PARAM_STEP_SUFFIX)) {
                paramSteps.put(paramNameOf(key, PARAM_STEP_SUFFIX), Math.round(e.getValue().getDouble(0)));
            } else {
                throw new IllegalArgumentException("unexpected optimizer state key '" + key + "'");
            }
        }

        // Validate everything before touching the live state, so a bad map leaves the optimizer unchanged.
        Map<String, INDArray[]> validated = new LinkedHashMap<>();
        for (Map.Entry<String, INDArray[]> e : moments.entrySet()) {
            String name = e.getKey();
            Parameter p = paramsByName.get(name);
            INDArray[] m = e.getValue();
            if (m[0] == null || m[1] == null) {
                throw new IllegalArgumentException("optimizer state for " + name + " has only one of "
                        + EXP_AVG_SUFFIX + " / " + EXP_AVG_SQ_SUFFIX);
            }
            validated.put(name, new INDArray[]{restoredMoment(p, m[0]), restoredMoment(p, m[1])});
        }
        for (String name : paramSteps.keySet()) {
            if (!moments.containsKey(name)) throw new IllegalArgumentException("optimizer state has a step but no moments for " + name);
        }
        Map<String, State> restored = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, INDArray[]> e : validated.entrySet()) {
                String name = e.getKey();
                long step = paramSteps.getOrDefault(name, optimizerStep);
                INDArray[] m = e.getValue();
                if (store == null) {
                    restored.put(name, new State(m[0].dup(), m[1].dup(), step));
                } else {
                    Parameter p = paramsByName.get(name);
                    State s = new State(store.allocate(name, p.value().dataType(), p.value().shape()), step);
                    restored.put(name, s);
                    s.expAvg().assign(m[0]);
                    s.expAvgSq().assign(m[1]);
                }
            }
        } catch (RuntimeException e) {
            for (State s : restored.values()) if (s.slot != null) store.release(s.slot);
            throw e;
        }
        for (State s : state.values()) if (s.slot != null) store.release(s.slot);
        state.clear();
        state.putAll(restored);
        stepCount = optimizerStep;
    }

    private String paramNameOf(String key, String suffix) {
        String name = key.substring(0, key.length() - suffix.length());
        if (!paramsByName.containsKey(name)) {
            throw new IllegalArgumentException("optimizer state key '" + key + "' names no parameter of this optimizer");
        }
        return name;
    }

    private static INDArray restoredMoment(Parameter p, INDArray saved) {
        // A flat vector of the right length is accepted too, for transports that flatten tensors.
        boolean sameShape = Arrays.equals(saved.shape(), p.value().shape());
        boolean flatOfSameLength = saved.rank() == 1 && saved.length() == p.value().length();
        if (!sameShape && !flatOfSameLength) {
            throw new IllegalArgumentException("optimizer state for " + p.name() + ": shape " + Arrays.toString(saved.shape())
                    + " does not match parameter shape " + Arrays.toString(p.value().shape()));
        }
        // Not yet a copy: importState copies it into the optimizer's own storage.
        return saved.castTo(p.value().dataType()).reshape(p.value().shape());
    }

    /**
     * Bytes held by the moment buffers (step counts are negligible). For {@link StateStorage#MAPPED} state these
     * are the bytes mapped from files while the state is in use (how many are resident is up to the OS).
     */
    public long stateBytes() {
        long bytes = 0;
        for (State s : state.values()) bytes += s.bytes;
        return bytes;
    }

    /**
     * Moves {@link StateStorage#MAPPED} moments out of the process now: writes their dirty pages to the files
     * ({@code msync}) and unmaps them, so they no longer count in the process's resident set and what is left of
     * them in the page cache is clean, which the kernel drops first under pressure. The next {@link #step},
     * {@link #exportState()} or {@link #importState} maps them again and faults in what it touches. Costs a
     * write of the dirty moments to disk; worth it before a known memory spike. A no-op for MEMORY state.
     *
     * @return the bytes unmapped
     */
    public long pageOutState() {
        ensureOpen();
        return store == null ? 0 : store.unmapAll(true);
    }

    /**
     * Drops all optimizer state; for {@link StateStorage#MAPPED}, unmaps and deletes the moment files and their
     * directory. The optimizer cannot be used afterwards. Idempotent.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        state.clear();
        scratch.clear();
        if (store != null) store.close();
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("this optimizer was closed");
    }

    /**
     * Bytes held by the update's reusable scratch buffers: one per data type of the trainable parameters,
     * each the size of the largest such parameter. Not part of {@link #stateBytes()} (nothing in it
     * survives a step), but resident once the first step has run.
     */
    public long scratchBytes() {
        long bytes = 0;
        for (INDArray b : scratch.values()) bytes += b.length() * b.dataType().width();
        return bytes;
    }

    /** Names of the parameters that currently have optimizer state, in allocation order. */
    public List<String> parametersWithState() {
        return Collections.unmodifiableList(new ArrayList<>(state.keySet()));
    }
}
