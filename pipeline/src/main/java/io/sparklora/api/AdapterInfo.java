package io.sparklora.api;

import io.sparklora.adapters.AdapterConfig;

import java.util.Map;

/**
 * What a saved adapter directory (PEFT layout) holds.
 *
 * @param config              method, rank, alpha, targets and the method's settings (from adapter_config.json
 *                            and spark_lora.json)
 * @param baseModel           the base model the adapter was trained on ({@code base_model_name_or_path})
 * @param trainableParameters number of values in the adapter's tensors (LoRA: r·(in + out) per targeted layer;
 *                            layers sharing one adapter, as LoRA-drop saves them, are counted once per layer)
 * @param tensors             tensor name (PEFT naming, e.g. {@code base_model.model.transformer.h.0.attn.c_attn.lora_A.weight})
 *                            → shape, in file order
 */
public record AdapterInfo(AdapterConfig config, String baseModel, long trainableParameters, Map<String, long[]> tensors) {
    @Override
    public String toString() {
        return config.method() + " r=" + config.r() + " alpha=" + config.alpha() + " targets=" + config.targetModules()
                + ": " + tensors.size() + " tensors, " + String.format(java.util.Locale.ROOT, "%,d", trainableParameters) + " values";
    }
}
