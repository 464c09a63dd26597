package io.sparklora.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The two tables of {@code bench/run-dylora-dp.sh} in docs/VARIANTS.md: DyLoRA's loss by rank beside fixed-rank LoRAs
 * trained separately (and the time of the one run against the sum of the separate ones), and validation loss against
 * ε for DP-DyLoRA at a few noise multipliers beside the same method without privacy.
 */
final class RankDpReport {

    private RankDpReport() {}

    static void write(VariantsBenchmark.Options o) throws IOException {
        List<JsonNode> rows = new ArrayList<>();
        for (String l : Files.readAllLines(Path.of(o.require("runs")))) if (!l.isBlank()) rows.add(VariantsBenchmark.JSON.readTree(l));
        ObjectNode machine = VariantsReport.machine();
        StringBuilder s = new StringBuilder();
        s.append("Written by `").append(o.get("command", "bench/run-dylora-dp.sh")).append("` on ").append(java.time.LocalDate.now())
                .append(", on ").append(machine.get("cpu").asText()).append(" (").append(machine.get("cores").asInt())
                .append(" cores), every row in its own JVM, one after another in one run; ").append(o.get("total-seconds", "?"))
                .append(" s in all. The demo's task: the base the demo pretrains, the SpamAssassin slice, ")
                .append("the held-out mail for loss and accuracy.\n\n");

        s.append("**DyLoRA, one run, every rank, against fixed-rank LoRAs trained one by one** (same steps, batch, lr, seed,")
                .append(" targets and alpha; no trainable label rows in any row):\n\n");
        s.append("| rank | DyLoRA (one run): validation loss | accuracy | LoRA trained at this rank: validation loss | accuracy |\n|---:|---:|---:|---:|---:|\n");
        JsonNode dy = null;
        for (JsonNode r : rows) if (r.path("label").asText().equals("dylora")) dy = r;
        double sumSeconds = 0;
        if (dy != null) {
            for (var it = dy.path("by_rank").fields(); it.hasNext(); ) {
                var e = it.next();
                JsonNode fixed = null;
                for (JsonNode r : rows) if (r.path("label").asText().equals("lora-r" + e.getKey())) fixed = r;
                s.append(String.format(Locale.ROOT, "| %s | %.4f | %.3f | %s | %s |%n", e.getKey(), e.getValue().path("validation_loss").asDouble(),
                        e.getValue().path("accuracy").asDouble(),
                        fixed == null ? "" : String.format(Locale.ROOT, "%.4f", fixed.path("validation_loss").asDouble()),
                        fixed == null ? "" : String.format(Locale.ROOT, "%.3f", fixed.path("accuracy").asDouble())));
                if (fixed != null) sumSeconds += fixed.path("training").path("seconds").asDouble();
            }
            s.append(String.format(Locale.ROOT, "%nTraining time: DyLoRA's one run %.1f s against %.1f s for the fixed-rank LoRAs together.%n%n",
                    dy.path("training").path("seconds").asDouble(), sumSeconds));
        }

        s.append("**DP-DyLoRA (example-level DP-SGD), validation loss against ε** at δ = 1e-5 (the demo's training blocks are the")
                .append(" records; expected batch as the other rows, clip norm C as in each row):\n\n");
        s.append("| row | noise multiplier σ | C | steps | ε at δ | validation loss | accuracy |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (JsonNode r : rows) {
            String label = r.path("label").asText();
            if (!label.startsWith("dp-") && !label.equals("dylora")) continue;
            JsonNode dp = r.path("dp");
            boolean priv = dp.isObject() && dp.size() > 0;
            s.append(String.format(Locale.ROOT, "| %s | %s | %s | %d | %s | %.4f | %.3f |%n", label, priv ? fmt(dp.path("noise_multiplier").asDouble()) : "(none)",
                    priv ? fmt(dp.path("clip_norm").asDouble()) : "", r.path("training").path("steps").asInt(),
                    priv ? String.format(Locale.ROOT, "%.2f", dp.path("epsilon").asDouble()) : "∞ (not private)",
                    r.path("validation_loss").asDouble(), r.path("accuracy").asDouble()));
        }
        String region = s.toString();
        Path doc = Path.of(o.require("doc"));
        DocRegion.replace(doc, "dylora-dp", region);
        System.out.println(region);
    }

    private static String fmt(double v) { return v == Math.rint(v) ? Long.toString((long) v) : String.valueOf(v); }
}
