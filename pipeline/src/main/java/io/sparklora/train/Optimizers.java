package io.sparklora.train;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;

import java.util.List;

/** The one place an AdamW is built: over an adapter's groups (as its method defines them), or over every weight. */
public final class Optimizers {
    private Optimizers() {}

    /** AdamW over the adapter's trainable tensors, grouped by its method (LoRA+ gives B its own rate). */
    public static AdamW forAdapter(AttachedAdapter adapter, TrainingOptions o) {
        return new AdamW(adapter.optimizerGroups(o.weightDecay()), o.lr());
    }

    /** AdamW over every trainable tensor in {@code params} (full fine-tuning, pretraining). */
    public static AdamW forAll(List<Parameter> params, TrainingOptions o) {
        return new AdamW(ParamGroup.byTag(params, o.weightDecay()), o.lr());
    }
}
