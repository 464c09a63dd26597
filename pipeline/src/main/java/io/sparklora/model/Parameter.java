package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A named tensor of the model or of an adapter, with its gradient buffer.
 *
 * <p>{@code name} is the Hugging Face name for base tensors (e.g. {@code transformer.h.0.attn.c_attn.weight})
 * and the PEFT name for adapter tensors. {@code group} tags the parameter for optimizer parameter groups
 * (e.g. {@code lora_A}, {@code lora_B}, {@code base}), which is how LoRA+ gives B its own learning rate.
 *
 * <p>Frozen parameters never get a gradient buffer, so they cost no optimizer memory and cannot be
 * changed by a step.
 *
 * <p>A parameter whose array is shared with other models (the per-JVM base cache of the Spark stages marks
 * its tensors {@link #markShared() shared}) is copy-on-write: making it trainable, {@link #set assigning}
 * to it or asking for a {@link #mutableValue()} first gives it a private copy, so nothing a method trains
 * or merges ever writes into the shared array.
 */
public final class Parameter {
    private final String name;
    private INDArray value;
    private INDArray grad;
    private boolean trainable;
    private final String group;
    private boolean shared;

    public Parameter(String name, INDArray value, boolean trainable, String group) {
        this.name = name;
        this.value = value;
        this.trainable = trainable;
        this.group = group;
    }

    public String name() { return name; }
    public INDArray value() { return value; }
    public String group() { return group; }
    public boolean trainable() { return trainable; }
    public long size() { return value.length(); }

    /** Marks the array as shared with other models: the first write through this parameter copies it. */
    public void markShared() { this.shared = true; }

    /**
     * Points this parameter at {@code array}, which other models share (same shape): marked shared, so the first
     * write through this parameter copies it, and {@code array} itself is never written.
     */
    public void useShared(INDArray array) {
        if (!java.util.Arrays.equals(array.shape(), value.shape())) {
            throw new IllegalArgumentException("parameter " + name + ": shape " + java.util.Arrays.toString(array.shape())
                    + " does not match " + java.util.Arrays.toString(value.shape()));
        }
        value = array;
        shared = true;
    }

    /** The array, made private first if it is shared: callers may write into it (merges, optimizer steps). */
    public INDArray mutableValue() {
        if (shared) {
            value = value.dup();
            shared = false;
        }
        return value;
    }

    /** Replaces the tensor (same shape), e.g. when loading a checkpoint or an averaged adapter. */
    public void set(INDArray newValue) {
        if (!java.util.Arrays.equals(newValue.shape(), value.shape())) {
            throw new IllegalArgumentException("parameter " + name + ": shape " + java.util.Arrays.toString(newValue.shape())
                    + " does not match " + java.util.Arrays.toString(value.shape()));
        }
        mutableValue().assign(newValue);
    }

    public void setTrainable(boolean trainable) {
        if (trainable) mutableValue();     // an optimizer step writes in place: never into a shared array
        this.trainable = trainable;
        if (!trainable) grad = null;
    }

    /** The gradient buffer, allocated as zeros on first use; null for frozen parameters. */
    public INDArray grad() {
        if (!trainable) return null;
        if (grad == null) grad = Nd4j.zeros(value.dataType(), value.shape());
        return grad;
    }

    /** Adds {@code g} into the gradient buffer if this parameter is trainable; a no-op otherwise. */
    public void accumulate(INDArray g) {
        if (!trainable) return;
        grad().addi(g.reshape(value.shape()));
    }

    public void zeroGrad() {
        if (grad != null) grad.assign(0);
    }

    @Override public String toString() {
        return name + java.util.Arrays.toString(value.shape()) + (trainable ? " trainable" : " frozen");
    }
}
