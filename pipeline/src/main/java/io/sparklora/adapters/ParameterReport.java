package io.sparklora.adapters;

import java.util.Locale;

/**
 * The line users know from other toolkits: {@code trainable params: N || all params: M || trainable%: P}.
 * "all params" counts the base plus the adapter's own tensors (a base bias that trains is counted once).
 */
public record ParameterReport(long trainable, long all) {
    public double percent() { return all == 0 ? 0 : 100.0 * trainable / all; }

    @Override public String toString() {
        return String.format(Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f", trainable, all, percent());
    }
}
