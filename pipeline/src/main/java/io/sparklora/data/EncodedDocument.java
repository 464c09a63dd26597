package io.sparklora.data;

import java.io.Serializable;
import java.util.Arrays;

/**
 * A tokenized document, ready for {@link BlockPacker}: its tokens (without the end-of-text token, which
 * the packer adds) and which of them are targets.
 *
 * <p>A plain class, not a record, because it crosses Spark's shuffle through Kryo, which cannot create records.
 */
public final class EncodedDocument implements Serializable {
    private static final long serialVersionUID = 1L;

    private int[] tokens;
    private int maskedPrefix;
    private int label;
    private int labelStart;

    private EncodedDocument() {
        // for Kryo
    }

    /**
     * @param tokens the document's tokens
     * @param maskedPrefix how many leading tokens are not targets (a pair's prompt); 0 = all are
     * @param label label index, or -1
     * @param labelStart index of the first label token (a labelled document ends with its label's tokens), or -1
     */
    public EncodedDocument(int[] tokens, int maskedPrefix, int label, int labelStart) {
        if (maskedPrefix < 0 || maskedPrefix > tokens.length) throw new IllegalArgumentException("masked prefix " + maskedPrefix + " of " + tokens.length + " tokens");
        if ((label >= 0) != (labelStart >= 0) || labelStart > tokens.length) throw new IllegalArgumentException("label " + label + " starting at " + labelStart);
        this.tokens = tokens;
        this.maskedPrefix = maskedPrefix;
        this.label = label;
        this.labelStart = labelStart;
    }

    public int[] tokens() { return tokens; }
    public int maskedPrefix() { return maskedPrefix; }
    public int label() { return label; }
    public boolean labelled() { return label >= 0; }

    /** Which tokens are targets, or null when all are (the packer's convention). */
    public boolean[] lossMask() {
        if (maskedPrefix == 0) return null;
        boolean[] m = new boolean[tokens.length];
        Arrays.fill(m, maskedPrefix, tokens.length, true);
        return m;
    }

    /** The tokens before the label (a labelled document's text and label prompt). */
    public int[] promptTokens() {
        if (!labelled()) throw new IllegalStateException("not a labelled document");
        return Arrays.copyOf(tokens, labelStart);
    }
}
