package io.sparklora.data;

import java.io.Serializable;
import java.util.List;

/**
 * One document of a corpus, before tokenization: plain text, or a prompt/response pair whose prompt is
 * left out of the loss.
 *
 * @param text the document text; null for a prompt/response pair
 * @param prompt the prompt of a pair, else null
 * @param response the response of a pair, else null
 * @param label index into the manifest's labels, or -1 for an unlabelled document
 * @param where {@code uri:line} of the document's first line, for error messages
 * @param system a pair's system message when it is rendered through a chat template, else null
 */
public record Document(String text, String prompt, String response, int label, String where, String system) implements Serializable {

    public Document {
        if ((text == null) == (prompt == null || response == null)) {
            throw new IllegalArgumentException(where + ": a document is either text or a prompt/response pair");
        }
        if (label >= 0 && text == null) throw new IllegalArgumentException(where + ": a prompt/response pair cannot have a label");
    }

    public static Document text(String text, int label, String where) {
        return new Document(text, null, null, label, where, null);
    }

    public static Document promptResponse(String prompt, String response, String where) {
        return new Document(null, prompt, response, -1, where, null);
    }

    /** This pair with a system message (used only when the pair is rendered through a chat template). */
    public Document withSystem(String systemMessage) {
        return new Document(text, prompt, response, label, where, systemMessage);
    }

    public boolean isPromptResponse() {
        return text == null;
    }

    public boolean labelled() {
        return label >= 0;
    }

    /**
     * The text the model is trained on, as one string (for learning a tokenizer): a labelled document
     * becomes {@code text + labelPrompt + " " + label}; a pair its prompt followed by its response.
     */
    public String trainingText(List<String> labels, String labelPrompt) {
        if (isPromptResponse()) return prompt + response;
        return labelled() ? text + labelPrompt + " " + labels.get(label) : text;
    }
}
