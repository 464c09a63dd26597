package io.sparklora.adapters;

import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One named adapter attached to a model: its config and its per-layer adapters, by module name.
 * Several can sit on one base; {@link #activate} picks which ones contribute.
 */
public final class AttachedAdapter {
    private final String name;
    private final AdapterConfig config;
    private final TransformerLM model;
    private final Map<String, Adapter> layers;
    private final List<Parameter> trainableBiases;

    private AttachedAdapter(String name, AdapterConfig config, TransformerLM model, Map<String, Adapter> layers,
                            List<Parameter> trainableBiases) {
        this.name = name;
        this.config = config;
        this.model = model;
        this.layers = layers;
        this.trainableBiases = trainableBiases;
    }

    /**
     * Attaches an adapter to every linear layer the config targets and freezes the base. Biases train
     * according to {@code config.bias()}. Seeded, so the same seed gives the same initial A.
     */
    public static AttachedAdapter attach(TransformerLM model, String name, AdapterConfig config, long seed) {
        return attach(model, name, config, seed, Map.of());
    }

    /**
     * As {@link #attach(TransformerLM, String, AdapterConfig, long)}, but modules mapped to the same group in
     * {@code shareGroups} share one set of LoRA tensors (LoRA-drop); unmapped modules get their own.
     */
    public static AttachedAdapter attach(TransformerLM model, String name, AdapterConfig config, long seed, Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty() && !config.method().equals("lora")) {
            throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for method lora, not " + config.method());
        }
        List<String> modules = TargetMatcher.select(model.linears().keySet(), config.targetModules());
        for (String m : modules) {
            if (model.linears().get(m).adapter(name) != null) {
                throw new IllegalArgumentException("model already has an adapter named '" + name + "' on " + m);
            }
        }
        Random rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        AdapterMethods.Factory factory = AdapterMethods.factory(config.method());
        Map<String, Adapter> layers = new LinkedHashMap<>();
        Map<String, LoraAdapter> groupOwner = new LinkedHashMap<>();
        for (String m : modules) {
            Linear l = model.linears().get(m);
            String group = shareGroups.get(m);
            LoraAdapter owner = group == null ? null : groupOwner.get(group);
            Adapter a = owner != null ? new LoraAdapter(name, l, config, owner) : factory.create(name, l, config, rng);
            if (group != null && owner == null) groupOwner.put(group, (LoraAdapter) a);
            layers.put(m, a);
        }
        // attach only once every layer accepted its adapter, so a bad config leaves the model untouched
        layers.forEach((m, a) -> model.linears().get(m).attach(a));
        model.setBaseTrainable(false);
        List<Parameter> biases = new ArrayList<>();
        if (config.bias().equals("all")) {
            for (Parameter p : model.parameters().values()) if (p.group().equals("bias")) biases.add(p);
        } else if (config.bias().equals("lora_only")) {
            for (String m : modules) {
                Parameter b = model.linears().get(m).bias();
                if (b != null) biases.add(b);
            }
        }
        for (Parameter p : biases) p.setTrainable(true);
        return new AttachedAdapter(name, config, model, layers, biases);
    }

    public String name() { return name; }
    public AdapterConfig config() { return config; }
    public TransformerLM model() { return model; }
    /** Per-layer adapters by module name, in model order. */
    public Map<String, Adapter> layers() { return layers; }
    public List<Parameter> trainableBiases() { return trainableBiases; }

    /** The tensors this adapter trains: adapter matrices, then biases when bias != none. */
    public List<Parameter> trainableParameters() {
        // a set: layers that share an adapter (LoRA-drop) list the same tensors, which train once
        java.util.LinkedHashSet<Parameter> l = new java.util.LinkedHashSet<>();
        for (Adapter a : layers.values()) for (Parameter p : a.parameters()) if (p.trainable()) l.add(p);
        l.addAll(trainableBiases);
        return new ArrayList<>(l);
    }

    public long trainableParameterCount() {
        return trainableParameters().stream().mapToLong(Parameter::size).sum();
    }

    /** The parameter report of the model with this adapter: base plus the adapter's own tensors. */
    public ParameterReport report() {
        long adapterTensors = layers.values().stream().flatMap(a -> a.parameters().stream()).distinct().mapToLong(Parameter::size).sum();
        return new ParameterReport(trainableParameterCount(), model.baseParameterCount() + adapterTensors);
    }

    /** Makes this the only active adapter on every layer of the model. */
    public void activate() {
        for (Linear l : model.linears().values()) l.setActive(List.of(name));
    }

    public void merge() { layers.keySet().forEach(m -> model.linears().get(m).merge(name)); }

    public void unmerge() { layers.keySet().forEach(m -> model.linears().get(m).unmerge(name)); }

    /** After {@link #merge()}: removes the adapter but keeps its change in the base weights (for saving a merged model). */
    public void detachMerged() { layers.keySet().forEach(m -> model.linears().get(m).forgetMerged(name)); }

    /** Removes the adapter from the model (unmerging first if merged). */
    public void detach() { layers.keySet().forEach(m -> model.linears().get(m).detach(name)); }
}
