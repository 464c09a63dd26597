package io.sparklora.data;

import io.sparklora.tokenize.ChatTemplate;
import io.sparklora.tokenize.TextTokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Tokenizes documents in batches (one native call per batch, which the tokenizers library spreads over
 * its threads) and lays out what is trained on:
 * <ul>
 *   <li>plain text: its tokens, all targets;</li>
 *   <li>labelled text: tokens of {@code text}, then of {@code labelPrompt}, then the label's tokens
 *       ({@link #labelIds}, the tokens of {@code " " + label}), all targets under the language-model
 *       objective. The three parts are encoded separately so that the text can be cut without cutting the
 *       label prompt, and the label tokens are exactly the ones an evaluator scores after the prompt;</li>
 *   <li>prompt/response: tokens of the prompt (not targets) followed by tokens of the response (targets).
 *       With a {@link ChatTemplate}, the pair is first rendered through it: the prompt side is the conversation
 *       up to the assistant's turn with the generation prompt, the response side the assistant's turn as the
 *       template writes it (content and end-of-turn marker), so the loss covers exactly the assistant's tokens.
 *       Rendered text is encoded without the tokenizer's own special tokens (the template writes them).</li>
 * </ul>
 * The end-of-text token is added by {@link BlockPacker}.
 */
public final class DocumentEncoder {
    private final TextTokenizer tokenizer;
    private final int[] labelPromptIds;
    private final int[][] labelIds;
    private final ChatTemplate chatTemplate;   // null: pairs are encoded as written
    private final String systemPrompt;         // with a template: the system turn of pairs that bring none, or null

    public DocumentEncoder(TextTokenizer tokenizer, List<String> labels, String labelPrompt) {
        this(tokenizer, labels, labelPrompt, null);
    }

    public DocumentEncoder(TextTokenizer tokenizer, List<String> labels, String labelPrompt, ChatTemplate chatTemplate) {
        this(tokenizer, labels, labelPrompt, chatTemplate, null);
    }

    /** A dataset's encoder: its labels and label prompt, and its chat template and system prompt (both may be null). */
    public static DocumentEncoder of(TextTokenizer tokenizer, DatasetManifest dataset, ChatTemplate chatTemplate) {
        return new DocumentEncoder(tokenizer, dataset.labels(), dataset.labelPrompt(), chatTemplate, dataset.systemPrompt());
    }

    public DocumentEncoder(TextTokenizer tokenizer, List<String> labels, String labelPrompt, ChatTemplate chatTemplate,
                           String systemPrompt) {
        this.tokenizer = tokenizer;
        this.chatTemplate = chatTemplate;
        this.systemPrompt = systemPrompt;
        this.labelPromptIds = labels.isEmpty() || labelPrompt == null ? new int[0] : tokenizer.encode(labelPrompt);
        this.labelIds = labelIds(tokenizer, labels);
    }

    /** Tokens of {@code " " + label} for each label, in label order. */
    public static int[][] labelIds(TextTokenizer tokenizer, List<String> labels) {
        int[][] ids = new int[labels.size()][];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tokenizer.encode(" " + labels.get(i));
            if (ids[i].length == 0) throw new IllegalArgumentException("label '" + labels.get(i) + "' encodes to no tokens");
        }
        return ids;
    }

    public int[][] labelIds() {
        return labelIds;
    }

    /** Tokens of the label prompt (empty for an unlabelled dataset). */
    public int[] labelPromptIds() {
        return labelPromptIds.clone();
    }

    /** Encodes {@code docs} in one batch, in order. */
    public List<EncodedDocument> encode(List<Document> docs) {
        List<String> texts = new ArrayList<>(docs.size() + 8);
        for (Document d : docs) {
            if (d.isPromptResponse() && chatTemplate != null) {
                ChatTemplate.Turn turn;
                try {
                    turn = chatTemplate.renderPair(d.system() != null ? d.system() : systemPrompt, d.prompt(), d.response());
                } catch (ChatTemplate.ChatTemplateException e) {
                    throw new ChatTemplate.ChatTemplateException(d.where() + ": " + e.getMessage(), e);
                }
                texts.add(turn.prompt());
                texts.add(turn.response());
            } else if (d.isPromptResponse()) {
                texts.add(d.prompt());
                texts.add(d.response());
            } else {
                texts.add(d.text());
            }
        }
        int[][] ids = tokenizer.encodeBatch(texts);
        List<EncodedDocument> out = new ArrayList<>(docs.size());
        int k = 0;
        for (Document d : docs) {
            if (d.isPromptResponse()) {
                int[] p = ids[k++], r = ids[k++];
                out.add(new EncodedDocument(concat(p, r), p.length));
            } else if (d.labelled()) {
                if (d.label() >= labelIds.length) throw new IllegalArgumentException(d.where() + ": label index " + d.label() + " out of range");
                int[] text = ids[k++];
                int[] p = concat(text, labelPromptIds);
                out.add(new EncodedDocument(concat(p, labelIds[d.label()]), 0, d.label(), p.length, text.length));
            } else {
                out.add(new EncodedDocument(ids[k++], 0));
            }
        }
        return out;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
