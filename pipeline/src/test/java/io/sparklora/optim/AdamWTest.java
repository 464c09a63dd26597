package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.memory.enums.AllocationPolicy;
import org.nd4j.linalg.api.memory.enums.LearningPolicy;
import org.nd4j.linalg.api.memory.enums.SpillPolicy;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class AdamWTest {

    private static Parameter param(String name, double[] values, boolean trainable, String group) {
        return new Parameter(name, Nd4j.createFromArray(values).reshape(2, values.length / 2), trainable, group);
    }

    private static void setGrad(Parameter p, double[] g) {
        p.zeroGrad();
        p.accumulate(Nd4j.createFromArray(g));
    }

    /** Plain-double AdamW, written from the paper/PyTorch formulas independently of the ND4J version. */
    private static final class ReferenceAdamW {
        final double[] p, m, v;
        int t;

        ReferenceAdamW(double[] init) {
            p = init.clone();
            m = new double[init.length];
            v = new double[init.length];
        }

        void step(double[] g, double lr, double wd, double b1, double b2, double eps) {
            t++;
            for (int i = 0; i < p.length; i++) {
                p[i] -= lr * wd * p[i];
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                double mhat = m[i] / (1 - Math.pow(b1, t));
                double vhat = v[i] / (1 - Math.pow(b2, t));
                p[i] -= lr * mhat / (Math.sqrt(vhat) + eps);
            }
        }
    }

    @Test
    void matchesPlainJavaReferenceWithWeightDecayBiasCorrectionAndSchedule() {
        double[] init = {0.5, -1.25, 2.0, 0.0, -0.3, 0.75};
        double[][] grads = {
                {0.1, -0.2, 0.3, -0.4, 0.5, -0.6},
                {1.5, 0.0, -2.5, 0.01, 3.0, 0.2},
                {-0.05, 0.07, 0.0, 0.9, -1.1, 0.02},
                {0.3, 0.3, 0.3, -0.3, -0.3, -0.3},
                {2e-3, -4e-3, 1e-4, 5.0, -5.0, 0.0},
        };
        double[] factors = {0.2, 0.6, 1.0, 0.7, 0.3};
        double lr = 0.05, wd = 0.1, b1 = 0.85, b2 = 0.98, eps = 1e-6;

        Parameter p = param("w", init, true, "lora_A");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, wd)), lr, b1, b2, eps);
        ReferenceAdamW ref = new ReferenceAdamW(init);

        for (int s = 0; s < grads.length; s++) {
            setGrad(p, grads[s]);
            opt.step(factors[s]);
            ref.step(grads[s], lr * factors[s], wd, b1, b2, eps);
            assertArrayEquals(ref.p, p.value().reshape(-1).toDoubleVector(), 1e-6, "after step " + (s + 1));
        }
        assertEquals(grads.length, opt.stepCount());
        Map<String, INDArray> state = opt.exportState();
        assertArrayEquals(ref.m, state.get("w.exp_avg").reshape(-1).toDoubleVector(), 1e-12);
        assertArrayEquals(ref.v, state.get("w.exp_avg_sq").reshape(-1).toDoubleVector(), 1e-12);
        assertEquals(grads.length, state.get("w.step").getLong(0));
    }

    @Test
    void float32ParametersTrackTheDoubleReference() {
        double[] init = {0.5, -1.25, 2.0, 0.0};
        double[] g = {0.1, -0.2, 0.3, -0.4};
        Parameter p = new Parameter("w", Nd4j.createFromArray(init).castTo(DataType.FLOAT).reshape(2, 2), true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.01)), 1e-2);
        ReferenceAdamW ref = new ReferenceAdamW(init);
        for (int s = 0; s < 3; s++) {
            setGrad(p, g);
            opt.step();
            ref.step(g, 1e-2, 0.01, 0.9, 0.999, 1e-8);
        }
        assertEquals(DataType.FLOAT, p.value().dataType());
        assertArrayEquals(ref.p, p.value().reshape(-1).toDoubleVector(), 1e-6);
    }

    @Test
    void frozenParametersAreUntouchedBitForBitAndHaveNoState() {
        Parameter trainable = param("lora", new double[]{1, 2, 3, 4}, true, "lora_A");
        Parameter frozen = param("base", new double[]{0.1, -0.2, Math.PI, 1e-30}, false, "base");
        double[] before = frozen.value().dup().reshape(-1).toDoubleVector();
        frozen.accumulate(Nd4j.ones(DataType.DOUBLE, 4)); // a no-op for frozen parameters
        assertNull(frozen.grad());

        // The frozen parameter is listed in a group on purpose: the optimizer must still leave it alone.
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("all", List.of(trainable, frozen), 1.0, 0.5)), 0.1);
        for (int s = 0; s < 3; s++) {
            setGrad(trainable, new double[]{1, -1, 1, -1});
            opt.step();
        }
        assertArrayEquals(before, frozen.value().reshape(-1).toDoubleVector(), 0.0);
        assertEquals(List.of("lora"), opt.parametersWithState());
        assertFalse(opt.exportState().containsKey("base.exp_avg"));
        assertEquals(2L * 4 * Double.BYTES, opt.stateBytes());
    }

    @Test
    void stateIsAllocatedLazilyAtTheFirstStep() {
        Parameter p = param("w", new double[]{1, 2}, true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.0)), 0.1);
        assertEquals(0, opt.stateBytes());
        assertEquals(List.of(), opt.parametersWithState());
        opt.step();
        assertEquals(2L * 2 * Double.BYTES, opt.stateBytes());
    }

    @Test
    void groupWithSixteenTimesTheLrMovesSixteenTimesInTheFirstStep() {
        double[] init = {1, -2, 3, -4};
        double[] g = {0.3, -0.7, 1.1, 0.05};
        Parameter a = param("a", init, true, "lora_A");
        Parameter b = param("b", init, true, "lora_B");
        List<ParamGroup> groups = ParamGroup.byTag(List.of(a, b), 0.0,
                Map.of("lora_B", ParamGroup.Settings.lrTimes(16)));
        AdamW opt = new AdamW(groups, 1e-3);
        setGrad(a, g);
        setGrad(b, g);
        opt.step();
        double[] da = a.value().reshape(-1).toDoubleVector();
        double[] db = b.value().reshape(-1).toDoubleVector();
        for (int i = 0; i < init.length; i++) {
            double moveA = da[i] - init[i];
            double moveB = db[i] - init[i];
            // Adam's first step is lr·g/(|g|+eps), i.e. about -lr·sign(g).
            assertEquals(-1e-3 * Math.signum(g[i]), moveA, 1e-9);
            assertEquals(16.0, moveB / moveA, 1e-9);
        }
    }

    @Test
    void absoluteGroupLrIgnoresTheBaseLr() {
        Parameter p = param("w", new double[]{0, 0}, true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withAbsoluteLr("g", List.of(p), 0.5, 0.0)), 1e-3);
        setGrad(p, new double[]{1, -1});
        opt.step(0.5);
        assertArrayEquals(new double[]{-0.25, 0.25}, p.value().reshape(-1).toDoubleVector(), 1e-7);
        assertEquals(0.25, opt.lr(opt.groups().get(0), 0.5), 0.0);
    }

    @Test
    void accumulatedMicroBatchGradientsAreWhatTheStepUses() {
        Parameter accumulated = param("w", new double[]{1, 1}, true, "x");
        Parameter single = param("w", new double[]{1, 1}, true, "x");
        AdamW optAcc = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(accumulated), 1.0, 0.0)), 0.1);
        AdamW optOne = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(single), 1.0, 0.0)), 0.1);
        // Two micro-batches of loss/2 each give the same gradient as one full batch.
        accumulated.accumulate(Nd4j.createFromArray(0.1, -0.4));
        accumulated.accumulate(Nd4j.createFromArray(0.3, 0.2));
        single.accumulate(Nd4j.createFromArray(0.4, -0.2));
        optAcc.step();
        optOne.step();
        assertArrayEquals(single.value().reshape(-1).toDoubleVector(), accumulated.value().reshape(-1).toDoubleVector(), 1e-15);

        optAcc.zeroGrad();
        assertArrayEquals(new double[]{0, 0}, accumulated.grad().reshape(-1).toDoubleVector(), 0.0);
    }

    @Test
    void exportImportRoundTripGivesAnIdenticalNextStep() {
        double[] init = {0.5, -1.5, 2.5, 0.25};
        Parameter p1 = param("w", init, true, "x");
        AdamW opt1 = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p1), 1.0, 0.05)), 0.01);
        double[][] grads = {{0.1, 0.2, -0.3, 0.4}, {-1, 0.5, 0.25, 2}, {0.01, 0.02, 0.03, -0.04}};
        for (double[] g : grads) {
            setGrad(p1, g);
            opt1.step(0.9);
        }
        Map<String, INDArray> saved = opt1.exportState();

        Parameter p2 = new Parameter("w", p1.value().dup(), true, "x");
        AdamW opt2 = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p2), 1.0, 0.05)), 0.01);
        opt2.importState(saved);
        assertEquals(opt1.stepCount(), opt2.stepCount());
        assertEquals(opt1.stateBytes(), opt2.stateBytes());

        // The export is a copy: scribbling on it must not change either optimizer.
        saved.get("w.exp_avg").assign(123);

        double[] next = {0.7, -0.1, 0.0, 0.3};
        setGrad(p1, next);
        setGrad(p2, next);
        opt1.step(0.8);
        opt2.step(0.8);
        assertArrayEquals(p1.value().reshape(-1).toDoubleVector(), p2.value().reshape(-1).toDoubleVector(), 0.0);
    }

    @Test
    void importCastsMomentsToTheParameterTypeAndAcceptsFlatVectors() {
        Parameter p = new Parameter("w", Nd4j.zeros(DataType.FLOAT, 2, 2), true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.0)), 0.01);
        opt.importState(Map.of(
                AdamW.STEP_KEY, Nd4j.scalar(DataType.INT64, 7L),
                "w.exp_avg", Nd4j.createFromArray(0.1, 0.2, 0.3, 0.4),
                "w.exp_avg_sq", Nd4j.createFromArray(0.01, 0.02, 0.03, 0.04)));
        Map<String, INDArray> state = opt.exportState();
        assertEquals(7, opt.stepCount());
        assertEquals(7, state.get("w.step").getLong(0)); // falls back to the optimizer step count
        assertEquals(DataType.FLOAT, state.get("w.exp_avg").dataType());
        assertArrayEquals(new long[]{2, 2}, state.get("w.exp_avg_sq").shape());
    }

    @Test
    void importRejectsUnknownParametersAndMismatchedShapes() {
        Parameter p = param("w", new double[]{1, 2, 3, 4}, true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.0)), 0.01);
        INDArray zeros = Nd4j.zeros(DataType.DOUBLE, 2, 2);
        INDArray step = Nd4j.scalar(DataType.INT64, 1L);
        assertThrows(IllegalArgumentException.class, () -> opt.importState(
                Map.of(AdamW.STEP_KEY, step, "other.exp_avg", zeros, "other.exp_avg_sq", zeros)));
        assertThrows(IllegalArgumentException.class, () -> opt.importState(
                Map.of(AdamW.STEP_KEY, step, "w.exp_avg", Nd4j.zeros(DataType.DOUBLE, 4, 1), "w.exp_avg_sq", zeros)));
        assertThrows(IllegalArgumentException.class, () -> opt.importState(
                Map.of(AdamW.STEP_KEY, step, "w.exp_avg", zeros)));
        assertThrows(IllegalArgumentException.class, () -> opt.importState(Map.of("w.exp_avg", zeros, "w.exp_avg_sq", zeros)));
    }

    @Test
    void rejectsTheSameParameterInTwoGroups() {
        Parameter p = param("w", new double[]{1, 2}, true, "x");
        assertThrows(IllegalArgumentException.class, () -> new AdamW(List.of(
                ParamGroup.withLrMultiplier("a", List.of(p), 1.0, 0.0),
                ParamGroup.withLrMultiplier("b", List.of(p), 1.0, 0.0)), 0.01));
    }

    /** A parameter of its own: the same values, group settings and gradients, in an optimizer of its own. */
    private static double[] stepAlone(INDArray init, INDArray[] grads, double lrMultiplier, double wd) {
        Parameter q = new Parameter("q", init.dup(), true, "x");
        AdamW alone = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(q), lrMultiplier, wd)), 0.02);
        for (INDArray g : grads) {
            q.zeroGrad();
            q.accumulate(g);
            alone.step(0.7);
        }
        return q.value().dup('c').reshape(-1).toDoubleVector();
    }

    @Test
    void parametersOfDifferentSizesAndTypesSharingTheScratchStepAsIfAlone() {
        Nd4j.getRandom().setSeed(11);
        INDArray[] inits = {
                Nd4j.randn(DataType.FLOAT, 6, 5), Nd4j.randn(DataType.DOUBLE, 4),
                Nd4j.randn(DataType.FLOAT, 2, 3), Nd4j.randn(DataType.DOUBLE, 3, 3).dup('f'),
                Nd4j.randn(DataType.FLOAT, 2, 2, 2), Nd4j.scalar(DataType.DOUBLE, 0.5)};
        int steps = 3;
        INDArray[][] grads = new INDArray[inits.length][steps];
        List<Parameter> params = new java.util.ArrayList<>();
        for (int i = 0; i < inits.length; i++) {
            for (int s = 0; s < steps; s++) grads[i][s] = Nd4j.randn(inits[i].dataType(), inits[i].shape());
            params.add(new Parameter("p" + i, inits[i].dup(), true, "x"));
        }
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("a", params.subList(0, 3), 1.0, 0.1),
                ParamGroup.withLrMultiplier("b", params.subList(3, 6), 4.0, 0.0)), 0.02);
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < inits.length; i++) {
                params.get(i).zeroGrad();
                params.get(i).accumulate(grads[i][s]);
            }
            opt.step(0.7);
        }
        for (int i = 0; i < inits.length; i++) {
            assertArrayEquals(stepAlone(inits[i], grads[i], i < 3 ? 1.0 : 4.0, i < 3 ? 0.1 : 0.0),
                    params.get(i).value().dup('c').reshape(-1).toDoubleVector(), 0.0, "p" + i);
        }
        // One scratch buffer per data type, the size of the largest parameter of that type.
        assertEquals(30L * Float.BYTES + 9L * Double.BYTES, opt.scratchBytes());
    }

    @Test
    void unfreezingALargerParameterGrowsTheScratch() {
        Parameter small = param("small", new double[]{1, 2, 3, 4}, true, "x");
        Parameter large = new Parameter("large", Nd4j.arange(24).castTo(DataType.DOUBLE).divi(12).subi(1).reshape(4, 6), false, "x");
        INDArray largeInit = large.value().dup();
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(small, large), 1.0, 0.0)), 0.02);
        setGrad(small, new double[]{0.1, -0.2, 0.3, -0.4});
        opt.step();
        assertEquals(4L * Double.BYTES, opt.scratchBytes());

        large.setTrainable(true);
        INDArray g = Nd4j.arange(24).castTo(DataType.DOUBLE).rsubi(12).divi(24).reshape(4, 6);
        large.accumulate(g);
        setGrad(small, new double[]{0.1, -0.2, 0.3, -0.4});
        opt.step(0.7);
        assertEquals(24L * Double.BYTES, opt.scratchBytes());
        assertArrayEquals(stepAlone(largeInit, new INDArray[]{g}, 1.0, 0.0), large.value().reshape(-1).toDoubleVector(), 0.0);
    }

    @Test
    void aStepAllocatesNoParameterSizedTemporaries() {
        Parameter p = new Parameter("w", Nd4j.rand(DataType.FLOAT, 256, 256), true, "x");
        AdamW opt = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.01)), 1e-3);
        p.accumulate(Nd4j.randn(DataType.FLOAT, 256, 256));
        opt.step(); // allocates the moments and the scratch
        // Whatever the step allocates while a workspace is active is counted by that workspace.
        WorkspaceConfiguration conf = WorkspaceConfiguration.builder().initialSize(0)
                .policyAllocation(AllocationPolicy.OVERALLOCATE).policyLearning(LearningPolicy.NONE)
                .policySpill(SpillPolicy.EXTERNAL).build();
        try (MemoryWorkspace ws = Nd4j.getWorkspaceManager().getAndActivateWorkspace(conf, "adamw-allocation-probe")) {
            opt.step();
            assertTrue(ws.getThisCycleAllocations() < 256L * 256 * Float.BYTES,
                    "a step allocated " + ws.getThisCycleAllocations() + " bytes");
        }
    }

    @Test
    void stateAndScratchAllocatedDuringAWorkspaceOutliveIt() {
        double[] init = {0.5, -1.5, 2.5, 0.25};
        double[][] grads = {{0.1, 0.2, -0.3, 0.4}, {-1, 0.5, 0.25, 2}};
        Parameter inWs = param("w", init, true, "x");
        Parameter ref = param("w", init, true, "x");
        AdamW optInWs = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(inWs), 1.0, 0.05)), 0.01);
        AdamW optRef = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(ref), 1.0, 0.05)), 0.01);
        WorkspaceConfiguration conf = WorkspaceConfiguration.builder().initialSize(1 << 20)
                .policyAllocation(AllocationPolicy.STRICT).policyLearning(LearningPolicy.NONE).build();
        setGrad(inWs, grads[0]);
        setGrad(ref, grads[0]);
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().getAndActivateWorkspace(conf, "adamw-scope-probe")) {
            optInWs.step(); // the first step allocates moments and scratch while the workspace is active
        }
        optRef.step();
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().getAndActivateWorkspace(conf, "adamw-scope-probe")) {
            Nd4j.valueArrayOf(new long[]{1000}, Double.NaN, DataType.DOUBLE); // reuses the workspace's memory
        }
        setGrad(inWs, grads[1]);
        setGrad(ref, grads[1]);
        optInWs.step();
        optRef.step();
        assertArrayEquals(ref.value().reshape(-1).toDoubleVector(), inWs.value().reshape(-1).toDoubleVector(), 0.0);
    }
}
