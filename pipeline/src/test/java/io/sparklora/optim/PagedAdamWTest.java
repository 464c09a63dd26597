package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.memory.enums.AllocationPolicy;
import org.nd4j.linalg.api.memory.enums.LearningPolicy;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** {@link AdamW.StateStorage#MAPPED}: the same updates as in-memory state, bit for bit, from files that come and go. */
class PagedAdamWTest {

    @TempDir
    Path tmp;

    /** Initial values of a few parameters of different shapes, orders and types. */
    private static INDArray[] inits() {
        Nd4j.getRandom().setSeed(20240611);
        return new INDArray[]{
                Nd4j.randn(DataType.FLOAT, 33, 17),
                Nd4j.randn(DataType.DOUBLE, 40),
                Nd4j.randn(DataType.FLOAT, 3, 4, 5).dup('f'),
                Nd4j.randn(DataType.FLOAT, 1500),     // more than a page per moment: the second moment is at 8192
                Nd4j.randn(DataType.DOUBLE, 2, 3),    // frozen at first, unfrozen at step 3
        };
    }

    private static INDArray[][] grads(INDArray[] inits, int steps) {
        Nd4j.getRandom().setSeed(77);
        INDArray[][] g = new INDArray[steps][inits.length];
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < inits.length; i++) g[s][i] = Nd4j.randn(inits[i].dataType(), inits[i].shape()).muli(0.1 * (s + 1));
        }
        return g;
    }

    private static List<Parameter> params(INDArray[] inits) {
        List<Parameter> ps = new ArrayList<>();
        for (int i = 0; i < inits.length; i++) ps.add(new Parameter("layer." + i + ".weight", inits[i].dup(inits[i].ordering()), i != 4, "g" + (i % 2)));
        return ps;
    }

    private static List<ParamGroup> groups(List<Parameter> ps) {
        return List.of(ParamGroup.withLrMultiplier("a", List.of(ps.get(0), ps.get(2), ps.get(4)), 1.0, 0.05),
                ParamGroup.withLrMultiplier("b", List.of(ps.get(1), ps.get(3)), 4.0, 0.0));
    }

    private static void step(AdamW opt, List<Parameter> ps, INDArray[] g, int s) {
        if (s == 3) ps.get(4).setTrainable(true);
        for (int i = 0; i < ps.size(); i++) {
            ps.get(i).zeroGrad();
            ps.get(i).accumulate(g[i]);
        }
        opt.step(0.5 + 0.1 * s);
    }

    private static void assertBitwiseEqual(INDArray expected, INDArray actual, String what) {
        assertEquals(expected.dataType(), actual.dataType(), what);
        assertArrayEquals(expected.shape(), actual.shape(), what);
        INDArray e = expected.dup('c').reshape(-1), a = actual.dup('c').reshape(-1);
        if (expected.dataType() == DataType.DOUBLE || expected.dataType() == DataType.INT64) {
            // assertArrayEquals without a delta compares doubleToLongBits / floatToIntBits: exact.
            assertArrayEquals(e.toDoubleVector(), a.toDoubleVector(), what);
        } else {
            assertArrayEquals(e.toFloatVector(), a.toFloatVector(), what);
        }
    }

    private static void assertSameState(AdamW expected, AdamW actual) {
        Map<String, INDArray> e = expected.exportState(), a = actual.exportState();
        assertEquals(e.keySet(), a.keySet());
        for (String k : e.keySet()) assertBitwiseEqual(e.get(k), a.get(k), k);
    }

    /** The moments as they are in a moment file: exp_avg at 0, exp_avg_sq at {@link AdamW#secondMomentOffset}. */
    private static INDArray[] readMomentFile(Path file, DataType type, long[] shape) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.nativeOrder());
        long n = 1;
        for (long d : shape) n *= d;
        long momentBytes = n * type.width();
        INDArray[] out = new INDArray[2];
        long[] offsets = {0, AdamW.secondMomentOffset(momentBytes)};
        for (int k = 0; k < 2; k++) {
            int off = (int) offsets[k];
            if (type == DataType.FLOAT) {
                float[] f = new float[(int) n];
                for (int i = 0; i < n; i++) f[i] = bytes.getFloat(off + 4 * i);
                out[k] = Nd4j.createFromArray(f).reshape('c', shape);
            } else {
                double[] d = new double[(int) n];
                for (int i = 0; i < n; i++) d[i] = bytes.getDouble(off + 8 * i);
                out[k] = Nd4j.createFromArray(d).reshape('c', shape);
            }
        }
        return out;
    }

    @Test
    void mappedStateStepsBitForBitLikeMemoryStateAndLivesInFilesUntilClosed() throws IOException {
        INDArray[] inits = inits();
        int steps = 7;
        INDArray[][] g = grads(inits, steps);
        List<Parameter> mem = params(inits), mapped = params(inits);
        AdamW optMem = new AdamW(groups(mem), 0.01, 0.9, 0.999, 1e-8);
        AdamW optMap = new AdamW(groups(mapped), 0.01, 0.9, 0.999, 1e-8, AdamW.StateStorage.MAPPED, tmp.resolve("spill"));
        assertEquals(AdamW.StateStorage.MAPPED, optMap.stateStorage());
        Path dir = optMap.stateDirectory().orElseThrow();
        assertTrue(Files.isDirectory(dir));
        assertEquals(tmp.resolve("spill"), dir.getParent());
        assertTrue(dir.getFileName().toString().startsWith("adamw-state-"));

        for (int s = 0; s < steps; s++) {
            step(optMem, mem, g[s], s);
            step(optMap, mapped, g[s], s);
            for (int i = 0; i < inits.length; i++) {
                assertBitwiseEqual(mem.get(i).value(), mapped.get(i).value(), "param " + i + " after step " + (s + 1));
            }
            assertSameState(optMem, optMap);
            // Files exist for exactly the parameters with state, in the optimizer's own directory.
            Map<String, Path> files = optMap.stateFiles();
            assertEquals(optMap.parametersWithState(), List.copyOf(files.keySet()));
            for (Path f : files.values()) {
                assertTrue(Files.isRegularFile(f), f.toString());
                assertEquals(dir, f.getParent());
            }
        }
        assertEquals(optMem.stateBytes(), optMap.stateBytes());
        assertEquals(optMem.parametersWithState(), optMap.parametersWithState());
        assertEquals(5, optMap.stateFiles().size());

        // The files hold the moments' bytes: the arrays are the mapped memory, not copies of it.
        Map<String, INDArray> exported = optMap.exportState();
        for (Parameter p : mapped) {
            Path f = optMap.stateFiles().get(p.name());
            long momentBytes = p.size() * p.value().dataType().width();
            assertEquals(AdamW.secondMomentOffset(momentBytes) + momentBytes, Files.size(f));
            INDArray[] onDisk = readMomentFile(f, p.value().dataType(), p.value().shape());
            assertBitwiseEqual(exported.get(p.name() + AdamW.EXP_AVG_SUFFIX), onDisk[0], p.name() + " exp_avg on disk");
            assertBitwiseEqual(exported.get(p.name() + AdamW.EXP_AVG_SQ_SUFFIX), onDisk[1], p.name() + " exp_avg_sq on disk");
        }
        assertEquals(8192, AdamW.secondMomentOffset(1500 * 4));

        List<Path> files = List.copyOf(optMap.stateFiles().values());
        optMap.close();
        for (Path f : files) assertFalse(Files.exists(f), f + " survived close");
        assertFalse(Files.exists(dir), "state directory survived close");
        assertTrue(Files.isDirectory(tmp.resolve("spill")), "the caller's directory stays");
        assertEquals(Map.of(), optMap.stateFiles());
        assertThrows(IllegalStateException.class, optMap::step);
        assertThrows(IllegalStateException.class, optMap::exportState);
        optMap.close(); // idempotent
        optMem.close();
    }

    @Test
    void pagingOutAndBackInBetweenStepsChangesNothing() {
        INDArray[] inits = inits();
        int steps = 5;
        INDArray[][] g = grads(inits, steps);
        List<Parameter> mem = params(inits), mapped = params(inits);
        try (AdamW optMem = new AdamW(groups(mem), 0.02);
             AdamW optMap = new AdamW(groups(mapped), 0.02, AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS,
                     AdamW.StateStorage.MAPPED, tmp)) {
            assertEquals(0, optMem.pageOutState());
            for (int s = 0; s < steps; s++) {
                step(optMem, mem, g[s], s);
                step(optMap, mapped, g[s], s);
                assertEquals(optMap.stateBytes(), optMap.pageOutState(), "everything mapped is unmapped");
                assertEquals(0, optMap.pageOutState(), "nothing left mapped");
                for (Path f : optMap.stateFiles().values()) assertTrue(Files.isRegularFile(f));
                if (s % 2 == 0) assertSameState(optMem, optMap); // an export maps the files again
            }
            for (int i = 0; i < inits.length; i++) assertBitwiseEqual(mem.get(i).value(), mapped.get(i).value(), "param " + i);
            assertSameState(optMem, optMap);
        }
    }

    @Test
    void exportImportRoundTripsThroughMappedState() throws IOException {
        INDArray[] inits = inits();
        int steps = 6;
        INDArray[][] g = grads(inits, steps);
        List<Parameter> src = params(inits);
        AdamW source = new AdamW(groups(src), 0.01, 0.9, 0.99, 1e-7, AdamW.StateStorage.MAPPED, tmp);
        for (int s = 0; s < 4; s++) step(source, src, g[s], s);
        Map<String, INDArray> saved = source.exportState();

        // Into a fresh MAPPED optimizer, and into a MEMORY one, over copies of the same parameter values.
        List<Parameter> intoMapped = new ArrayList<>(), intoMemory = new ArrayList<>();
        for (Parameter p : src) {
            intoMapped.add(new Parameter(p.name(), p.value().dup(p.value().ordering()), p.trainable(), p.group()));
            intoMemory.add(new Parameter(p.name(), p.value().dup(p.value().ordering()), p.trainable(), p.group()));
        }
        AdamW mapped = new AdamW(groups(intoMapped), 0.01, 0.9, 0.99, 1e-7, AdamW.StateStorage.MAPPED, tmp);
        AdamW memory = new AdamW(groups(intoMemory), 0.01, 0.9, 0.99, 1e-7);
        mapped.importState(saved);
        memory.importState(saved);
        assertEquals(source.stepCount(), mapped.stepCount());
        assertSameState(source, mapped);
        assertSameState(source, memory);
        // The imported moments are in the new optimizer's files.
        for (Parameter p : intoMapped) {
            INDArray[] onDisk = readMomentFile(mapped.stateFiles().get(p.name()), p.value().dataType(), p.value().shape());
            assertBitwiseEqual(saved.get(p.name() + AdamW.EXP_AVG_SUFFIX), onDisk[0], p.name());
            assertBitwiseEqual(saved.get(p.name() + AdamW.EXP_AVG_SQ_SUFFIX), onDisk[1], p.name());
        }
        // The export is a copy and the import copied it: scribbling on it changes no optimizer.
        saved.get(src.get(0).name() + AdamW.EXP_AVG_SUFFIX).assign(123);
        saved.get(src.get(1).name() + AdamW.EXP_AVG_SQ_SUFFIX).assign(-1);

        for (int s = 4; s < steps; s++) {
            step(source, src, g[s], s);
            step(mapped, intoMapped, g[s], s);
            step(memory, intoMemory, g[s], s);
        }
        for (int i = 0; i < inits.length; i++) {
            assertBitwiseEqual(src.get(i).value(), intoMapped.get(i).value(), "param " + i);
            assertBitwiseEqual(src.get(i).value(), intoMemory.get(i).value(), "param " + i);
        }
        assertSameState(source, mapped);
        assertSameState(source, memory);

        // Importing again replaces the files: the old ones are gone, one file per parameter remains.
        List<Path> before = List.copyOf(mapped.stateFiles().values());
        mapped.importState(memory.exportState());
        for (Path f : before) assertFalse(Files.exists(f), f + " should have been replaced");
        try (Stream<Path> listing = Files.list(mapped.stateDirectory().orElseThrow())) {
            assertEquals(inits.length, listing.count());
        }
        assertSameState(memory, mapped);
        // A rejected import leaves the state and its files as they were.
        List<Path> current = List.copyOf(mapped.stateFiles().values());
        assertThrows(IllegalArgumentException.class, () -> mapped.importState(Map.of(AdamW.STEP_KEY, Nd4j.scalar(DataType.INT64, 1L),
                src.get(0).name() + AdamW.EXP_AVG_SUFFIX, Nd4j.zeros(DataType.FLOAT, 2, 2),
                src.get(0).name() + AdamW.EXP_AVG_SQ_SUFFIX, Nd4j.zeros(DataType.FLOAT, 2, 2))));
        assertEquals(current, List.copyOf(mapped.stateFiles().values()));
        for (Path f : current) assertTrue(Files.exists(f));
        assertSameState(memory, mapped);

        source.close();
        mapped.close();
        memory.close();
        try (Stream<Path> listing = Files.list(tmp)) {
            assertEquals(0, listing.count(), "every optimizer removed its directory");
        }
    }

    @Test
    void mappedStateFirstAllocatedInsideAWorkspaceOutlivesIt() {
        Parameter inWs = new Parameter("w", Nd4j.createFromArray(0.5f, -1.5f, 2.5f, 0.25f), true, "x");
        Parameter ref = new Parameter("w", Nd4j.createFromArray(0.5f, -1.5f, 2.5f, 0.25f), true, "x");
        try (AdamW optInWs = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(inWs), 1.0, 0.05)), 0.01,
                0.9, 0.999, 1e-8, AdamW.StateStorage.MAPPED, tmp);
             AdamW optRef = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(ref), 1.0, 0.05)), 0.01)) {
            WorkspaceConfiguration conf = WorkspaceConfiguration.builder().initialSize(1 << 20)
                    .policyAllocation(AllocationPolicy.STRICT).policyLearning(LearningPolicy.NONE).build();
            inWs.accumulate(Nd4j.createFromArray(0.1f, 0.2f, -0.3f, 0.4f));
            ref.accumulate(Nd4j.createFromArray(0.1f, 0.2f, -0.3f, 0.4f));
            try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().getAndActivateWorkspace(conf, "paged-adamw-scope-probe")) {
                optInWs.step();
            }
            optRef.step();
            try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().getAndActivateWorkspace(conf, "paged-adamw-scope-probe")) {
                Nd4j.valueArrayOf(new long[]{1000}, Float.NaN, DataType.FLOAT);
            }
            optInWs.step();
            optRef.step();
            assertArrayEquals(ref.value().toFloatVector(), inWs.value().toFloatVector());
            assertSameState(optRef, optInWs);
        }
    }

    @Test
    void halfPrecisionMomentsAreMappedToo() {
        for (DataType type : new DataType[]{DataType.HALF, DataType.BFLOAT16}) {
            Nd4j.getRandom().setSeed(5);
            INDArray init = Nd4j.randn(DataType.FLOAT, 8, 9).castTo(type);
            Parameter mem = new Parameter("w", init.dup(), true, "x"), mapped = new Parameter("w", init.dup(), true, "x");
            // eps 1e-3: PyTorch's 1e-8 is zero in half precision.
            try (AdamW optMem = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(mem), 1.0, 0.01)), 0.01, 0.9, 0.999, 1e-3);
                 AdamW optMap = new AdamW(List.of(ParamGroup.withLrMultiplier("g", List.of(mapped), 1.0, 0.01)), 0.01,
                         0.9, 0.999, 1e-3, AdamW.StateStorage.MAPPED, tmp)) {
                for (int s = 0; s < 3; s++) {
                    INDArray g = Nd4j.randn(DataType.FLOAT, 8, 9).castTo(type);
                    mem.zeroGrad();
                    mem.accumulate(g);
                    mapped.zeroGrad();
                    mapped.accumulate(g);
                    optMem.step();
                    optMap.step();
                }
                assertEquals(2L * 72 * 2, optMap.stateBytes(), type.toString());
                assertBitwiseEqual(mem.value(), mapped.value(), type.toString());
                for (float f : mapped.value().castTo(DataType.FLOAT).reshape(-1).toFloatVector()) assertTrue(Float.isFinite(f), type + ": " + f);
            }
        }
    }

    @Test
    void storageAndDirectoryMustAgree() {
        Parameter p = new Parameter("w", Nd4j.zeros(DataType.FLOAT, 2), true, "x");
        List<ParamGroup> gs = List.of(ParamGroup.withLrMultiplier("g", List.of(p), 1.0, 0.0));
        assertThrows(IllegalArgumentException.class, () -> new AdamW(gs, 0.1, 0.9, 0.999, 1e-8, AdamW.StateStorage.MAPPED, null));
        assertThrows(IllegalArgumentException.class, () -> new AdamW(gs, 0.1, 0.9, 0.999, 1e-8, AdamW.StateStorage.MEMORY, tmp));
        try (AdamW memory = new AdamW(gs, 0.1)) {
            assertEquals(AdamW.StateStorage.MEMORY, memory.stateStorage());
            assertTrue(memory.stateDirectory().isEmpty());
            p.accumulate(Nd4j.ones(DataType.FLOAT, 2));
            memory.step();
            assertEquals(Map.of(), memory.stateFiles());
        }
    }
}
