package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The layers of a run's LoRA-drop stage ({@code report.json}'s {@code lora_drop} object), largest
 * importance first (NaN last, ties in the report's order), each with its role, its share of the total
 * importance and the cumulative share up to and including it. The total counts only finite positive
 * importances; shares are NaN when it is zero. Chart ({@link Charts#importance}) and table
 * ({@link ReportHtml}) both read this.
 *
 * @param layers    one entry per key of {@code importance}, sorted as above
 * @param threshold the stage's {@code threshold} (NaN when absent)
 */
public record LoraDropLayers(List<Layer> layers, double threshold) {

    /** Roles a layer has after LoRA-drop's selection. */
    public enum Role { KEPT, SHARED, UNKNOWN }

    /** One layer; {@code share} and {@code cumulative} are fractions of the total importance (NaN when undefined). */
    public record Layer(String name, double importance, Role role, double share, double cumulative) {
    }

    /**
     * The layers of {@code drop}, the LoRA-drop stage object or a whole report holding one under
     * {@code lora_drop}; empty when there is none or it has no {@code importance} object.
     */
    public static LoraDropLayers of(JsonNode drop) {
        if (drop != null && drop.isObject() && drop.get("lora_drop") != null && drop.get("lora_drop").isObject()) {
            drop = drop.get("lora_drop");
        }
        record Raw(String name, double importance, Role role) {
        }
        Set<String> kept = new HashSet<>(JsonFields.strings(drop, "kept"));
        Set<String> shared = new HashSet<>(JsonFields.strings(drop, "shared"));
        List<Raw> raw = new ArrayList<>();
        JsonNode importance = JsonFields.object(drop, "importance").orElse(null);
        if (importance != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = importance.fields(); it.hasNext(); ) {
                String name = it.next().getKey();
                Role role = kept.contains(name) ? Role.KEPT : shared.contains(name) ? Role.SHARED : Role.UNKNOWN;
                raw.add(new Raw(name, JsonFields.number(importance, name), role));
            }
        }
        raw.sort((a, b) -> {
            boolean an = Double.isNaN(a.importance()), bn = Double.isNaN(b.importance());
            if (an || bn) return Boolean.compare(an, bn);
            return Double.compare(b.importance(), a.importance());
        });
        double total = 0;
        for (Raw r : raw) {
            if (Double.isFinite(r.importance()) && r.importance() > 0) total += r.importance();
        }
        List<Layer> layers = new ArrayList<>(raw.size());
        double running = 0;
        for (Raw r : raw) {
            double v = r.importance();
            if (Double.isFinite(v) && v > 0) running += v;
            double share = total > 0 && Double.isFinite(v) ? v / total : Double.NaN;
            layers.add(new Layer(r.name(), v, r.role(), share, total > 0 ? running / total : Double.NaN));
        }
        return new LoraDropLayers(List.copyOf(layers), JsonFields.number(drop, "threshold"));
    }

    public boolean isEmpty() {
        return layers.isEmpty();
    }

    /** Whether the shares are defined (some importance is finite and positive). */
    public boolean hasShares() {
        return !layers.isEmpty() && Double.isFinite(layers.get(layers.size() - 1).cumulative());
    }
}
