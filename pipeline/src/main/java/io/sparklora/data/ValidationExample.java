package io.sparklora.data;

/**
 * A held-out labelled document for classification accuracy: the tokens of its text and label prompt
 * (left-truncated so that the prompt and the longest label fit the sequence length) and its label index.
 */
public record ValidationExample(int[] promptIds, int label) {}
