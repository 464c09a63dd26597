package io.sparklora.adapters;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.ParamGroup;

import java.util.List;
import java.util.Map;

/**
 * One method of the LoRA family, the unit of extension (as PEFT's {@code tuners/<method>/}): everything
 * that differs between methods is here, and the model, the training loop, the Spark stages and the runner
 * know nothing of any single method. A method lives in its own package under {@code adapters/} and is
 * registered by name in {@link AdapterMethods}.
 *
 * <p>What a method provides:
 * <ul>
 *   <li>its settings: {@link #optionDefaults()} (keys beyond the shared r, alpha, dropout, targets, rslora,
 *       bias, init) and {@link #validate};</li>
 *   <li>its per-layer computation with a hand-written backward, and how it attaches to a model, including
 *       state shared across layers: {@link #create};</li>
 *   <li>its parameter count from {@code config.json} alone: {@link #trainableCount}, {@link #frozenCount};</li>
 *   <li>its optimizer groups: {@link #optimizerGroups};</li>
 *   <li>its training hooks and per-round state: {@link #hooks};</li>
 *   <li>its PEFT layout: {@link #peftType()}, {@link #writePeftConfig}, {@link #readPeftConfig}, and the tensor
 *       names each layer's {@link Adapter#stateDict()} and the shared tensors use;</li>
 *   <li>its merge and unmerge: {@link Adapter#merge}, {@link Adapter#unmerge}.</li>
 * </ul>
 */
public interface AdapterMethod {

