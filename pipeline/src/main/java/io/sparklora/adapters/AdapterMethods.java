package io.sparklora.adapters;

import io.sparklora.adapters.dora.DoraMethod;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.adapters.lorafa.LoraFaMethod;
import io.sparklora.adapters.loraplus.LoraPlusMethod;
import io.sparklora.adapters.vera.VeraMethod;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The methods of the LoRA family by the name configs use. A new method is one package under
 * {@code adapters/} implementing {@link AdapterMethod}, plus one line here.
 */
public final class AdapterMethods {
    private static final Map<String, AdapterMethod> METHODS = new ConcurrentHashMap<>();
    private static final java.util.List<String> ORDER = new java.util.concurrent.CopyOnWriteArrayList<>();

    static {
        register(new LoraMethod());
        register(new LoraPlusMethod());
        register(new LoraFaMethod());
        register(new DoraMethod());
        register(new VeraMethod());
        register(new io.sparklora.adapters.loha.LohaMethod());
        register(new io.sparklora.adapters.lokr.LokrMethod());
        register(new io.sparklora.adapters.deltalora.DeltaLoraMethod());
        register(new io.sparklora.adapters.glora.GloraMethod());
        register(new io.sparklora.adapters.dylora.DyLoraMethod());
        register(new io.sparklora.adapters.adalora.AdaLoraMethod());
    }

    private AdapterMethods() {}

    /** Adds a method (applications and tests may register their own); a name can be registered once. */
    public static void register(AdapterMethod m) {
        if (METHODS.putIfAbsent(m.name(), m) != null) throw new IllegalArgumentException("adapter type '" + m.name() + "' is already registered");
        ORDER.add(m.name());
    }

    public static AdapterMethod get(String name) {
        AdapterMethod m = METHODS.get(name);
        if (m == null) throw new IllegalArgumentException("unknown adapter type '" + name + "' (known: " + String.join(", ", ORDER) + ")");
        return m;
    }

    /** Registered names, in registration order. */
    public static Set<String> names() { return new java.util.LinkedHashSet<>(ORDER); }
}
