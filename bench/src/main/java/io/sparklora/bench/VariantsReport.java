package io.sparklora.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.StringJoiner;

/**
 * Turns the rows {@code VariantsBenchmark row} wrote (one JSON line each) and the activation measurement into
 * the comparison section of {@code docs/VARIANTS.md} (only the text between {@code <!-- comparison:begin -->} and {@code <!-- comparison:end -->} is
 * replaced) and into {@code bench/out/variants.json} (every raw figure, plus the machine).
 */
final class VariantsReport {

    private VariantsReport() {}

    static void write(VariantsBenchmark.Options o) throws IOException {
        Path runsFile = Path.of(o.get("runs", "bench/out/variants-runs.jsonl"));
        Path actFile = Path.of(o.get("activations", "bench/out/variants-activations.json"));
        Path doc = Path.of(o.get("doc", "docs/VARIANTS.md"));
        Path jsonOut = Path.of(o.get("json", "bench/out/variants.json"));
        String command = o.get("command", "bench/run-variants.sh");
        double totalSeconds = o.getDouble("total-seconds", -1);

        Map<String, ObjectNode> rows = new LinkedHashMap<>();    // the last run of each method wins
        for (String line : Files.readAllLines(runsFile)) {
            if (line.isBlank()) continue;
            ObjectNode r = (ObjectNode) VariantsBenchmark.JSON.readTree(line);
            rows.remove(r.get("method").asText());
            rows.put(r.get("method").asText(), r);
        }
        if (rows.isEmpty()) throw new IllegalArgumentException(runsFile + " holds no rows");
        JsonNode act = Files.exists(actFile) ? VariantsBenchmark.JSON.readTree(actFile.toFile()) : null;

        ObjectNode machine = machine();
        // the day the rows were measured (the latest row's), not the day the table was rewritten
        String date = rows.values().stream().map(r -> r.path("date").asText("")).filter(d -> !d.isEmpty()).max(String::compareTo)
                .orElse(LocalDate.now().toString());
        int quietWait = rows.values().stream().mapToInt(r -> r.path("quiet_wait_seconds").asInt(0)).max().orElse(0);
        String region = markdown(rows, act, machine, date, command, totalSeconds, quietWait);

        DocRegion.replace(doc, "comparison", region);

        ObjectNode all = VariantsBenchmark.JSON.createObjectNode();
        all.put("date", date).put("command", command);
        if (totalSeconds >= 0) all.put("total_seconds", TrainStepBenchmark.round(totalSeconds, 1));
        all.set("machine", machine);
        ArrayNode rs = all.putArray("rows");
        rows.values().forEach(rs::add);
        if (act != null) all.set("activations", act);
        if (jsonOut.getParent() != null) Files.createDirectories(jsonOut.getParent());
        Files.writeString(jsonOut, VariantsBenchmark.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(all) + "\n");
        System.out.println(region);
        System.out.println("wrote " + doc + " (between the comparison markers) and " + jsonOut);
    }

    // ---- the markdown -----------------------------------------------------------------------------

