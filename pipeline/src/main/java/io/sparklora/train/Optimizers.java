package io.sparklora.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** The one place an AdamW is built: over an adapter's groups (as its method defines them), or over every weight. */
public final class Optimizers {
    private Optimizers() {}

    /**
     * Where AdamW keeps its moments: in memory, or in memory-mapped files under {@code spillDir} that the operating
     * system can page out under memory pressure (the CPU analogue of QLoRA's paged optimizers; docs/paged-optimizer.md).
     */
    public record StateStorage(AdamW.StateStorage storage, Path spillDir) {
        public static final StateStorage MEMORY = new StateStorage(AdamW.StateStorage.MEMORY, null);

        /** memory, or mapped (under {@code spillDir}, default java.io.tmpdir); anything else is an error naming the setting. */
        public static StateStorage parse(String value, String spillDir, String where) {
            String v = value == null ? "memory" : value.trim().toLowerCase(Locale.ROOT);
            return switch (v) {
                case "memory" -> MEMORY;
                case "mapped" -> new StateStorage(AdamW.StateStorage.MAPPED,
                        Path.of(spillDir != null ? spillDir : System.getProperty("java.io.tmpdir")));
                default -> throw new IllegalArgumentException(where + ": unknown optimizer state storage '" + value + "'; use memory or mapped");
            };
        }
    }

    /** AdamW over the adapter's trainable tensors, grouped by its method (LoRA+ gives B its own rate). */
    public static AdamW forAdapter(AttachedAdapter adapter, TrainingOptions o) {
        return new AdamW(adapter.optimizerGroups(o.weightDecay()), o.lr());
    }

    /** AdamW over every trainable tensor in {@code params} (full fine-tuning, pretraining). */
    public static AdamW forAll(List<Parameter> params, TrainingOptions o) {
        return forAll(params, o, StateStorage.MEMORY);
    }

    /** As {@link #forAll(List, TrainingOptions)}, the moments held as {@code s} says (close the optimizer after: mapped files are deleted then). */
    public static AdamW forAll(List<Parameter> params, TrainingOptions o, StateStorage s) {
        return build(ParamGroup.byTag(params, o.weightDecay()), o, s);
    }

    /** As {@link #forAdapter(AttachedAdapter, TrainingOptions)}, the moments held as {@code s} says. */
    public static AdamW forAdapter(AttachedAdapter adapter, TrainingOptions o, StateStorage s) {
        return build(adapter.optimizerGroups(o.weightDecay()), o, s);
    }

    private static AdamW build(List<ParamGroup> groups, TrainingOptions o, StateStorage s) {
        if (s.storage() == AdamW.StateStorage.MEMORY) return new AdamW(groups, o.lr());
        return new AdamW(groups, o.lr(), AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS, s.storage(), s.spillDir());
    }
}
