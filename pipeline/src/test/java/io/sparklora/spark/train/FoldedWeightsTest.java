package io.sparklora.spark.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.AdapterTensors;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The executor's cache of stacked weights: a task that finds an earlier round's merge merges only the new folds, and
 * ends bit-identical to a task that merges every fold itself; the cached arrays are never written.
 */
class FoldedWeightsTest {
    static final AdapterConfig LORA = AdapterConfig.lora(2, 4, List.of("c_attn", "c_fc"));

    static AttachedAdapter task() {
        TransformerLM m = TransformerLM.randomInit(TrainStageTest.CFG, 7);
        m.parameters().values().forEach(Parameter::markShared);       // as BaseModelCache hands it out
        return AttachedAdapter.attach(m, "default", LORA, 3);
    }

    static List<AdapterTensors> folds(int n) {
        List<AdapterTensors> out = new ArrayList<>();
        AttachedAdapter a = task();
        var rng = io.sparklora.model.Seeds.rng(9);
        for (int i = 0; i < n; i++) {
            AdapterTensors f = new AdapterTensors();
            for (Parameter p : a.trainableParameters()) f.put(p.name(), Nd4j.randn(rng, p.value().shape()).castTo(p.value().dataType()));
            out.add(f);
        }
        return out;
    }

    static float[] flat(INDArray a) { return a.dup('c').data().asFloat(); }

    @Test
    void aTaskMergesOnlyTheNewFoldsAndEndsAsOneThatMergesAll() {
        List<AdapterTensors> all = folds(4);
        String run = java.util.UUID.randomUUID().toString();
        AttachedAdapter first = task();
        FoldedWeights.prepare(first, run, all.subList(0, 2));
        assertEquals(2, FoldedWeights.cached(run));
        Map<String, float[]> cachedBefore = new java.util.TreeMap<>();
        first.foldedWeights().forEach((m, w) -> cachedBefore.put(m, flat(w)));

        AttachedAdapter next = task(), scratch = task();
        FoldedWeights.prepare(next, run, all);
        assertEquals(4, next.folded());
        assertEquals(4, FoldedWeights.cached(run));
        all.forEach(f -> scratch.fold(f.toArrays()));
        for (String m : cachedBefore.keySet()) {
            assertArrayEquals(flat(scratch.model().linears().get(m).baseWeight().dense()), flat(next.model().linears().get(m).baseWeight().dense()), m);
            assertArrayEquals(cachedBefore.get(m), flat(first.model().linears().get(m).baseWeight().dense()), "the cached merge is never written: " + m);
            assertFalse(java.util.Arrays.equals(cachedBefore.get(m), flat(next.model().linears().get(m).baseWeight().dense())), "two more folds changed it");
        }

        // a task of the same round reads the cache without a copy; a straggler of an earlier round merges from scratch
        AttachedAdapter same = task(), late = task();
        FoldedWeights.prepare(same, run, all);
        for (String m : cachedBefore.keySet()) {
            assertSame(next.model().linears().get(m).baseWeight().dense(), same.model().linears().get(m).baseWeight().dense(), m);
        }
        FoldedWeights.prepare(late, run, all.subList(0, 1));
        assertEquals(1, late.folded());
        assertEquals(4, FoldedWeights.cached(run), "an older round does not replace a newer merge");
    }
}