    /** The adapted layers and any tensors shared by all of them (VeRA's projections), by their PEFT key under {@code base_model.}. */
    record Layers(Map<String, Adapter> layers, Map<String, Parameter> shared) {
        public Layers {
            layers = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(layers));
            shared = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(shared));
        }
    }

    /** The name configs use ({@code adapter.type}). */
    String name();

    /** One line for {@code --help} and error messages. */
    String description();

    /** The method's own settings and their defaults (values as configs spell them). */
    default Map<String, String> optionDefaults() { return Map.of(); }

    /**
     * Checks a config of this method; throws {@link IllegalArgumentException} naming the setting. The default
     * refuses settings the method does not have, listing those it has.
     */
    default void validate(AdapterConfig config) {
        for (String k : config.options().keySet()) {
            if (!AdapterConfig.hasSetting(this, k)) {
                throw new IllegalArgumentException("adapter type '" + config.method() + "' has no setting '" + k + "' (its settings: "
                        + String.join(", ", settingNames()) + ")");
            }
        }
    }

    /** Every setting a config of this method may carry: the shared ones, then the method's own. */
    default List<String> settingNames() {
        List<String> l = new java.util.ArrayList<>(List.of("r", "alpha", "dropout", "targets", "rslora", "bias", "init", AdapterConfig.TRAINABLE_TOKENS));
        l.addAll(new java.util.TreeSet<>(optionDefaults().keySet()));
        return l;
    }

    /**
     * Builds one adapter per module (in the given order) and any state they share; attaches nothing, so a
     * config a layer rejects leaves the model untouched. {@code shareGroups} maps modules to groups whose
     * members share one set of tensors (LoRA-drop); methods that cannot share reject a non-empty map.
     * Seeded: the same seed gives the same initial tensors in every JVM.
     */
    Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                  Map<String, String> shareGroups);

    /** Whether modules can share one set of tensors ({@code shareGroups} in {@link #create}: LoRA-drop's shared adapters). */
    default boolean supportsSharing() { return false; }

    /**
     * For {@code train.aggregate: svd}: the name segments of a layer's two trained factors of ΔW ∝ B·A, {B's, A's}
     * (B [out, r], A [r, in]; a tensor named {@code m.<B's>.x} pairs with {@code m.<A's>.x}). The driver then sums the
     * workers' ΔW exactly and factorises the sum back to rank r. Null (the default) when ΔW is not one product of two
     * trained factors, or when re-factorising would break what the method keeps between steps.
     */
    default String[] productFactors(AdapterConfig config) { return null; }

    /**
     * For {@code train.aggregate: frozen_a}: whether every layer's ΔW is linear in the trained tensors, so that averaging
     * them averages ΔW exactly (LoRA-FA: ΔW = B·A with A frozen). False by default.
     */
    default boolean averagingIsExact(AdapterConfig config) { return false; }

    /**
     * For {@code train.aggregate: stack} (FLoRA): whether a layer's merge of the {@link #productFactors} pair is linear in
     * B for a given A, so that merging each worker's (w_i·B_i, A_i) in turn adds exactly Σ w_i·ΔW_i to the weight, and
     * whether starting again from a fresh B = 0 and a new A loses nothing the method keeps. False by default.
     */
    default boolean foldsLinearly(AdapterConfig config) { return false; }

    /** Trainable scalars the method adds to the layers of the given {in, out} shapes (module → shape), without building them. */
    long trainableCount(Map<String, int[]> shapes, AdapterConfig config);

    /** Frozen scalars the method adds (LoRA-FA's A, VeRA's shared pair), counted in "all params". */
    default long frozenCount(Map<String, int[]> shapes, AdapterConfig config) { return 0; }

    /**
     * The optimizer's parameter groups over the trainable tensors (adapter tensors and any trained biases).
     * The default groups by the tensors' tags with one learning rate for all.
     */
    default List<ParamGroup> optimizerGroups(List<Parameter> trainable, AdapterConfig config, double weightDecay) {
        return ParamGroup.byTag(trainable, weightDecay);
    }

    /** The method's training hooks and per-round state on an attached adapter (none by default). */
    default TrainingHooks hooks(AttachedAdapter adapter) { return TrainingHooks.NONE; }

    /**
     * Makes {@code adapter} compute as its rank-{@code rank} version where the method trains one adapter for several
     * ranks (DyLoRA's truncation), for inference, merge and export; returns false (changing nothing) where the method
     * has no such notion or the rank is outside what it trained.
     */
    default boolean useRank(AttachedAdapter adapter, int rank) { return false; }

    /** The ranks one trained adapter of this method can be evaluated at ({@link #useRank}); empty for most methods. */
    default int[] ranks(AdapterConfig config) { return new int[0]; }

    /**
     * The tensors of the adapter file PEFT reads, from the full ones {@link PeftAdapterFormat#tensors} gives (keys under
     * {@code prefix}), and any keys the file's {@code adapter_config.json} needs from the trained adapter (AdaLoRA slices
     * to its rank pattern and writes it). Checkpoints keep the full tensors. Unchanged by default.
     */
    default Map<String, org.nd4j.linalg.api.ndarray.INDArray> peftFile(AttachedAdapter adapter, Map<String, org.nd4j.linalg.api.ndarray.INDArray> tensors,
                                                                     ObjectNode config, String prefix) {
        return tensors;
    }

    /** Ranks in use per adapted module, for methods that allocate ranks (AdaLoRA); empty for the others. */
    default Map<String, Integer> ranksInUse(AttachedAdapter adapter) { return Map.of(); }

    /** Whether the tensors shared across layers go into the adapter file (VeRA: its {@code save_projection}). */
    default boolean savesSharedTensors(AdapterConfig config) { return true; }

    /**
     * Why PEFT cannot load this method's adapter on a model family, or null when it can (LoHa and LoKr on GPT-2's
     * Conv1D layers). Written into the adapter directory's {@code spark_lora.json} and printed when saving.
     */
    default String peftCaveat(io.sparklora.model.Architecture arch) { return null; }

    /** PEFT's {@code peft_type} for this method ("LORA", "VERA"). */
    String peftType();

    /** Writes this method's keys of PEFT's {@code adapter_config.json} (the shared ones are written by the caller). */
    void writePeftConfig(ObjectNode json, AdapterConfig config);

    /** Reads a PEFT {@code adapter_config.json} of this method; {@code base} holds the targets and bias already read. */
    AdapterConfig readPeftConfig(JsonNode json, String where, AdapterConfig base);
}
