package io.sparklora.adapters;

import java.util.List;
import java.util.Locale;

/**
 * Settings of one adapter, shared by the LoRA family. Field meanings follow Hugging Face PEFT's
 * {@code LoraConfig} so that {@code adapter_config.json} files map one to one.
 *
 * @param method        "lora" (later: the other methods of the family)
 * @param r             rank
 * @param alpha         scaling numerator: scale = alpha/r, or alpha/√r with {@code rslora}
 * @param dropout       dropout on the adapter's input during training
 * @param targetModules module names matched as PEFT does (exact name or dotted suffix), or one
 *                      regular expression prefixed with {@code re:} matched against the full name
 * @param rslora        rank-stabilised scaling
 * @param bias          "none", "all" (every base bias trains) or "lora_only" (biases of adapted layers train)
 * @param init          "kaiming" (PEFT's default: A ~ U(±1/√in)), "gaussian" (A ~ N(0, 1/r)); B starts at zero
 */
public record AdapterConfig(String method, int r, double alpha, double dropout, List<String> targetModules,
                            boolean rslora, String bias, String init) implements java.io.Serializable {

    public static final List<String> BIAS_MODES = List.of("none", "all", "lora_only");
    public static final List<String> INIT_MODES = List.of("kaiming", "gaussian");

    public AdapterConfig {
        method = method.toLowerCase(Locale.ROOT);
        if (r <= 0) throw new IllegalArgumentException("adapter rank r must be positive, got " + r);
        if (dropout < 0 || dropout >= 1) throw new IllegalArgumentException("adapter dropout must be in [0, 1), got " + dropout);
        if (!BIAS_MODES.contains(bias)) throw new IllegalArgumentException("bias must be one of " + BIAS_MODES + ", got '" + bias + "'");
        if (!INIT_MODES.contains(init)) throw new IllegalArgumentException("init must be one of " + INIT_MODES + ", got '" + init + "'");
        targetModules = List.copyOf(targetModules);
    }

    public static AdapterConfig lora(int r, double alpha, List<String> targets) {
        return new AdapterConfig("lora", r, alpha, 0.0, targets, false, "none", "kaiming");
    }

    public double scale() { return rslora ? alpha / Math.sqrt(r) : alpha / r; }

    public AdapterConfig withTargets(List<String> targets) {
        return new AdapterConfig(method, r, alpha, dropout, targets, rslora, bias, init);
    }

    public AdapterConfig withDropout(double p) {
        return new AdapterConfig(method, r, alpha, p, targetModules, rslora, bias, init);
    }

    public AdapterConfig withRslora(boolean on) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, on, bias, init);
    }

    public AdapterConfig withBias(String mode) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, mode, init);
    }

    public AdapterConfig withInit(String mode) {
        return new AdapterConfig(method, r, alpha, dropout, targetModules, rslora, bias, mode);
    }
}
