package io.sparklora.adapters;

import io.sparklora.model.Linear;
import org.nd4j.linalg.api.rng.Random;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The methods of the LoRA family by the name configs use. A new method is one file implementing
 * {@link Adapter} plus one line here.
 */
public final class AdapterMethods {

    /** Builds one adapter on one base layer. */
    @FunctionalInterface
    public interface Factory {
        Adapter create(String adapterName, Linear base, AdapterConfig config, Random rng);
    }

    private static final Map<String, Factory> METHODS = new LinkedHashMap<>();

    static {
        METHODS.put("lora", LoraAdapter::new);
    }

    private AdapterMethods() {}

    public static Factory factory(String method) {
        Factory f = METHODS.get(method);
        if (f == null) throw new IllegalArgumentException("unknown adapter type '" + method + "' (known: " + String.join(", ", METHODS.keySet()) + ")");
        return f;
    }

    public static java.util.Set<String> names() { return METHODS.keySet(); }
}