    static String markdown(Map<String, ObjectNode> rows, JsonNode act, ObjectNode machine, String date, String command, double totalSeconds,
                           int quietWait) {
        StringBuilder s = new StringBuilder();
        ObjectNode ref = firstTrained(rows);
        ObjectNode any = rows.values().iterator().next();
        JsonNode tr = ref == null ? null : ref.get("training");
        ObjectNode base = rows.get(VariantsBenchmark.BASE);

        s.append("Written by `bench/run-variants.sh` on ").append(date).append(", on ").append(machine.get("cpu").asText()).append(" (")
                .append(machine.get("cores").asInt()).append(" cores, ").append(machine.get("memory_gib").asText()).append(" GiB), Java ")
                .append(machine.get("java").asText()).append(", ND4J's CPU backend");
        if (totalSeconds >= 0) s.append("; the rows and the activation measurement took ").append(duration(totalSeconds)).append(" (after the build)");
        s.append(". To reproduce:\n\n```bash\n").append(command).append("\n```\n\n");

        // task
        JsonNode mc = any.path("model");
        JsonNode counts = any.get("label_counts");
        int examples = any.get("examples").asInt();
        int majority = 0;
        String majorityLabel = "";
        StringJoiner labelText = new StringJoiner(", ");
        for (Iterator<Map.Entry<String, JsonNode>> it = counts.fields(); it.hasNext(); ) {
            var e = it.next();
            labelText.add(e.getValue().asInt() + " " + e.getKey());
            if (e.getValue().asInt() > majority) {
                majority = e.getValue().asInt();
                majorityLabel = e.getKey();
            }
        }
        double majorityShare = (double) majority / examples;
        s.append("**Task.** The demo's labelled task, read from the pipeline's own outputs in `").append(runDir(any)).append("`: the base that ")
                .append("`bin/spark-lora train` pretrains on the KJV slice and unlabelled mail (GPT-2 shape: ").append(mc.path("n_layer").asInt()).append(" layers, d = ")
                .append(mc.path("n_embd").asInt()).append(", ").append(mc.path("n_head").asInt()).append(" heads, vocabulary ")
                .append(String.format(Locale.ROOT, "%,d", mc.path("vocab_size").asInt())).append(", ")
                .append(String.format(Locale.ROOT, "%,d", any.get("base_params").asLong())).append(" parameters), adapted to the SpamAssassin slice (`")
                .append(any.get("dataset").asText()).append("`, tokenized shards): ")
                .append(String.format(Locale.ROOT, "%,d", any.get("train_blocks").asInt())).append(" training blocks of ")
                .append(any.get("seq_len").asInt()).append(" tokens. Every row is scored on the same held-out mail: the mean token loss over ")
                .append(any.get("validation_blocks").asInt()).append(" validation blocks (")
                .append(String.format(Locale.ROOT, "%,d", any.get("validation_tokens").asLong())).append(" target tokens), and the accuracy on ")
                .append(examples).append(" labelled examples (").append(labelText).append("; always answering ").append(majorityLabel)
                .append(" scores ").append(pct(majorityShare)).append("), each label scored by the log-likelihood of its token after the mail ")
                .append("and `\\nLabel:`, as the evaluate stage scores it.\n\n");

        // budget
        if (tr != null) {
            long steps = tr.get("steps").asLong(), batch = tr.get("batch").asLong(), seq = any.get("seq_len").asLong();
            double epochs = (double) steps * batch / any.get("train_blocks").asInt();
            JsonNode c = ref.get("config");
            s.append("**Budget, the same for every row.** ").append(steps).append(" optimizer steps of ").append(batch).append(" blocks × ")
                    .append(seq).append(" tokens (").append(String.format(Locale.ROOT, "%,d", steps * batch * seq)).append(" training tokens, ")
                    .append(String.format(Locale.ROOT, "%.2f", epochs)).append(" epoch), seed ").append(tr.get("seed").asLong())
                    .append(" (so the same batches in the same order), AdamW with weight decay ").append(num(tr.get("weight_decay").asDouble()))
                    .append(", ").append(tr.get("lr_warmup").asInt()).append(" warm-up steps then ").append(tr.get("schedule").asText())
                    .append(" decay to 0, gradient clipping at norm ").append(num(tr.get("max_grad_norm").asDouble())).append(". Step time: ")
                    .append("median over steps ").append(tr.get("untimed_steps").asInt() + 1).append("–").append(steps)
                    .append(" (the first ").append(tr.get("untimed_steps").asInt()).append(" train but are not timed); one optimizer step ")
                    .append("is forward, backward, the method's hooks, clipping and AdamW. Peak memory: `VmHWM` of the JVM that ran only that row, ")
                    .append("read when its training ends (JVM, ND4J, the base, the data and the training; the scoring that follows is left out, ")
                    .append("its peak is in the JSON as `peak_rss_bytes`)");
            if (tr.path("gc").asText("").startsWith("System.gc()")) {
                s.append("; every row calls `System.gc()` after each step, outside the timed step, so that arrays the engine does not ")
                        .append("release itself are freed every step rather than whenever the JVM happens to collect");
            }
            s.append(". Adapters");
            if (c != null) {
                s.append(": r = ").append(c.get("r").asInt()).append(", alpha = ").append(num(c.get("alpha").asDouble())).append(" (scale ")
                        .append(num(c.get("alpha").asDouble() / c.get("r").asInt())).append("; VeRA has none), on ");
                StringJoiner t = new StringJoiner(", ");
                c.get("targets").forEach(x -> t.add("`" + x.asText() + "`"));
                s.append(t).append(" (").append(ref.get("adapted_layers").asInt()).append(" layers), dropout ").append(num(c.get("dropout").asDouble()))
                        .append(", A initialised ").append(c.get("init").asText());
            }
            s.append(".\n\n");
        }

        // per-method settings
        s.append("**Per-method settings.** Learning rates are the peak rates of each optimizer group (as the method builds its groups):\n\n");
        s.append("| row | learning rate (peak, per optimizer group) | method settings | frozen adapter parameters |\n|---|---|---|---:|\n");
        for (ObjectNode r : rows.values()) {
            String m = r.get("method").asText();
            if (m.equals(VariantsBenchmark.BASE)) continue;
            s.append("| ").append(label(m)).append(" | ").append(lrText(r)).append(" | ").append(optionsText(r)).append(" | ")
                    .append(r.has("frozen_adapter_params") ? String.format(Locale.ROOT, "%,d", r.get("frozen_adapter_params").asLong()) : "—")
                    .append(" |\n");
        }
        s.append("\n");

        // the table
        s.append("| method | trainable parameters | adapter file (bytes) | step time (median ms) | peak memory (RSS, training) | validation loss (perplexity) | accuracy |\n");
        s.append("|---|---:|---:|---:|---:|---:|---:|\n");
        for (ObjectNode r : rows.values()) {
            String m = r.get("method").asText();
            JsonNode t = r.get("training");
            s.append("| ").append(label(m)).append(" | ").append(String.format(Locale.ROOT, "%,d", r.get("trainable_params").asLong())).append(" | ")
                    .append(r.has("file_bytes") ? String.format(Locale.ROOT, "%,d", r.get("file_bytes").asLong())
                            + (m.equals(VariantsBenchmark.FULL) ? " (the model)" : "") : "—").append(" | ")
                    .append(t == null ? "—" : String.format(Locale.ROOT, "%.0f", t.get("median_step_ms").asDouble())).append(" | ")
                    .append(mib(r.get("peak_rss_after_training_bytes").asLong())).append(" | ")
                    .append(String.format(Locale.ROOT, "%.3f (%,.1f)", r.get("validation_loss").asDouble(), r.get("validation_perplexity").asDouble()))
                    .append(" | ").append(accuracyText(r)).append(" |\n");
        }
        s.append("\n");

        // activation bytes
        if (act != null) appendActivations(s, act);

        // what the figures say, from the figures
        s.append("**Reading the figures.**\n\n");
        List<String> notes = notes(rows, base, majorityShare, majorityLabel, quietWait);
        for (String n : notes) s.append("- ").append(n).append("\n");
        return s.toString();
    }

