package io.sparklora.adapters.lorafa;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.model.Linear;
import org.nd4j.linalg.api.rng.Random;

/**
 * LoRA-FA: LoRA with a frozen random A ({@link LoraFaAdapter}). Trainable: r·out per layer (B); A, r·in
 * per layer, is frozen. PEFT stores it as a plain LoRA ({@code peft_type: LORA}); that A never trained is
 * recorded in spark-lora's sidecar file.
 *
 * <p>On Spark with {@code sync: parameters}, averaging is exact: every executor starts each round from the
 * same A and never changes it, so the mean of the executors' B·A is (mean B)·A, the mean of their ΔW.
 * With plain LoRA, averaging A and B separately is not averaging BA.
 */
public final class LoraFaMethod extends LoraMethod {
    @Override public String name() { return "lora_fa"; }

    /** A is frozen and the same on every worker: ΔW = B·A is linear in B, so plain averaging is exact. */
    @Override public boolean averagingIsExact(AdapterConfig config) { return true; }

    /** A does not train, so there is no pair to re-factorise. */
    @Override public String[] productFactors(AdapterConfig config) { return null; }

    @Override public String description() { return "LoRA-FA: LoRA with A frozen at its random init, only B trains; keeps A·x, not x, for backward"; }

    @Override
    protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
        return new LoraFaAdapter(adapterName, layer, config, rng);
    }

    @Override
    protected LoraAdapter sharedLayer(String adapterName, Linear layer, AdapterConfig config, LoraAdapter owner) {
        return new LoraFaAdapter(adapterName, layer, config, (LoraFaAdapter) owner);
    }

    @Override protected long perLayerTrainable(int in, int out, AdapterConfig c) { return (long) c.r() * out; }

    @Override protected long perLayerFrozen(int in, int out, AdapterConfig c) { return (long) c.r() * in; }
}
