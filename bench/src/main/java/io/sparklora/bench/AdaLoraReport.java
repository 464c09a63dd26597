package io.sparklora.bench;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * The AdaLoRA comparison of docs/VARIANTS.md (between {@code <!-- adalora:begin -->} and {@code <!-- adalora:end -->}):
 * AdaLoRA against LoRA of a uniform rank at the same final rank budget, one row per seed, the mean, and AdaLoRA's final
 * rank per matrix. Reads the rows bench/run-adalora.sh wrote.
 */
final class AdaLoraReport {
    private AdaLoraReport() {}

    static void write(VariantsBenchmark.Options o) throws IOException {
        Path runs = Path.of(o.require("runs")), doc = Path.of(o.require("doc"));
        List<JsonNode> rows = new ArrayList<>();
        for (String l : Files.readAllLines(runs)) if (!l.isBlank()) rows.add(VariantsBenchmark.JSON.readTree(l));
        JsonNode machine = VariantsReport.machine();
        StringBuilder m = new StringBuilder();
        m.append(String.format(Locale.ROOT, "Measured with `%s` on %s (%d cores), %s, %s rows.%n%n", o.get("command", "bench/run-adalora.sh"),
                machine.get("cpu").asText(), machine.get("cores").asInt(), java.time.LocalDate.now(), rows.size()));
        m.append("| row | lr | seed | init → final ranks (total) | trainable params | validation loss | vs LoRA, same seed | label accuracy |\n")
                .append("|---|---:|---:|---|---:|---:|---:|---:|\n");
        Map<Long, Double> lora = new TreeMap<>();
        for (JsonNode r : rows) if (r.get("label").asText().startsWith("lora")) lora.put(r.path("training").path("seed").asLong(), r.get("validation_loss").asDouble());
        Map<String, List<Double>> byLabel = new LinkedHashMap<>();
        JsonNode lastRanks = null;
        for (JsonNode r : rows) {
            long seed = r.path("training").path("seed").asLong();
            double vl = r.get("validation_loss").asDouble();
            String label = r.get("label").asText();
            byLabel.computeIfAbsent(label, k -> new ArrayList<>()).add(vl);
            int layers = r.path("adapted_layers").asInt();
            int initR = r.path("config").path("r").asInt();
            String ranks = r.has("final_rank_total")
                    ? String.format(Locale.ROOT, "%d × %d → %d", layers, initR, r.get("final_rank_total").asInt())
                    : String.format(Locale.ROOT, "%d × %d (uniform)", layers, initR);
            if (r.has("final_ranks")) lastRanks = r.get("final_ranks");
            Double ref = lora.get(seed);
            String rel = ref == null || label.startsWith("lora") ? "" : String.format(Locale.ROOT, "%+.2f%%", 100 * (vl - ref) / ref);
            m.append(String.format(Locale.ROOT, "| %s | %s | %d | %s | %,d | %.4f | %s | %.3f |%n", label, r.path("training").path("lr").asText(), seed, ranks,
                    r.get("trainable_params").asLong(), vl, rel, r.get("accuracy").asDouble()));
        }
        m.append("\nMean validation loss over the seeds:");
        for (Map.Entry<String, List<Double>> e : byLabel.entrySet()) {
            m.append(String.format(Locale.ROOT, " %s %.4f (%.4f to %.4f);", e.getKey(), e.getValue().stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN),
                    e.getValue().stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN), e.getValue().stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN)));
        }
        m.setLength(m.length() - 1);
        m.append(".\n");
        if (lastRanks != null) {
            m.append("\nAdaLoRA's final rank per matrix (last seed):\n\n| layer | ");
            Map<Integer, Map<String, Integer>> grid = new TreeMap<>();
            java.util.LinkedHashSet<String> kinds = new java.util.LinkedHashSet<>();
            java.util.regex.Pattern p = java.util.regex.Pattern.compile("^(.*?\\.)(\\d+)\\.(.+)$");
            for (var it = lastRanks.fields(); it.hasNext(); ) {
                var e = it.next();
                var mm = p.matcher(e.getKey());
                if (!mm.matches()) continue;
                kinds.add(mm.group(3));
                grid.computeIfAbsent(Integer.parseInt(mm.group(2)), k -> new LinkedHashMap<>()).put(mm.group(3), e.getValue().asInt());
            }
            m.append(String.join(" | ", kinds)).append(" |\n|---:|").append("---:|".repeat(kinds.size())).append('\n');
            for (var row : grid.entrySet()) {
                m.append("| ").append(row.getKey());
                for (String k : kinds) m.append(" | ").append(row.getValue().getOrDefault(k, 0));
                m.append(" |\n");
            }
        }
        DocRegion.replace(doc, "adalora", m.toString());
        System.out.print(m);
    }
}
