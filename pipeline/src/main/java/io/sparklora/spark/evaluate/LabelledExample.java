package io.sparklora.spark.evaluate;

import java.io.Serializable;

/** A validation document for label accuracy: its prompt tokens (text + label prompt) and its label's index. */
public record LabelledExample(int[] prompt, int label) implements Serializable {}
