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

    /** Trainable tensor entries the method adds to one layer of the given size, without building it. */
    @FunctionalInterface
    public interface Counter {
        long trainable(int in, int out, AdapterConfig config);
    }

    private record Method(Factory factory, Counter counter) {}

    private static final Map<String, Method> METHODS = new LinkedHashMap<>();

    static {
        METHODS.put("lora", new Method(LoraAdapter::new, (in, out, c) -> (long) c.r() * (in + out)));
    }

    private AdapterMethods() {}

    public static Factory factory(String method) { return method(method).factory(); }

    public static Counter counter(String method) { return method(method).counter(); }

    private static Method method(String name) {
        Method m = METHODS.get(name);
        if (m == null) throw new IllegalArgumentException("unknown adapter type '" + name + "' (known: " + String.join(", ", METHODS.keySet()) + ")");
        return m;
    }

    public static java.util.Set<String> names() { return METHODS.keySet(); }
}
