package io.sparklora.adapters;

import io.sparklora.model.Architecture;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Picks the linear layers an adapter attaches to, with PEFT's rule: a module matches a target name
 * when its full name equals it or ends with "." + name; a {@code re:} target is a regular expression
 * that must match the whole module name.
 */
public final class TargetMatcher {
    private TargetMatcher() {}

    /** PEFT's defaults for the model_type: GPT-2's c_attn, q_proj/v_proj for Llama, Mistral and Qwen, Phi-3's fused projections. */
    public static List<String> defaultTargets(Architecture arch) {
        return arch.defaultLoraTargets();
    }

    public static boolean matches(String module, String target) {
        if (target.startsWith("re:")) return Pattern.matches(target.substring(3), module);
        return module.equals(target) || module.endsWith("." + target);
    }

    /**
     * The modules (in model order) matched by the targets. Every target must match at least one module:
     * a misspelt name is an error that lists the names that exist.
     */
    public static List<String> select(Collection<String> modules, List<String> targets) {
        if (targets.isEmpty()) throw new IllegalArgumentException("no target modules given");
        for (String t : targets) {
            if (t.startsWith("re:")) {
                try {
                    Pattern.compile(t.substring(3));
                } catch (PatternSyntaxException e) {
                    throw new IllegalArgumentException("target pattern '" + t + "' is not a valid regular expression: " + e.getDescription());
                }
            }
            if (modules.stream().noneMatch(m -> matches(m, t))) {
                throw new IllegalArgumentException("target module '" + t + "' matches no linear layer of the model; layer names are "
                        + leafNames(modules) + " (or use re:<regex> on full names such as " + modules.iterator().next() + ")");
            }
        }
        List<String> out = new ArrayList<>();
        for (String m : modules) if (targets.stream().anyMatch(t -> matches(m, t))) out.add(m);
        return out;
    }

    private static List<String> leafNames(Collection<String> modules) {
        return modules.stream().map(m -> m.substring(m.lastIndexOf('.') + 1)).distinct().toList();
    }
}
