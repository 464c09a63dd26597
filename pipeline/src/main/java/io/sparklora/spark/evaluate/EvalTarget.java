package io.sparklora.spark.evaluate;

import io.sparklora.checkpoint.BaseModelRef;

import java.io.Serializable;

/**
 * One model to evaluate: a base checkpoint alone, with the adapter applied on the fly, or with the
 * adapter merged into (private copies of) its weights; {@code rank} &gt; 0 puts an adapter trained for several
 * ranks at that rank first (DyLoRA, {@link io.sparklora.adapters.AdapterMethod#useRank}).
 */
public record EvalTarget(String name, BaseModelRef model, Mode mode, int rank) implements Serializable {
    public enum Mode { BASE, ADAPTED, MERGED }

    public EvalTarget(String name, BaseModelRef model, Mode mode) { this(name, model, mode, 0); }
}