    private static void appendActivations(StringBuilder s, JsonNode act) {
        Map<String, Map<Double, JsonNode>> by = new LinkedHashMap<>();
        List<Double> dropouts = new ArrayList<>();
        for (JsonNode r : act.get("rows")) {
            double p = r.get("dropout").asDouble();
            if (!dropouts.contains(p)) dropouts.add(p);
            by.computeIfAbsent(r.get("method").asText(), k -> new LinkedHashMap<>()).put(p, r);
        }
        s.append("**Activation memory per adapted layer, LoRA against LoRA-FA.** One `Linear` ").append(act.get("d").asInt()).append(" → ")
                .append(act.get("d").asInt()).append(" with a frozen random weight, one adapter (r = ").append(act.get("r").asInt())
                .append(") attached, one training-mode forward of ").append(act.get("batch").asInt()).append(" × ").append(act.get("seq").asInt())
                .append(" = ").append(String.format(Locale.ROOT, "%,d", act.get("tokens").asLong())).append(" tokens (fp32); counted: the arrays ")
                .append("kept for backward, i.e. the layer's `Cache.x()` (kept only when an adapter reads the layer input) plus ")
                .append("each adapter's `Activation.bytesKept()` (what it keeps beyond x):\n\n");
        s.append("| adapter |");
        for (double p : dropouts) s.append(" dropout ").append(num(p)).append(" |");
        s.append("\n|---|");
        for (int i = 0; i < dropouts.size(); i++) s.append("---:|");
        s.append("\n");
        for (var e : by.entrySet()) {
            s.append("| ").append(label(e.getKey())).append(" |");
            for (double p : dropouts) {
                JsonNode r = e.getValue().get(p);
                s.append(" ").append(r == null ? "—" : String.format(Locale.ROOT, "%,d B (%s)", r.get("distinct_bytes_kept").asLong(), arraysText(r)))
                        .append(" |");
            }
            s.append("\n");
        }
        Map<Double, JsonNode> lora = by.get("lora"), fa = by.get("lora_fa");
        if (lora != null && fa != null) {
            s.append("| LoRA / LoRA-FA |");
            for (double p : dropouts) {
                JsonNode a = lora.get(p), b = fa.get(p);
                s.append(" ").append(a == null || b == null ? "—"
                        : String.format(Locale.ROOT, "%.1f×", (double) a.get("distinct_bytes_kept").asLong() / b.get("distinct_bytes_kept").asLong())).append(" |");
            }
            s.append("\n");
        }
        s.append("\nWithout dropout LoRA keeps x (N·d·4 bytes, needed for dA) and h = x·Aᵀ (N·r·4 bytes, for dB); LoRA-FA, whose A ")
                .append("is frozen, only h. With dropout LoRA keeps x, dropout(x) and the mask, and LoRA-FA still keeps the mask ([N, d], for dx), ")
                .append("so most of the saving goes.\n\n");
    }

