package io.sparklora.adapters;

import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenRows;
import org.nd4j.linalg.api.ndarray.INDArray;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.ParamGroup;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One named adapter attached to a model: its method and config, its per-layer adapters by module name,
 * the tensors its layers share, and the base biases it trains. Several can sit on one base;
 * {@link #activate} picks which ones contribute.
 */
public final class AttachedAdapter {
    private final String name;
    private final AdapterConfig config;
    private final AdapterMethod method;
    private final TransformerLM model;
    private final Map<String, Adapter> layers;
    private final Map<String, Parameter> shared;
    private final List<Parameter> trainableBiases;
    private final TokenRows tokenRows;            // PEFT's trainable tokens, or null
    private INDArray mergedOriginalRows;          // the frozen rows a merge replaced, for unmerge
    private TrainingHooks hooks;
    private final Map<String, String> shareGroups;
    private int folded;                           // how many value sets fold() has merged into this model's weights

    private AttachedAdapter(String name, AdapterConfig config, TransformerLM model, AdapterMethod.Layers built,
                            List<Parameter> trainableBiases, TokenRows tokenRows, Map<String, String> shareGroups) {
        this.name = name;
        this.config = config;
        this.method = config.adapterMethod();
        this.model = model;
        this.layers = built.layers();
        this.shared = built.shared();
        this.trainableBiases = trainableBiases;
        this.tokenRows = tokenRows;
        this.shareGroups = Map.copyOf(shareGroups);
    }

    /**
     * Attaches an adapter to every linear layer the config targets and freezes the base. Biases train
     * according to {@code config.bias()}. Seeded, so the same seed gives the same initial tensors.
     */
    public static AttachedAdapter attach(TransformerLM model, String name, AdapterConfig config, long seed) {
        return attach(model, name, config, seed, Map.of());
    }

    /**
     * As {@link #attach(TransformerLM, String, AdapterConfig, long)}, but modules mapped to the same group in
     * {@code shareGroups} share one set of tensors (LoRA-drop); unmapped modules get their own.
     */
    public static AttachedAdapter attach(TransformerLM model, String name, AdapterConfig config, long seed, Map<String, String> shareGroups) {
        AdapterMethod method = config.adapterMethod();
        method.validate(config);
        List<String> modules = TargetMatcher.select(model.linears().keySet(), config.targetModules());
        for (String m : modules) {
            if (model.linears().get(m).adapter(name) != null) {
                throw new IllegalArgumentException("model already has an adapter named '" + name + "' on " + m);
            }
        }
        AdapterMethod.Layers built = method.create(model, name, modules, config, seed, shareGroups);
        // attach only once every layer accepted its adapter, so a bad config leaves the model untouched
        built.layers().forEach((m, a) -> model.linears().get(m).attach(a));
        model.setBaseTrainable(false);
        List<Parameter> biases = new ArrayList<>();
        for (String n : trainedBaseTensors(model.config(), config)) {
            Parameter p = model.parameters().get(n);
            if (p == null) throw new IllegalStateException("model has no tensor " + n + " although its config lists it");
            biases.add(p);
        }
        // a bias that trains gets a private copy first if its array is shared (Parameter's copy-on-write)
        for (Parameter p : biases) p.setTrainable(true);
        TokenRows rows = null;
        int[] tokens = config.trainableTokenIndices();
        if (tokens.length > 0) {
            // PEFT starts the rows at the frozen rows' values: attaching changes nothing until they train
            Parameter emb = model.tokenEmbedding();
            for (int id : tokens) {
                if (id >= emb.value().size(0)) {
                    built.layers().forEach((m, x) -> model.linears().get(m).detach(name));
                    throw new IllegalArgumentException(AdapterConfig.TRAINABLE_TOKENS + ": token id " + id + " is outside the vocabulary of "
                            + emb.value().size(0));
                }
            }
            INDArray init = emb.value().getRows(tokens).dup();
            rows = new TokenRows(tokens, new Parameter(TOKEN_ROWS_KEY, init, true, "adapter"));
            model.attachTokenRows(rows);
        }
        AttachedAdapter a = new AttachedAdapter(name, config, model, built, biases, rows, shareGroups);
        a.hooks = method.hooks(a);
        return a;
    }

    /**
     * The base tensors (by checkpoint name) that an adapter of {@code config} trains or changes: the biases
     * its {@code bias} mode trains. Known from the configs alone, before any model is built.
     */
    public static Set<String> trainedBaseTensors(ModelConfig modelConfig, AdapterConfig config) {
        Set<String> out = new LinkedHashSet<>();
        if (config.bias().equals("none")) return out;
        Map<String, long[]> shapes = TransformerLM.expectedShapes(modelConfig);
        if (config.bias().equals("all")) {
            for (String n : shapes.keySet()) if (n.endsWith(".bias")) out.add(n);
        } else {
            for (String m : TargetMatcher.select(ParameterCounter.linearShapes(modelConfig).keySet(), config.targetModules())) {
                if (shapes.containsKey(m + ".bias")) out.add(m + ".bias");
            }
        }
        return out;
    }

    /** Key of the trainable token rows under the embedding module, as PEFT saves them. */
    public static final String TOKEN_ROWS_KEY = "token_adapter.trainable_tokens_delta";

    /** The trainable token rows ({@link AdapterConfig#TRAINABLE_TOKENS}), or null. */
    public TokenRows tokenRows() { return tokenRows; }

    public String name() { return name; }
    public AdapterConfig config() { return config; }
    public AdapterMethod method() { return method; }
    public TransformerLM model() { return model; }
    /** Per-layer adapters by module name, in model order. */
    public Map<String, Adapter> layers() { return layers; }
    /** Tensors shared by every layer (VeRA's projections), by their key under {@code base_model.}. */
    public Map<String, Parameter> shared() { return shared; }
    public List<Parameter> trainableBiases() { return trainableBiases; }
    public TrainingHooks hooks() { return hooks; }

    /** Every tensor the adapter owns (trainable and frozen, shared ones once), biases not included. */
    public List<Parameter> adapterTensors() {
        LinkedHashSet<Parameter> l = new LinkedHashSet<>(shared.values());
        for (Adapter a : layers.values()) l.addAll(a.parameters());
        if (tokenRows != null) l.add(tokenRows.rows());
        return new ArrayList<>(l);
    }

    /** The tensors this adapter trains: adapter tensors (each once), then biases when bias != none. */
    public List<Parameter> trainableParameters() {
        List<Parameter> l = new ArrayList<>();
        for (Parameter p : adapterTensors()) if (p.trainable()) l.add(p);
        l.addAll(trainableBiases);
        return l;
    }

    /**
     * Every tensor that defines the trained adapter: its own tensors (trainable and frozen, the shared ones
     * once) and the biases it trains. What an evaluation or a scoring pass needs to rebuild it elsewhere;
     * training rounds move only {@link #trainableParameters()}, since workers regenerate the frozen ones from
     * their seeds.
     */
    public List<Parameter> stateTensors() {
        List<Parameter> l = adapterTensors();
        l.addAll(trainableBiases);
        return l;
    }

    public long trainableParameterCount() {
        return trainableParameters().stream().mapToLong(Parameter::size).sum();
    }

    /** The optimizer's parameter groups, as the method defines them. */
    public List<ParamGroup> optimizerGroups(double weightDecay) {
        return method.optimizerGroups(trainableParameters(), config, weightDecay);
    }

    /** The parameter report of the model with this adapter: base plus the adapter's own tensors. */
    public ParameterReport report() {
        long adapterTensors = adapterTensors().stream().mapToLong(Parameter::size).sum();
        return new ParameterReport(trainableParameterCount(), model.baseParameterCount() + adapterTensors);
    }

    /**
     * The values this adapter's trainable layer tensors would start from if it were attached again with {@code seed}
     * (same modules, same sharing), by name; the model is not touched. For re-initialising an adapter between rounds
     * ({@code train.aggregate: stack}).
     */
    public Map<String, INDArray> freshValues(long seed) {
        AdapterMethod.Layers built = method.create(model, name, new ArrayList<>(layers.keySet()), config, seed, shareGroups);
        Map<String, INDArray> out = new java.util.LinkedHashMap<>();
        for (Parameter p : built.shared().values()) if (p.trainable()) out.put(p.name(), p.value());
        for (Adapter a : built.layers().values()) for (Parameter p : a.parameters()) if (p.trainable()) out.put(p.name(), p.value());
        return out;
    }

    /**
     * Merges the layers' ΔW at the given tensor values into the base weights and leaves the adapter as it was: each
     * named tensor takes its given value, every layer runs its method's merge (into a private copy of a shared weight:
     * {@link Parameter}'s copy-on-write), and the tensors get their own values back. FLoRA's per-round merge of the
     * workers' stacked factors ({@code train.aggregate: stack}); only for methods whose merge is linear in the values
     * ({@link AdapterMethod#foldsLinearly}). {@link #folded()} counts the calls.
     */
    public void fold(Map<String, INDArray> values) {
        Map<String, Parameter> byName = new java.util.LinkedHashMap<>();
        for (Parameter p : adapterTensors()) byName.put(p.name(), p);
        Map<String, INDArray> saved = new java.util.LinkedHashMap<>();
        try {
            values.forEach((n, v) -> {
                Parameter p = byName.get(n);
                if (p == null) throw new IllegalArgumentException("adapter '" + name + "' has no tensor " + n + " to fold");
                saved.put(n, p.value().dup());
                p.set(v.castTo(p.value().dataType()));
            });
            layers.forEach((m, a) -> a.merge(model.linears().get(m)));
            folded++;
        } finally {
            saved.forEach((n, v) -> byName.get(n).set(v));
        }
    }

    /** How many value sets {@link #fold} has merged into this model's weights. */
    public int folded() { return folded; }

    /**
     * The weights {@link #fold} has merged into, by module, marked shared so that this model and any other that
     * {@link #adoptFolded adopts} them only read them (a later fold copies first).
     */
    public Map<String, INDArray> foldedWeights() {
        Map<String, INDArray> out = new java.util.LinkedHashMap<>();
        for (String m : layers.keySet()) {
            Parameter w = model.linears().get(m).baseWeight().parameter();
            w.markShared();
            out.put(m, w.value());
        }
        return out;
    }

    /**
     * Reads {@code weights} ({@link #foldedWeights} of another model over the same base, which had merged {@code count}
     * value sets) as this model's targeted weights, without a copy, and counts them as folded here.
     */
    public void adoptFolded(Map<String, INDArray> weights, int count) {
        if (folded != 0) throw new IllegalStateException("adapter '" + name + "' has folded " + folded + " value sets already");
        for (String m : layers.keySet()) {
            INDArray w = weights.get(m);
            if (w == null) throw new IllegalArgumentException("no folded weight for " + m);
            model.linears().get(m).baseWeight().parameter().useShared(w);
        }
        folded = count;
    }

    /** Makes this the only active adapter on every layer of the model. */
    public void activate() {
        for (Linear l : model.linears().values()) l.setActive(List.of(name));
    }

    /**
     * Folds the adapter into the base weights: every layer's delta, and the trainable token rows written over
     * their embedding rows (a private copy of the embedding; the tied head reads them too). The rows stay
     * attached, which changes nothing: they replace the embedding rows with the values now in them.
     */
    public void merge() {
        layers.keySet().forEach(m -> model.linears().get(m).merge(name));
        if (tokenRows != null && mergedOriginalRows == null) {
            INDArray emb = model.tokenEmbedding().mutableValue();
            mergedOriginalRows = emb.getRows(tokenRows.indices()).dup();
            writeRows(emb, tokenRows.rows().value());
        }
    }

    public void unmerge() {
        layers.keySet().forEach(m -> model.linears().get(m).unmerge(name));
        if (mergedOriginalRows != null) {
            writeRows(model.tokenEmbedding().mutableValue(), mergedOriginalRows);
            mergedOriginalRows = null;
        }
    }

    private void writeRows(INDArray emb, INDArray rows) {
        int[] idx = tokenRows.indices();
        for (int j = 0; j < idx.length; j++) emb.putRow(idx[j], rows.getRow(j));
    }

    /** After {@link #merge()}: removes the adapter but keeps its change in the base weights (for saving a merged model). */
    public void detachMerged() {
        layers.keySet().forEach(m -> model.linears().get(m).forgetMerged(name));
        if (tokenRows != null) model.detachTokenRows();
        mergedOriginalRows = null;
    }

    /** Removes the adapter from the model (unmerging first if merged). */
    public void detach() {
        layers.keySet().forEach(m -> model.linears().get(m).detach(name));
        if (mergedOriginalRows != null) {
            writeRows(model.tokenEmbedding().mutableValue(), mergedOriginalRows);
            mergedOriginalRows = null;
        }
        if (tokenRows != null) model.detachTokenRows();
    }
}
