package io.sparklora.optim;

import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class ParamGroupTest {

    private static Parameter p(String name, boolean trainable, String group) {
        return new Parameter(name, Nd4j.zeros(DataType.FLOAT, 2), trainable, group);
    }

    @Test
    void groupsTrainableParametersByTagAndSkipsFrozenOnes() {
        Parameter a0 = p("l0.lora_A", true, "lora_A");
        Parameter b0 = p("l0.lora_B", true, "lora_B");
        Parameter base = p("l0.weight", false, "base");
        Parameter a1 = p("l1.lora_A", true, "lora_A");
        Parameter bias = p("l1.bias", true, "bias");

        List<ParamGroup> groups = ParamGroup.byTag(List.of(a0, b0, base, a1, bias), 0.01, Map.of(
                "lora_B", ParamGroup.Settings.lrTimes(16),
                "bias", ParamGroup.Settings.onlyWeightDecay(0.0),
                "base", ParamGroup.Settings.fixedLr(1.0),          // no trainable member: ignored
                "absent", ParamGroup.Settings.lrTimes(2)));

        assertEquals(List.of("lora_A", "lora_B", "bias"), groups.stream().map(ParamGroup::name).toList());
        assertEquals(List.of(a0, a1), groups.get(0).params());
        assertEquals(2e-4, groups.get(0).peakLr(2e-4), 0.0);
        assertEquals(0.01, groups.get(0).weightDecay(), 0.0);
        assertEquals(16 * 2e-4, groups.get(1).peakLr(2e-4), 1e-18);
        assertEquals(0.0, groups.get(2).weightDecay(), 0.0);
    }

    @Test
    void absoluteLrWinsOverTheBaseLr() {
        ParamGroup g = ParamGroup.byTag(List.of(p("x", true, "lora_B")), 0.0,
                Map.of("lora_B", ParamGroup.Settings.fixedLr(3e-3).withWeightDecay(0.2))).get(0);
        assertEquals(3e-3, g.peakLr(1e-4), 0.0);
        assertEquals(0.2, g.weightDecay(), 0.0);
    }

    @Test
    void rejectsNegativeSettings() {
        assertThrows(IllegalArgumentException.class, () -> ParamGroup.withLrMultiplier("g", List.of(), -1, 0));
        assertThrows(IllegalArgumentException.class, () -> ParamGroup.withAbsoluteLr("g", List.of(), 1e-3, Double.NaN));
    }
}
