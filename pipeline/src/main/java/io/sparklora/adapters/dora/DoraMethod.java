package io.sparklora.adapters.dora;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.model.Linear;
import org.nd4j.linalg.api.rng.Random;

/**
 * DoRA: weight-decomposed LoRA ({@link DoraAdapter}). Trainable: r·(in + out) + out per layer. PEFT stores it
 * as a LoRA with {@code use_dora: true} and one more tensor per layer, {@code lora_magnitude_vector} [out]
 * (saved without a {@code .weight} suffix).
 */
public final class DoraMethod extends LoraMethod {
    @Override public String name() { return "dora"; }

    @Override public String description() { return "DoRA: magnitude m and direction (W0 + s·BA)/‖W0 + s·BA‖, norm detached in backward"; }

    @Override
    protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
        return new DoraAdapter(adapterName, layer, config, rng);
    }

    @Override
    protected LoraAdapter sharedLayer(String adapterName, Linear layer, AdapterConfig config, LoraAdapter owner) {
        throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not dora: "
                + "each DoRA layer's magnitude belongs to its own base weight");
    }

    @Override public boolean supportsSharing() { return false; }

    /** W' = m·(W0 + s·BA)/‖W0 + s·BA‖ is not linear in B, and folding it would change the norm that m was trained against. */
    @Override public boolean foldsLinearly(AdapterConfig config) { return false; }

    @Override protected long perLayerTrainable(int in, int out, AdapterConfig c) { return (long) c.r() * (in + out) + out; }

    @Override protected boolean usesDora() { return true; }
}