    /** "x [1024, 768] + h [1024, 8]" from the array list the measurement recorded (what the layer keeps, then the adapter). */
    private static String arraysText(JsonNode r) {
        StringJoiner j = new StringJoiner(" + ");
        for (JsonNode a : r.get("arrays")) {
            String t = a.asText();
            if (t.contains("counted once")) continue;
            int b = t.indexOf('['), e = t.indexOf(']');
            String shape = b >= 0 && e > b ? t.substring(b, e + 1) : t;
            String[] words = t.substring(0, Math.max(0, b)).trim().split("\\s+");
            String name = words.length == 0 ? "" : words[words.length - 1];
            name = switch (name) {
                case "x" -> "x";
                case "xIn" -> "dropout(x)";
                case "keepMask" -> "dropout mask";
                default -> name;
            };
            j.add(name + " " + shape);
        }
        return j.toString();
    }

    private static List<String> notes(Map<String, ObjectNode> rows, ObjectNode base, double majorityShare, String majorityLabel, int quietWait) {
        List<String> n = new ArrayList<>();
        ObjectNode full = rows.get(VariantsBenchmark.FULL);
        if (base != null) {
            double b = base.get("validation_loss").asDouble();
            StringJoiner better = new StringJoiner(", "), notBetter = new StringJoiner(", ");
            double bestAdapter = Double.POSITIVE_INFINITY, worstAdapter = Double.NEGATIVE_INFINITY;
            String best = "", worst = "";
            for (ObjectNode r : rows.values()) {
                String m = r.get("method").asText();
                if (m.equals(VariantsBenchmark.BASE) || m.equals(VariantsBenchmark.FULL)) continue;
                double v = r.get("validation_loss").asDouble();
                if (v < b - 0.01) better.add(label(m)); else notBetter.add(label(m));
                if (v < bestAdapter) { bestAdapter = v; best = label(m); }
                if (v > worstAdapter) { worstAdapter = v; worst = label(m); }
            }
            String sb = String.format(Locale.ROOT, "Validation loss: the base scores %.3f. ", b);
            if (better.length() > 0) {
                String who = notBetter.length() == 0 ? "Every adapter lowers" : better + (better.toString().contains(",") ? " lower" : " lowers");
                sb += String.format(Locale.ROOT, "%s it, to between %.3f (%s) and %.3f (%s)", who, worstAdapter, worst, bestAdapter, best);
            }
            if (notBetter.length() > 0) sb += (better.length() > 0 ? "; " : "") + "no better than the base: " + notBetter;
            if (full != null) {
                sb += String.format(Locale.ROOT, "; full fine-tuning reaches %.3f with %,d trainable parameters", full.get("validation_loss").asDouble(),
                        full.get("trainable_params").asLong());
            }
            n.add(sb + ". Adapters on the attention and MLP layers cannot retrain the token embeddings, which pretraining on the Bible left "
                    + "untrained for the mail's tokens; full fine-tuning can.");
        }
        StringJoiner oneLabel = new StringJoiner(", "), above = new StringJoiner(", ");
        for (ObjectNode r : rows.values()) {
            JsonNode p = r.get("predicted");
            int nonZero = 0;
            for (JsonNode v : p) if (v.asInt() > 0) nonZero++;
            if (nonZero <= 1) oneLabel.add(label(r.get("method").asText()));
            else if (r.get("accuracy").asDouble() > majorityShare + 1e-9) above.add(label(r.get("method").asText()) + " " + pct(r.get("accuracy").asDouble()));
        }
        String acc = "Accuracy: ";
        if (oneLabel.length() > 0) {
            acc += "these rows answer the same label for every held-out mail, so their accuracy is a class share, not classification: "
                    + oneLabel + " (" + classShares(rows.values().iterator().next()) + ")";
        }
        if (above.length() > 0) acc += (oneLabel.length() > 0 ? ". " : "") + "Above the majority class: " + above;
        else {
            acc += ". No row gets above the majority class at this budget";
            ObjectNode any = rows.values().iterator().next();
            ObjectNode t = firstTrained(rows);
            if (any.has("train_documents") && t != null) {
                int docs = any.get("train_documents").asInt(), blocks = any.get("train_blocks").asInt();
                long seen = t.get("training").get("steps").asLong() * t.get("training").get("batch").asLong();
                acc += String.format(Locale.ROOT, ": the label is one target token per mail, and the %,d training mails fill %,d blocks "
                        + "(%.1f per mail), so the %,d blocks a row trains on hold about %,d label tokens among %,d targets: the loss is "
                        + "almost all about the mail's text", docs, blocks, (double) blocks / docs, seen, Math.round(seen * (double) docs / blocks),
                        seen * any.get("seq_len").asLong());
            }
        }
        n.add(acc + ".");
        // memory over the untrained base's process
        if (base != null && base.has("peak_rss_after_training_bytes")) {
            long floor = base.get("peak_rss_after_training_bytes").asLong();
            StringJoiner j = new StringJoiner(", ");
            for (ObjectNode r : rows.values()) {
                if (!r.has("training")) continue;
                j.add(label(r.get("method").asText()) + String.format(Locale.ROOT, " %+,.0f MiB",
                        (r.get("peak_rss_after_training_bytes").asLong() - floor) / (1024.0 * 1024)));
            }
            n.add("Peak memory: the process that only loads the base and the data peaks at " + mib(floor) + "; training adds " + j
                    + ". At d = 128 the activations are small next to the JVM and ND4J, so methods differ little here; the activation table "
                    + "above shows the difference LoRA-FA makes per layer at GPT-2-small width.");
        }
        // timing noise
        double minLoad = Double.POSITIVE_INFINITY, maxLoad = 0;
        for (ObjectNode r : rows.values()) {
            for (String k : new String[]{"load_average_at_start", "load_average_at_end"}) {
                String la = r.path(k).asText("");
                if (la.isEmpty()) continue;
                double v = Double.parseDouble(la.split("\\s+")[0]);
                minLoad = Math.min(minLoad, v);
                maxLoad = Math.max(maxLoad, v);
            }
        }
        StringJoiner spread = new StringJoiner(", ");
        double fullMedian = Double.NaN, fastestAdapter = Double.POSITIVE_INFINITY;
        for (ObjectNode r : rows.values()) {
            JsonNode t = r.get("training");
            if (t == null || !t.has("step_ms")) continue;
            int from = Math.min(t.get("untimed_steps").asInt(), t.get("step_ms").size() - 1);
            double[] v = new double[t.get("step_ms").size() - from];
            for (int i = 0; i < v.length; i++) v[i] = t.get("step_ms").get(from + i).asDouble();
            java.util.Arrays.sort(v);
            spread.add(String.format(Locale.ROOT, "%s %.0f–%.0f", label(r.get("method").asText()), v[v.length / 10], v[(9 * v.length) / 10]));
            double med = t.get("median_step_ms").asDouble();
            if (r.get("method").asText().equals(VariantsBenchmark.FULL)) fullMedian = med;
            else fastestAdapter = Math.min(fastestAdapter, med);
        }
        if (spread.length() > 0) {
            String st = "Step time: the timed steps of one row spread widely (10th–90th percentile, ms: " + spread + ")";
            if (fullMedian <= fastestAdapter) {
                st += ". At d = 128 a step is hundreds of small ND4J ops whose fixed cost outweighs their FLOPs, and every adapted layer adds "
                        + "ops of its own, so no adapter is faster per step than full fine-tuning here; the FLOP saving of adapters shows at "
                        + "GPT-2-small width (docs/BENCHMARKS.md)";
            }
            n.add(st + ".");
        }
        if (maxLoad > 0) {
            n.add(String.format(Locale.ROOT, "Step times and peak memory come from one run each on a shared %d-core machine (1-minute load average "
                    + "%.2f–%.2f at the rows' starts and ends%s): other work on the machine slows ND4J's many small parallel ops a lot "
                    + "(docs/BENCHMARKS.md, Noise), so read step-time differences of less than about 1.5× as noise. `bench/out/variants.json` "
                    + "has every step's time and loss.", Runtime.getRuntime().availableProcessors(), minLoad, maxLoad,
                    quietWait > 0 ? "; each row first waited up to " + quietWait + " s for idle CPUs" : ""));
        }
        return n;
    }

