package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Lenient reading of report fields: a missing field, a JSON {@code null} or a value of the wrong type
 * reads as absent (or NaN for numbers) instead of throwing, because any stage of a run may have been
 * skipped, disabled or have failed half-way. Numbers written as strings ({@code "NaN"}, {@code "1e-3"})
 * are accepted too.
 */
public final class JsonFields {

    private JsonFields() {
    }

    /** The object at {@code field}, or empty when absent or not an object. */
    public static Optional<JsonNode> object(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        return v != null && v.isObject() ? Optional.of(v) : Optional.empty();
    }

    /** The number at {@code field}, or NaN when absent or not a number. */
    public static double number(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        if (v == null) return Double.NaN;
        if (v.isNumber()) return v.doubleValue();
        if (v.isTextual()) {
            String s = v.textValue().trim();
            try {
                return switch (s) {
                    case "Infinity", "+Infinity", "inf", "+inf" -> Double.POSITIVE_INFINITY;
                    case "-Infinity", "-inf" -> Double.NEGATIVE_INFINITY;
                    default -> Double.parseDouble(s);
                };
            } catch (NumberFormatException e) {
                return Double.NaN;
            }
        }
        return Double.NaN;
    }

    /** Whether {@code field} holds a number (a non-finite one included). */
    public static boolean hasNumber(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        if (v == null) return false;
        if (v.isNumber()) return true;
        if (!v.isTextual()) return false;
        return v.textValue().trim().equals("NaN") || !Double.isNaN(number(node, field));
    }

    /** The text at {@code field} (a scalar of any kind, as text), or empty when absent, null or a container. */
    public static Optional<String> text(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        if (v == null || v.isNull() || v.isContainerNode() || v.isMissingNode()) return Optional.empty();
        return Optional.of(v.asText());
    }

    /** The strings of the array at {@code field} (scalars as text); empty when absent or not an array. */
    public static List<String> strings(JsonNode node, String field) {
        List<String> out = new ArrayList<>();
        JsonNode v = node == null ? null : node.get(field);
        if (v != null && v.isArray()) {
            for (JsonNode e : v) {
                if (e != null && !e.isNull() && !e.isContainerNode()) out.add(e.asText());
            }
        }
        return out;
    }
}
