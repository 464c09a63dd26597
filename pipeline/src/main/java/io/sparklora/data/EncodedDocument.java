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
    private int textEnd;

    private EncodedDocument() {
        // for Kryo
    }

    /**
     * @param tokens the document's tokens
     * @param maskedPrefix how many leading tokens are not targets (a pair's prompt); 0 = all are
     * @param label label index, or -1
     * @param labelStart index of the first label token (a labelled document ends with its label's tokens), or -1
     * @param textEnd where a labelled document's text ends and its label prompt begins, or -1
     */
    public EncodedDocument(int[] tokens, int maskedPrefix, int label, int labelStart, int textEnd) {
        if (maskedPrefix < 0 || maskedPrefix > tokens.length) throw new IllegalArgumentException("masked prefix " + maskedPrefix + " of " + tokens.length + " tokens");
        if ((label >= 0) != (labelStart >= 0) || labelStart > tokens.length) throw new IllegalArgumentException("label " + label + " starting at " + labelStart);
        if ((label >= 0) != (textEnd >= 0) || textEnd > labelStart) throw new IllegalArgumentException("text ending at " + textEnd + ", label at " + labelStart);
        this.tokens = tokens;
        this.maskedPrefix = maskedPrefix;
        this.label = label;
        this.labelStart = labelStart;
        this.textEnd = textEnd;
    }

    /** A plain document ({@code maskedPrefix} 0) or a prompt/response pair: no label. */
    public EncodedDocument(int[] tokens, int maskedPrefix) {
        this(tokens, maskedPrefix, -1, -1, -1);
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

    /** The tokens before the label (a labelled document's whole text and label prompt). */
    public int[] promptTokens() {
        if (!labelled()) throw new IllegalStateException("not a labelled document");
        return Arrays.copyOf(tokens, labelStart);
    }

    /**
     * The prompt a labelled document is trained and scored with: the START of its text, cut so that the
     * prompt has at most {@code maxTokens} tokens, followed by the whole label prompt. The start is kept
     * because that is where a document says what it is (a mail's greeting and offer, an article's lede).
     * Never empty: with no text and an empty label prompt it is {@code [fallback]}.
     *
     * @throws IllegalArgumentException when the label prompt alone is longer than {@code maxTokens}
     */
    public int[] truncatedPrompt(int maxTokens, int fallback) {
        if (!labelled()) throw new IllegalStateException("not a labelled document");
        int suffix = labelStart - textEnd;
        if (suffix > maxTokens) throw new IllegalArgumentException("the label prompt takes " + suffix + " tokens, more than the " + maxTokens + " a prompt may have");
        int keep = Math.min(textEnd, maxTokens - suffix);
        if (keep + suffix == 0) return new int[]{fallback};
        int[] p = new int[keep + suffix];
        System.arraycopy(tokens, 0, p, 0, keep);
        System.arraycopy(tokens, textEnd, p, keep, suffix);
        return p;
    }

    /** A labelled document's label tokens (those of {@code " " + label}). */
    public int[] labelTokens() {
        if (!labelled()) throw new IllegalStateException("not a labelled document");
        return Arrays.copyOfRange(tokens, labelStart, tokens.length);
    }
}
