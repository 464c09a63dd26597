package io.sparklora.quant;

import java.io.Serializable;
import java.util.Locale;

/**
 * How the frozen base is held in memory: full precision ({@link #NONE}), or NF4 (QLoRA), with or without double
 * quantization of the absmax. It travels with the base reference to the executors, each of which caches the base
 * under its content hash and this.
 *
 * @param nf4         whether the linear weights are held in NF4
 * @param doubleQuant whether the NF4 absmax are double-quantized (ignored without nf4)
 */
public record BaseQuantization(boolean nf4, boolean doubleQuant) implements Serializable {
    public static final BaseQuantization NONE = new BaseQuantization(false, false);
    public static final BaseQuantization NF4 = new BaseQuantization(true, false);
    public static final BaseQuantization NF4_DOUBLE_QUANT = new BaseQuantization(true, true);

    public BaseQuantization {
        if (!nf4) doubleQuant = false;
    }

    /**
     * Parses a configuration value: {@code none}, or {@code nf4} (with {@code doubleQuant} deciding the absmax).
     * Anything else is an error that names the setting and the accepted values.
     */
    public static BaseQuantization parse(String value, boolean doubleQuant, String where) {
        String v = value == null ? "none" : value.trim().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "none", "" -> NONE;
            case "nf4" -> doubleQuant ? NF4_DOUBLE_QUANT : NF4;
            default -> throw new IllegalArgumentException(where + ": unknown quantization '" + value
                    + "'; use none or nf4 (4-bit NormalFloat, QLoRA's base; fp4 and int8 are not supported)");
        };
    }

    /** none, nf4, or nf4+dq: a cache key and what reports print. */
    public String label() { return !nf4 ? "none" : doubleQuant ? "nf4+dq" : "nf4"; }

    @Override public String toString() { return label(); }
}