    // ---- formatting ---------------------------------------------------------------------------------

    private static ObjectNode firstTrained(Map<String, ObjectNode> rows) {
        for (ObjectNode r : rows.values()) if (r.has("training") && r.has("config")) return r;
        for (ObjectNode r : rows.values()) if (r.has("training")) return r;
        return null;
    }

    private static String runDir(JsonNode r) {
        String b = r.get("base").asText();
        return b.endsWith("/base") ? b.substring(0, b.length() - "/base".length()) : b;
    }

    static String label(String method) {
        return switch (method) {
            case VariantsBenchmark.FULL -> "full fine-tuning";
            case VariantsBenchmark.BASE -> "base (no training)";
            default -> "`" + method + "`";
        };
    }

    private static String lrText(JsonNode r) {
        JsonNode t = r.get("training");
        if (t == null) return "—";
        JsonNode groups = t.get("optimizer_groups");
        boolean same = true;
        double first = groups.get(0).get("peak_lr").asDouble();
        for (JsonNode g : groups) same &= Math.abs(g.get("peak_lr").asDouble() - first) < 1e-15;
        if (same) {
            StringJoiner names = new StringJoiner(", ");
            groups.forEach(g -> names.add(g.get("name").asText()));
            return num(first) + (groups.size() > 1 ? " (" + names + ")" : "");
        }
        StringJoiner j = new StringJoiner("; ");
        for (JsonNode g : groups) j.add(g.get("name").asText() + " " + num(g.get("peak_lr").asDouble()));
        return j.toString();
    }

