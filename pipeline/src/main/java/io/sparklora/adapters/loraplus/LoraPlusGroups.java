package io.sparklora.adapters.loraplus;

import io.sparklora.model.Parameter;
import io.sparklora.optim.ParamGroup;

import java.util.ArrayList;
import java.util.List;

/**
 * LoRA+'s optimizer groups (Hayou et al., 2024), with the partition of PEFT's {@code create_loraplus_optimizer}:
 * every {@code lora_B} tensor and every 1-D trainable tensor (DoRA's magnitude, biases) trains at lr·λ; the
 * rest (A) at lr. As in PEFT, the 1-D tensors that are biases take no weight decay.
 */
public final class LoraPlusGroups {
    private LoraPlusGroups() {}

    public static List<ParamGroup> groups(List<Parameter> trainable, double ratio, double weightDecay) {
        List<Parameter> a = new ArrayList<>(), b = new ArrayList<>(), bNoDecay = new ArrayList<>();
        for (Parameter p : trainable) {
            if (!p.trainable()) continue;
            boolean oneD = p.value().rank() == 1;
            if (p.group().equals("bias")) bNoDecay.add(p);
            else if (p.group().equals("lora_B") || oneD) b.add(p);
            else a.add(p);
        }
        List<ParamGroup> g = new ArrayList<>();
        if (!a.isEmpty()) g.add(ParamGroup.withLrMultiplier("loraplus_A", a, 1.0, weightDecay));
        if (!b.isEmpty()) g.add(ParamGroup.withLrMultiplier("loraplus_B", b, ratio, weightDecay));
        if (!bNoDecay.isEmpty()) g.add(ParamGroup.withLrMultiplier("loraplus_B_no_decay", bNoDecay, ratio, 0.0));
        return g;
    }
}
