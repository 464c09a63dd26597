package io.sparklora.adapters.loraplus;

import io.sparklora.adapters.lora.LoraMethod;

import java.util.Map;

/**
 * LoRA+ (Hayou et al., 2024): plain LoRA whose B matrices (and 1-D adapter tensors) learn λ times faster
 * than A ({@link LoraPlusGroups}). The adapter it writes is a plain PEFT LoRA: λ is an optimizer setting
 * ({@code train.loraplus_lr_ratio}, or {@code loraplus_lr_ratio} in a spec), 16 unless set, as the
 * paper recommends for most tasks.
 */
public final class LoraPlusMethod extends LoraMethod {
    @Override public String name() { return "loraplus"; }

    @Override public String description() { return "LoRA+: LoRA with B trained at lr·loraplus_lr_ratio (default 16)"; }

    @Override public Map<String, String> optionDefaults() { return Map.of(LORAPLUS_LR_RATIO, "16"); }
}
