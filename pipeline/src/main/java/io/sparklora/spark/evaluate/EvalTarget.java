package io.sparklora.spark.evaluate;

import io.sparklora.checkpoint.BaseModelRef;

import java.io.Serializable;

/**
 * One model to evaluate: a base checkpoint alone, with the adapter applied on the fly, or with the
 * adapter merged into (private copies of) its weights.
 */
public record EvalTarget(String name, BaseModelRef model, Mode mode) implements Serializable {
    public enum Mode { BASE, ADAPTED, MERGED }
}
