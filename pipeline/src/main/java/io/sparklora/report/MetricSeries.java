package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Groups the lines of {@code metrics.jsonl} into one series per stage, in the order stages first
 * appear. A line's x is its {@code step} when it has one, else its {@code round}, else its position
 * among its stage's lines (from 1); its y is the requested field. Lines without a stage are grouped
 * under {@value #NO_STAGE}; lines that are not objects, or whose y is missing or not a finite number,
 * are skipped.
 */
public final class MetricSeries {

    public static final String NO_STAGE = "(no stage)";

    /**
     * One stage's points; {@code xAxis} names what x counts ({@code "step"}, {@code "round"} or
     * {@code "line"}), after the stage's first point.
     */
    public record Series(String stage, String xAxis, List<Point> points) {
    }

    /** One point of a series. */
    public record Point(double x, double y) {
    }

    private MetricSeries() {
    }

    /** Series of {@code field} (such as {@code "loss"}) keyed by stage; stages without a value of it are absent. */
    public static Map<String, Series> byStage(List<JsonNode> metrics, String field) {
        Map<String, Series> series = new LinkedHashMap<>();
        Map<String, Integer> seen = new LinkedHashMap<>();
        if (metrics == null) return series;
        for (JsonNode line : metrics) {
            if (line == null || !line.isObject()) continue;
            String stage = JsonFields.text(line, "stage").orElse(NO_STAGE);
            int ordinal = seen.merge(stage, 1, Integer::sum);
            double y = JsonFields.number(line, field);
            if (!Double.isFinite(y)) continue;
            String xAxis = "step";
            double x = JsonFields.number(line, "step");
            if (!Double.isFinite(x)) {
                xAxis = "round";
                x = JsonFields.number(line, "round");
            }
            if (!Double.isFinite(x)) {
                xAxis = "line";
                x = ordinal;
            }
            String axis = xAxis;
            series.computeIfAbsent(stage, k -> new Series(stage, axis, new ArrayList<>()))
                    .points().add(new Point(x, y));
        }
        return series;
    }
}
