package io.sparklora.data;

import java.util.Locale;

/**
 * What a labelled dataset is trained on. A plain corpus (no labels) is always language-modelled.
 *
 * <ul>
 *   <li>{@link #LABEL}: text → label. Each labelled document becomes one block of its own: the start of its
 *       text (cut to fit), the label prompt, then the label's tokens; only the label's tokens are targets. This
 *       is what the evaluator scores (the label with the highest log-likelihood after the same prompt), so
 *       training and evaluation see identical sequences.</li>
 *   <li>{@link #LANGUAGE_MODEL}: every token of {@code text + label_prompt + " " + label} is a target and
 *       documents are packed back to back, as for a plain corpus (domain adaptation).</li>
 *   <li>{@link #AUTO} (the default): {@code LABEL} for a labelled dataset, {@code LANGUAGE_MODEL} otherwise.</li>
 * </ul>
 */
public enum TrainingObjective {
    AUTO, LABEL, LANGUAGE_MODEL;

    /** The objective a dataset with (or without) labels is tokenized for. */
    public TrainingObjective resolve(boolean labelled) {
        if (!labelled) return LANGUAGE_MODEL;
        return this == AUTO ? LABEL : this;
    }

    /** The config spelling: {@code auto}, {@code label}, {@code language_model}. */
    public String configName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses a config value, naming the accepted ones when it is wrong. */
    public static TrainingObjective parse(String value, String where) {
        for (TrainingObjective o : values()) if (o.configName().equals(value)) return o;
        throw new IllegalArgumentException(where + ": objective '" + value + "' is not one of auto, label, language_model");
    }
}