    private static String optionsText(JsonNode r) {
        JsonNode c = r.get("config");
        if (c == null) return r.get("method").asText().equals(VariantsBenchmark.FULL) ? "every weight trains (embeddings and tied head included)" : "—";
        StringJoiner j = new StringJoiner(", ");
        for (Iterator<Map.Entry<String, JsonNode>> it = c.get("options").fields(); it.hasNext(); ) {
            var e = it.next();
            j.add(e.getKey() + " = " + e.getValue().asText());
        }
        return j.length() == 0 ? "—" : j.toString();
    }

    private static String accuracyText(JsonNode r) {
        StringBuilder b = new StringBuilder(pct(r.get("accuracy").asDouble()));
        b.append(" (").append(r.get("correct").asInt()).append("/").append(r.get("examples_scored").asInt());
        JsonNode p = r.get("predicted");
        String only = null;
        int nonZero = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = p.fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getValue().asInt() > 0) {
                nonZero++;
                only = e.getKey();
            }
        }
        if (nonZero == 1) b.append(", always ").append(only);
        else {
            StringJoiner j = new StringJoiner(", ");
            p.fields().forEachRemaining(e -> j.add(e.getValue().asInt() + " " + e.getKey()));
            b.append("; predicted ").append(j);
        }
        return b.append(")").toString();
    }

    /** "always ham scores 52.4%, always spam 47.6%". */
    private static String classShares(JsonNode r) {
        StringJoiner j = new StringJoiner(", ");
        int total = r.get("examples").asInt();
        r.get("label_counts").fields().forEachRemaining(e -> j.add("always " + e.getKey() + " scores " + pct((double) e.getValue().asInt() / total)));
        return j.toString();
    }

    static String pct(double v) { return String.format(Locale.ROOT, "%.1f%%", 100 * v); }

    static String mib(long bytes) { return String.format(Locale.ROOT, "%,.0f MiB", bytes / (1024.0 * 1024)); }

    static String duration(double s) {
        long t = Math.round(s);
        return t >= 60 ? String.format(Locale.ROOT, "%d min %02d s", t / 60, t % 60) : t + " s";
    }

    /** A number as a config would write it: 0.01, 0.16, 1e-3 → 0.001. */
    static String num(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e6) return String.valueOf((long) v);
        String s = String.format(Locale.ROOT, "%.6g", v);
        if (s.contains("e")) return s;
        s = s.replaceAll("0+$", "");
        return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }

    /** CPU model, cores, memory, kernel and Java, as run-train-step.sh records them. */
    static ObjectNode machine() {
        ObjectNode m = VariantsBenchmark.JSON.createObjectNode();
        String cpu = System.getProperty("os.arch");
        long memKb = 0;
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (l.startsWith("model name")) {
                    cpu = l.substring(l.indexOf(':') + 1).trim();
                    break;
                }
            }
            for (String l : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (l.startsWith("MemTotal:")) memKb = Long.parseLong(l.replaceAll("[^0-9]", ""));
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux: the figures below say what they can
        }
        m.put("cpu", cpu).put("cores", Runtime.getRuntime().availableProcessors())
                .put("memory_gib", String.format(Locale.ROOT, "%.1f", memKb / (1024.0 * 1024)))
                .put("kernel", System.getProperty("os.version")).put("java", System.getProperty("java.version"));
        return m;
    }
}
