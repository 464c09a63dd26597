package io.sparklora.adapters.adalora;

import io.sparklora.adapters.TrainingHooks;
import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA in the one training step, one process or Spark:
 * <ul>
 *   <li>{@link #regularize}: the orthogonality penalty of PEFT, w·mean over the 2L matrices of ‖AAᵀ − I‖_F and
 *       ‖BᵀB − I‖_F (the paper writes the squares; PEFT, whose behaviour this follows, the norms), and its gradient.</li>
 *   <li>{@link #afterStep} (PEFT's {@code update_and_allocate} after the optimizer step, gradients still in place):
 *       importance, then the budget's allocation at its steps; from T − tfinal on, the final masks, re-applied after
 *       every step.</li>
 * </ul>
 * On Spark the decision is the driver's. Under {@code sync: gradients} the driver takes every step on the reduced
 * gradients, so it runs exactly what one process runs; the tasks receive the masks with the round. Under parameter
 * sync each task smooths the importance over its K local steps from the state it received and sends it back; the
 * driver averages it (weighted as the parameters), allocates at the round boundary for the steps the round covered,
 * and broadcasts masks and importance with the next round. Every task applies the driver's masks; the trainer checks
 * that their digests agree.
 */
final class AdaLoraHooks implements TrainingHooks {
    static final String MASK = "adalora.mask.";
    static final String IPT = "adalora.ipt.";
    static final String UNC = "adalora.unc.";
    static final String FINAL = "adalora.final";

    private enum Mode { ONE_PROCESS, DRIVER_STEPS, DRIVER_AVERAGES, TASK }

    private final List<AdaLoraAdapter> layers;
    final RankAllocator allocator;
    private final double orthWeight;
    private final long configuredTotal;
    private Mode mode = Mode.ONE_PROCESS;
    private boolean finalized;          // the final masks are decided (from T − tfinal on)
    private boolean carriesImportance;  // a task that received importance sends it back
    private int stepsPerRound = 1;
    private long roundFirstStep;
    private int lastBudget;

    AdaLoraHooks(List<AdaLoraAdapter> layers, RankAllocator allocator, double orthWeight, long configuredTotal) {
        this.layers = layers;
        this.allocator = allocator;
        this.orthWeight = orthWeight;
        this.configuredTotal = configuredTotal;
        this.lastBudget = allocator.initialBudget();
    }

    @Override
    public void plan(long totalSteps) {
        allocator.setTotalStep(configuredTotal > 0 ? configuredTotal : totalSteps);
    }

    @Override
    public void onDriver(boolean driverSteps, int stepsPerRound) {
        mode = driverSteps ? Mode.DRIVER_STEPS : Mode.DRIVER_AVERAGES;
        this.stepsPerRound = Math.max(1, stepsPerRound);
    }

    @Override
    public void beforeRound(int round, long firstStep) { roundFirstStep = firstStep; }

    /** PEFT's update_and_allocate at step {@code step}. */
    @Override
    public void afterStep(long step) {
        requirePlanned();
        if (mode == Mode.TASK) {
            if (step < allocator.finalStep()) allocator.updateImportance();
            if (finalized) layers.forEach(AdaLoraAdapter::zeroPruned);
            return;
        }
        decide(step, step, true);
    }

    /**
     * The allocation for the steps [from, to] (one step in one process; a round's steps on the driver under parameter
     * sync, where the importance was smoothed by the tasks).
     */
    private void decide(long from, long to, boolean updateImportance) {
        long fin = allocator.finalStep();
        if (to < fin) {
            if (updateImportance) allocator.updateImportance();
            boolean allocate = false;
            for (long s = from; s <= to; s++) allocate |= allocator.budget(s).allocate();
            RankAllocator.Budget b = allocator.budget(to);
            lastBudget = b.budget();
            if (allocate) allocator.allocate(b.budget());
        } else if (!finalized) {
            lastBudget = allocator.targetBudget();
            allocator.allocate(lastBudget);
            allocator.resetImportance();
            finalized = true;
        } else {
            layers.forEach(AdaLoraAdapter::zeroPruned);
        }
    }

    private void requirePlanned() {
        if (allocator.totalStep() <= 0) throw new IllegalStateException("adalora: the run's total steps are unknown (plan was not called)");
    }

    @Override
    public void loadReducedStatistics(Map<String, INDArray> mean) {
        loadImportance(mean);
        long last = roundFirstStep + stepsPerRound - 1;
        decide(roundFirstStep, last, false);
    }

    @Override
    public Map<String, INDArray> roundStatistics() {
        return mode == Mode.TASK && allocator.hasImportance() ? importance() : Map.of();
    }

    /** The masks, whether they are final, and (under parameter sync) the smoothed importance the tasks continue from. */
    @Override
    public Map<String, INDArray> roundState() {
        Map<String, INDArray> m = masks();
        boolean withImportance = mode == Mode.DRIVER_AVERAGES || (mode == Mode.TASK && carriesImportance);
        if (withImportance) m.putAll(importance());
        return m;
    }

    @Override
    public void loadRoundState(Map<String, INDArray> state) {
        mode = Mode.TASK;
        loadMasks(state);
        carriesImportance = state.keySet().stream().anyMatch(k -> k.startsWith(IPT));
        allocator.resetImportance();
        loadImportance(state);
    }

    @Override
    public Map<String, INDArray> checkpointState() {
        Map<String, INDArray> m = masks();
        m.putAll(importance());
        return m;
    }

    @Override
    public void loadCheckpointState(Map<String, INDArray> state) {
        loadMasks(state);
        allocator.resetImportance();
        loadImportance(state);
    }

    @Override
    public Map<String, Double> metrics() {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("adalora_budget", (double) lastBudget);
        m.put("adalora_ranks_in_use", (double) layers.stream().mapToInt(AdaLoraAdapter::rank).sum());
        return m;
    }

    private Map<String, INDArray> masks() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (AdaLoraAdapter l : layers) {
            boolean[] k = l.mask();
            float[] f = new float[k.length];
            for (int i = 0; i < k.length; i++) f[i] = k[i] ? 1f : 0f;
            m.put(MASK + l.module(), Nd4j.createFromArray(f));
        }
        m.put(FINAL, Nd4j.createFromArray(finalized ? 1f : 0f));
        return m;
    }

    /** Sets the masks without touching E (values come with the adapter; pruned ones may be regrowing between allocations). */
    private void loadMasks(Map<String, INDArray> state) {
        for (AdaLoraAdapter l : layers) {
            INDArray v = state.get(MASK + l.module());
            if (v == null) continue;
            boolean[] k = new boolean[l.initialRank()];
            for (int i = 0; i < k.length; i++) k[i] = v.getFloat(i) > 0.5f;
            l.setMask(k);
        }
        INDArray f = state.get(FINAL);
        if (f != null) finalized = f.getFloat(0) > 0.5f;
    }

    private Map<String, INDArray> importance() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        allocator.expIpt.forEach((k, v) -> m.put(IPT + k, v));
        allocator.expUnc.forEach((k, v) -> m.put(UNC + k, v));
        return m;
    }

    private void loadImportance(Map<String, INDArray> state) {
        state.forEach((k, v) -> {
            if (k.startsWith(IPT)) allocator.expIpt.put(k.substring(IPT.length()), v.dup());
            else if (k.startsWith(UNC)) allocator.expUnc.put(k.substring(UNC.length()), v.dup());
        });
    }

    /**
     * PEFT's orthogonal regularisation: R = mean over the 2L matrices of ‖AAᵀ − I‖_F (A [r, in]) and ‖BᵀB − I‖_F
     * (B [out, r]); adds w·∂R/∂θ·gradScale (∂‖M − I‖_F/∂A = 2(M − I)A/‖M − I‖_F, ∂/∂B = 2B(M − I)/‖M − I‖_F) and
     * returns w·R.
     */
    @Override
    public double regularize(double gradScale) {
        if (orthWeight == 0 || layers.isEmpty()) return 0;
        double sum = 0;
        double per = orthWeight / (2.0 * layers.size());
        for (AdaLoraAdapter l : layers) {
            sum += orthTerm(l.loraA(), true, per * gradScale);
            sum += orthTerm(l.loraB(), false, per * gradScale);
        }
        return orthWeight * sum / (2.0 * layers.size());
    }

    private static double orthTerm(Parameter p, boolean rows, double coef) {
        INDArray w = p.value();
        INDArray m = rows ? Nd4j.gemm(w, w, false, true) : Nd4j.gemm(w, w, true, false);   // AAᵀ or BᵀB, [r, r]
        INDArray eye = Nd4j.eye(m.rows()).castTo(m.dataType());
        m.subi(eye);
        double f = m.norm2Number().doubleValue();
        if (p.trainable() && f > 0) {
            INDArray g = rows ? Nd4j.gemm(m, w, false, false) : Nd4j.gemm(w, m, false, false);
            g.muli(2 * coef / f);
            p.accumulate(g);
            Tensors.release(g);
        }
        Tensors.release(m, eye);
        return f;
    }

    /** Ranks in use per adapted module, in layer order. */
    Map<String, Integer> ranks() {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (AdaLoraAdapter l : layers) m.put(l.module(), l.rank());
        return m;
    }

    int lastBudget() { return lastBudget; }
}
