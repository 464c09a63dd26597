package io.sparklora.api;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A run's {@code metrics.jsonl}: one row per logged step, each a JSON object with {@code stage} (the
 * phase: {@code pretrain}, {@code train}, the LoRA-drop phases, {@code full_finetune}), a step number
 * ({@code step}, or {@code round}) and numbers such as {@code loss}, {@code lr_factor},
 * {@code tokens_per_second}. {@link #series} gives one metric of one phase as plot-ready arrays.
 */
public final class Metrics {
    private final List<JsonNode> rows;

    Metrics(List<JsonNode> rows) {
        this.rows = List.copyOf(rows);
    }

    /**
     * One metric over one phase, in logged order.
     *
     * @param steps  x values: the row's {@code step}, else its {@code round}, else its 1-based index in the phase
     * @param values y values, as long as {@code steps}
     */
    public record Series(String phase, String metric, long[] steps, double[] values) {
        public int size() { return values.length; }
        public boolean isEmpty() { return values.length == 0; }
        /** The last value, or NaN when empty. */
        public double last() { return values.length == 0 ? Double.NaN : values[values.length - 1]; }
    }

    /** Every row, in file order (read-only JSON objects). */
    public List<JsonNode> rows() { return rows; }

    /** The phases ({@code stage} values) present, in first-seen order. */
    public Set<String> phases() {
        Set<String> p = new LinkedHashSet<>();
        for (JsonNode r : rows) if (r.hasNonNull("stage")) p.add(r.get("stage").asText());
        return p;
    }

    /** The numeric fields that rows of {@code phase} carry (besides {@code step} and {@code round}). */
    public Set<String> metricNames(String phase) {
        Set<String> names = new LinkedHashSet<>();
        for (JsonNode r : rows) {
            if (!phase.equals(r.path("stage").asText(null))) continue;
            r.fields().forEachRemaining(e -> {
                if (e.getValue().isNumber() && !e.getKey().equals("step") && !e.getKey().equals("round")) names.add(e.getKey());
            });
        }
        return names;
    }

    /**
     * {@code metric} over the rows of {@code phase} that have it as a number; empty when there are none
     * (an unknown phase or metric is not an error: a run may not have reached that stage yet).
     */
    public Series series(String phase, String metric) {
        List<long[]> xs = new ArrayList<>();
        List<Double> ys = new ArrayList<>();
        long index = 0;
        for (JsonNode r : rows) {
            if (!phase.equals(r.path("stage").asText(null))) continue;
            index++;
            JsonNode v = r.get(metric);
            if (v == null || !v.isNumber()) continue;
            long x = r.hasNonNull("step") ? r.get("step").asLong() : r.hasNonNull("round") ? r.get("round").asLong() : index;
            xs.add(new long[]{x});
            ys.add(v.asDouble());
        }
        long[] steps = new long[xs.size()];
        double[] values = new double[ys.size()];
        for (int i = 0; i < steps.length; i++) {
            steps[i] = xs.get(i)[0];
            values[i] = ys.get(i);
        }
        return new Series(phase, metric, steps, values);
    }
}
