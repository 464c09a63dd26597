package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.XYChart;

import java.io.IOException;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Renders a run's {@code report.json} and {@code metrics.jsonl} as one self-contained HTML page: no
 * scripts, fonts, style sheets or images from elsewhere (charts are inline SVG, the style sheet is
 * inline), so it opens offline in any browser and prints cleanly.
 *
 * <p>The page has a header (run name and total time), highlights (adapter against model size,
 * perplexity before and after, any failed stage), a stage table, then a section per stage that left
 * something to show: GLoRA structure search (the chosen structure per layer, every candidate's losses),
 * Training (loss curves and the train figures), LoRA-drop (importance per layer,
 * kept against shared, cumulative importance against the threshold) and Evaluation (perplexity, loss,
 * tokens and accuracy per model, and generated samples). Any field may be missing; what exists is
 * rendered and nothing else: no section, chart or row is drawn empty.
 *
 * <p>All text from the report and the metrics (run and layer names, error messages, and above all the
 * samples, which a language model wrote) is escaped; the page is also well-formed XML.
 */
public final class ReportHtml {

    /** Colour of the bars of layers that keep their own LoRA adapter. */
    public static final String KEPT_COLOUR = hex(Charts.KEPT);
    /** Colour of the bars of layers that share one LoRA adapter. */
    public static final String SHARED_COLOUR = hex(Charts.SHARED);

    private static final String DASH = "—";

    /** Stages in pipeline order, each with the key names it may have in report.json (the first is canonical). */
    private static final String[][] STAGES = {
        {"tokenize"},
        {"pretrain", "pretrain_base"},
        {"glora_search"},
        {"train", "train_lora"},
        {"lora_drop"},
        {"eval", "evaluate", "evaluation"},
    };
    private static final Map<String, String> STAGE_TITLES = Map.of(
            "tokenize", "Tokenization",
            "pretrain", "Pretraining",
            "glora_search", "GLoRA structure search",
            "train", "Adapter training",
            "lora_drop", "LoRA-drop",
            "eval", "Evaluation");
    /** Stages whose figures have a section of their own (the stage table links to it). */
    private static final Map<String, String> STAGE_SECTIONS = Map.of(
            "glora_search", "glora-search",
            "train", "training",
            "lora_drop", "lora-drop",
            "eval", "evaluation");
    /** Top-level fields that are never stages. */
    private static final Set<String> NOT_STAGES = Set.of("name", "output", "seconds", "spark", "status", "error");
    private static final String[] EVAL_ROWS = {"base", "adapted", "merged", "full_finetune"};
    private static final Map<String, String> EVAL_ROW_TITLES = Map.of(
            "base", "base model",
            "adapted", "adapted (base + adapter)",
            "merged", "merged (W₀ + ΔW)",
            "full_finetune", "full fine-tuning");

    private ReportHtml() {
    }

    /**
     * The page for {@code report} (the parsed report.json; {@code null} or a non-object renders an
     * almost empty page) and {@code metrics} (the parsed lines of metrics.jsonl, in file order; may be
     * {@code null}). Never throws: should rendering fail on unexpected content after all, the page says
     * so and shows the report as escaped JSON.
     */
    public static String render(JsonNode report, List<JsonNode> metrics) {
        try {
            return new Page(report, metrics == null ? List.of() : metrics).build();
        } catch (RuntimeException e) {
            return fallback(report, e);
        }
    }

    private static String fallback(JsonNode report, RuntimeException e) {
        StringBuilder out = new StringBuilder();
        head(out, "spark-lora report");
        out.append("<h1>spark-lora report</h1>\n<div class=\"callout bad\">This report could not be rendered: ")
                .append(Xml.escape(e.toString())).append("</div>\n<pre>")
                .append(Xml.escape(report == null ? "null" : report.toPrettyString())).append("</pre>\n");
        foot(out);
        return out.toString();
    }

    // ----------------------------------------------------------------------------------------------

    private static final class Page {
        private final JsonNode report;
        private final List<JsonNode> metrics;
        private final StringBuilder out = new StringBuilder(32_768);
        /** Charts drawn so far: numbers their SVG element ids apart. */
        private int charts;
        /** Canonical stage name to its object in the report, in page order. */
        private final Map<String, JsonNode> stages = new LinkedHashMap<>();

        Page(JsonNode report, List<JsonNode> metrics) {
            this.report = report != null && report.isObject() ? report : null;
            this.metrics = metrics;
            findStages();
        }

        private void findStages() {
            if (report == null) return;
            Set<String> used = new HashSet<>();
            for (String[] names : STAGES) {
                for (String key : names) {
                    Optional<JsonNode> stage = JsonFields.object(report, key);
                    if (stage.isPresent()) {
                        stages.put(names[0], stage.get());
                        used.add(key);
                        break;
                    }
                }
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = report.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String key = e.getKey();
                JsonNode v = e.getValue();
                if (used.contains(key) || NOT_STAGES.contains(key) || v == null || !v.isObject()) continue;
                if (v.has("status") || v.has("seconds")) stages.putIfAbsent(key, v);
            }
        }

        private JsonNode stage(String name) {
            return stages.get(name);
        }

        String build() {
            String name = runName();
            double seconds = JsonFields.number(report, "seconds");
            head(out, "spark-lora · " + name + (Double.isFinite(seconds) ? " · " + Fmt.duration(seconds) : ""));
            header(name, seconds);
            highlights();
            stageTable();
            gloraSearch();
            training();
            loraDrop();
            evaluation();
            jobs();
            foot(out);
            return out.toString();
        }

        private String runName() {
            Optional<String> name = JsonFields.text(report, "name").filter(s -> !s.isBlank());
            if (name.isPresent()) return name.get();
            Optional<String> output = JsonFields.text(report, "output").filter(s -> !s.isBlank());
            if (output.isPresent()) {
                String o = output.get().replaceAll("[/\\\\]+$", "");
                return o.substring(Math.max(o.lastIndexOf('/'), o.lastIndexOf('\\')) + 1);
            }
            return "unnamed run";
        }

        // ------------------------------------------------------------------------------------------ header

        private void header(String name, double seconds) {
            out.append("<header>\n<h1>spark-lora run <span class=\"run\">").append(Xml.escape(name))
                    .append("</span></h1>\n<p class=\"meta\">");
            List<String> parts = new ArrayList<>();
            parts.add(Double.isFinite(seconds) ? "total time <strong>" + Xml.escape(Fmt.duration(seconds)) + "</strong>"
                    : "total time not recorded");
            JsonFields.text(report, "output").ifPresent(o -> parts.add("output <code>" + Xml.escape(o) + "</code>"));
            JsonFields.object(report, "spark").ifPresent(spark -> {
                List<String> s = new ArrayList<>();
                JsonFields.text(spark, "master").ifPresent(m -> s.add("master <code>" + Xml.escape(m) + "</code>"));
                if (JsonFields.hasNumber(spark, "default_parallelism")) {
                    s.add("default parallelism " + Xml.escape(Fmt.number(JsonFields.number(spark, "default_parallelism"))));
                }
                if (!s.isEmpty()) parts.add("Spark " + String.join(", ", s));
            });
            out.append(String.join(" · ", parts)).append("</p>\n</header>\n");
        }

        private void highlights() {
            List<String> good = new ArrayList<>();
            JsonNode train = stage("train");
            double adapter = JsonFields.number(train, "adapter_bytes");
            double model = JsonFields.number(train, "model_bytes");
            if (adapter > 0 && model > 0) {
                good.add("The adapter is <strong>" + Xml.escape(Fmt.times(model / adapter)) + " smaller</strong> than the model ("
                        + Xml.escape(Fmt.bytes(adapter)) + " against " + Xml.escape(Fmt.bytes(model)) + ", "
                        + Xml.escape(Fmt.percent(adapter / model)) + " of its size).");
            }
            JsonNode eval = stage("eval");
            double base = JsonFields.number(JsonFields.object(eval, "base").orElse(null), "perplexity");
            double adapted = JsonFields.number(JsonFields.object(eval, "adapted").orElse(null), "perplexity");
            if (Double.isFinite(base) && Double.isFinite(adapted) && base > 0) {
                good.add("Perplexity on the evaluation data: base " + Xml.escape(Fmt.fixed(base, 2)) + " → adapted <strong>"
                        + Xml.escape(Fmt.fixed(adapted, 2)) + "</strong> (" + Xml.escape(Fmt.signedPercent(adapted / base - 1))
                        + ").");
            }
            JsonNode drop = stage("lora_drop");
            double reduction = parameterReduction(drop);
            if (Double.isFinite(reduction)) {
                String s = "LoRA-drop trains <strong>" + Xml.escape(Fmt.percent(reduction)) + " fewer</strong> adapter parameters";
                double pplDrop = JsonFields.number(drop, "perplexity_lora_drop");
                double pplFull = JsonFields.number(drop, "perplexity_full_lora");
                if (Double.isFinite(pplDrop) && Double.isFinite(pplFull)) {
                    s += ", at perplexity " + Xml.escape(Fmt.fixed(pplDrop, 2)) + " against " + Xml.escape(Fmt.fixed(pplFull, 2))
                            + " with every layer's own LoRA";
                }
                good.add(s + ".");
            }
            List<String> bad = new ArrayList<>();
            for (Map.Entry<String, JsonNode> e : stages.entrySet()) {
                if ("failed".equals(JsonFields.text(e.getValue(), "status").orElse(""))) {
                    bad.add("Stage <strong>" + Xml.escape(stageTitle(e.getKey())) + "</strong> failed"
                            + JsonFields.text(e.getValue(), "error").map(m -> ": " + Xml.escape(firstLine(m))).orElse("."));
                }
            }
            if ("partial".equals(JsonFields.text(report, "status").orElse(""))) {
                bad.add("<strong>Some jobs failed</strong>" + JsonFields.text(report, "error").map(m -> ": " + Xml.escape(m)).orElse(".")
                        + " The others are trained, evaluated and reported below.");
            }
            if (!bad.isEmpty()) {
                out.append("<div class=\"callout bad\">\n");
                for (String b : bad) out.append("<p>").append(b).append("</p>\n");
                out.append("</div>\n");
            }
            if (!good.isEmpty()) {
                out.append("<ul class=\"highlights\">\n");
                for (String g : good) out.append("<li>").append(g).append("</li>\n");
                out.append("</ul>\n");
            }
        }

        // ------------------------------------------------------------------------------------------ stages

        private void stageTable() {
            out.append("<section id=\"stages\">\n<h2>Stages</h2>\n");
            if (stages.isEmpty()) {
                out.append("<p class=\"note\">The report records no stage.</p>\n</section>\n");
                return;
            }
            out.append("<table class=\"stages\">\n<thead><tr><th>stage</th><th>status</th><th class=\"num\">time</th>")
                    .append("<th>details</th></tr></thead>\n<tbody>\n");
            for (Map.Entry<String, JsonNode> e : stages.entrySet()) {
                String key = e.getKey();
                JsonNode stage = e.getValue();
                out.append("<tr><td>").append(Xml.escape(stageTitle(key))).append("</td><td>");
                status(JsonFields.text(stage, "status").orElse(null));
                out.append("</td><td class=\"num\">");
                double seconds = JsonFields.number(stage, "seconds");
                out.append(JsonFields.hasNumber(stage, "seconds") ? Xml.escape(Fmt.duration(seconds)) : DASH);
                out.append("</td><td>");
                Optional<String> error = JsonFields.text(stage, "error");
                error.ifPresent(m -> out.append("<div class=\"error\">").append(Xml.escape(m)).append("</div>"));
                String section = STAGE_SECTIONS.get(key);
                if (section != null) {
                    out.append("<a href=\"#").append(section).append("\">see ").append(Xml.escape(stageTitle(key)))
                            .append(" below</a>");
                } else {
                    details(stage);
                }
                out.append("</td></tr>\n");
            }
            out.append("</tbody>\n</table>\n</section>\n");
        }

        private void status(String status) {
            if (status == null) {
                out.append(DASH);
                return;
            }
            String cls = switch (status) {
                case "done", "skipped", "failed" -> status;
                default -> "other";
            };
            out.append("<span class=\"badge ").append(cls).append('"');
            if (status.equals("skipped")) out.append(" title=\"already complete from an earlier run\"");
            out.append('>').append(Xml.escape(status)).append("</span>");
        }

        /** The stage's scalar fields (and arrays of scalars), other than status, seconds and error. */
        private void details(JsonNode stage) {
            List<String> items = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = stage.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                String k = f.getKey();
                JsonNode v = f.getValue();
                if (k.equals("status") || k.equals("seconds") || k.equals("error") || v == null || v.isNull()) continue;
                String value;
                if (v.isNumber()) {
                    value = Xml.escape(Fmt.number(JsonFields.number(stage, k)));
                } else if (v.isValueNode()) {
                    value = "<code>" + Xml.escape(v.asText()) + "</code>";
                } else if (v.isArray()) {
                    List<String> xs = JsonFields.strings(stage, k);
                    if (xs.isEmpty()) continue;
                    value = Xml.escape(String.join(", ", xs.size() > 8 ? xs.subList(0, 8) : xs))
                            + (xs.size() > 8 ? " … (" + xs.size() + ")" : "");
                } else {
                    continue;
                }
                items.add("<span class=\"kv\">" + Xml.escape(k.replace('_', ' ')) + " " + value + "</span>");
            }
            out.append(String.join(" ", items));
        }

        // ------------------------------------------------------------------------------------------ jobs

        /** The jobs of a run with {@code jobs:}, as the train and evaluate stages name them (train's order first). */
        private Set<String> jobNames() {
            Set<String> names = new java.util.LinkedHashSet<>();
            for (String stage : List.of("train", "eval")) {
                JsonFields.object(stage(stage), "jobs").ifPresent(j -> j.fieldNames().forEachRemaining(names::add));
            }
            return names;
        }

        /**
         * One subsection per job of a run with {@code jobs:}: its status (and why it failed), its training figures, the
         * evaluation of base and adapter on its own held-out data, and its samples; above them, every job's loss curve.
         */
        private void jobs() {
            Set<String> names = jobNames();
            if (names.isEmpty()) return;
            JsonNode train = JsonFields.object(stage("train"), "jobs").orElse(null);
            JsonNode eval = JsonFields.object(stage("eval"), "jobs").orElse(null);
            out.append("<section id=\"jobs\">\n<h2>Adapter jobs</h2>\n<p class=\"note\">").append(names.size())
                    .append(names.size() == 1 ? " adapter" : " adapters")
                    .append(" trained together in one Spark job over one base, each evaluated on its own dataset's held-out split with and without its adapter, in one mixed-adapter pass.</p>\n");
            Map<String, MetricSeries.Series> loss = new LinkedHashMap<>();
            MetricSeries.byStage(metrics, "loss").forEach((stage, series) -> { if (names.contains(stage)) loss.put(stage, series); });
            chart("Training loss by job", loss, "one series per adapter");
            for (String name : names) {
                JsonNode t = train == null ? null : JsonFields.object(train, name).orElse(null);
                JsonNode e = eval == null ? null : JsonFields.object(eval, name).orElse(null);
                out.append("<h3 id=\"job-").append(Xml.escape(name)).append("\">Job <code>").append(Xml.escape(name)).append("</code> ");
                status(JsonFields.text(t, "status").orElse(null));
                out.append("</h3>\n");
                for (JsonNode n : new JsonNode[] {t, e}) {
                    if ("failed".equals(JsonFields.text(n, "status").orElse(""))) {
                        out.append("<p class=\"callout bad\">").append(Xml.escape(JsonFields.text(n, "error").orElse("failed"))).append("</p>\n");
                    }
                }
                List<String[]> rows = new ArrayList<>();
                JsonFields.text(t, "method").ifPresent(m -> rows.add(new String[] {"method", Xml.escape(methodTitle(m))
                        + (JsonFields.hasNumber(t, "r") ? ", r = " + Xml.escape(Fmt.integer(JsonFields.number(t, "r"))) : "")}));
                JsonFields.text(e, "dataset").or(() -> JsonFields.text(t, "dataset")).ifPresent(d -> rows.add(new String[] {"dataset",
                        "<code>" + Xml.escape(d) + "</code>" + JsonFields.text(e, "objective").map(o -> " (" + Xml.escape(o) + ")").orElse("")}));
                if (JsonFields.hasNumber(t, "rounds")) rows.add(new String[] {"rounds", Xml.escape(Fmt.integer(JsonFields.number(t, "rounds")))});
                if (JsonFields.hasNumber(t, "lr")) rows.add(new String[] {"learning rate", Xml.escape(Fmt.number(JsonFields.number(t, "lr")))});
                if (JsonFields.hasNumber(t, "trainable_params")) {
                    rows.add(new String[] {"trainable parameters", Xml.escape(Fmt.integer(JsonFields.number(t, "trainable_params")))});
                }
                bytesRow(rows, "adapter size", JsonFields.number(t, "adapter_bytes"));
                bytesRow(rows, "moved per round", JsonFields.number(t, "bytes_broadcast_per_round") + JsonFields.number(t, "bytes_reduced_per_round"));
                if (JsonFields.hasNumber(t, "final_loss")) rows.add(new String[] {"final loss", Xml.escape(Fmt.fixed(JsonFields.number(t, "final_loss"), 3))});
                JsonFields.text(t, "adapter").ifPresent(a -> rows.add(new String[] {"adapter", "<code>" + Xml.escape(a) + "</code>"}));
                if (!rows.isEmpty()) figures(rows);
                Map<String, JsonNode> models = new LinkedHashMap<>();
                for (String k : new String[] {"base", "adapted"}) JsonFields.object(e, k).ifPresent(m -> models.put(k, m));
                if (!models.isEmpty()) evaluationTable(models);
                if (JsonFields.hasNumber(e, "majority_class_accuracy")) {
                    out.append("<p class=\"note\">Always answering the most frequent label scores ")
                            .append(Xml.escape(Fmt.percent(JsonFields.number(e, "majority_class_accuracy")))).append(".</p>\n");
                }
                JsonNode samples = e == null ? null : e.get("samples");
                if (samples != null && samples.isArray() && !samples.isEmpty()) samples(samples);
            }
            out.append("</section>\n");
        }

        // ------------------------------------------------------------------------------------------ training

        private void training() {
            Map<String, MetricSeries.Series> loss = MetricSeries.byStage(metrics, "loss");
            Map<String, MetricSeries.Series> pretrain = new LinkedHashMap<>();
            Map<String, MetricSeries.Series> adapter = new LinkedHashMap<>();
            Map<String, MetricSeries.Series> other = new LinkedHashMap<>();
            Set<String> jobNames = jobNames();
            for (Map.Entry<String, MetricSeries.Series> e : loss.entrySet()) {
                String s = e.getKey();
                if (jobNames.contains(s)) continue;         // drawn in the jobs section
                if (s.startsWith("pretrain")) {
                    pretrain.put(s, e.getValue());
                } else if (Charts.isAdapterStage(s)) {
                    adapter.put(s, e.getValue());
                } else {
                    other.put(s, e.getValue());
                }
            }
            JsonNode train = stage("train");
            if (pretrain.isEmpty() && adapter.isEmpty() && other.isEmpty() && train == null) return;

            out.append("<section id=\"training\">\n<h2>Training</h2>\n");
            chart("Pretraining loss", pretrain, "pretraining of the base model");
            chart("Adapter training loss", adapter, null);
            chart("Loss of other stages", other, null);
            if (train != null) trainFigures(train);
            Map<String, MetricSeries.Series> budget = MetricSeries.byStage(metrics, "adalora_budget");
            Map<String, MetricSeries.Series> inUse = MetricSeries.byStage(metrics, "adalora_ranks_in_use");
            Map<String, MetricSeries.Series> ranks = new LinkedHashMap<>();
            budget.forEach((s, v) -> ranks.put("budget (" + s + ")", v));
            inUse.forEach((s, v) -> ranks.put("ranks in use (" + s + ")", v));
            chart("Rank budget", ranks, "total ranks the schedule allows, and in use, by step");
            if (train != null) rankHeatMap(train.get("final_ranks"));
            out.append("</section>\n");
        }

        /**
         * The rank each adapted matrix ended with (AdaLoRA), as a heat map of layer × matrix kind: rows are the blocks,
         * columns the module kinds (c_attn, q_proj, ...), the colour the rank.
         */
        private void rankHeatMap(JsonNode ranks) {
            if (ranks == null || !ranks.isObject() || ranks.isEmpty()) return;
            java.util.TreeMap<Integer, Map<String, Integer>> byLayer = new java.util.TreeMap<>();
            java.util.LinkedHashSet<String> kinds = new java.util.LinkedHashSet<>();
            int max = 1;
            java.util.regex.Pattern p = java.util.regex.Pattern.compile("^(.*?\\.)(\\d+)\\.(.+)$");
            for (Iterator<Map.Entry<String, JsonNode>> it = ranks.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                java.util.regex.Matcher m = p.matcher(e.getKey());
                int layer = m.matches() ? Integer.parseInt(m.group(2)) : -1;
                String kind = m.matches() ? m.group(3) : e.getKey();
                kinds.add(kind);
                int r = e.getValue().asInt();
                max = Math.max(max, r);
                byLayer.computeIfAbsent(layer, k -> new LinkedHashMap<>()).put(kind, r);
            }
            out.append("<figure>\n<figcaption>Final rank of every adapted matrix (layer × matrix)</figcaption>\n")
                    .append("<table class=\"heatmap\">\n<thead><tr><th>layer</th>");
            for (String k : kinds) out.append("<th><code>").append(Xml.escape(k)).append("</code></th>");
            out.append("</tr></thead>\n<tbody>\n");
            for (Map.Entry<Integer, Map<String, Integer>> row : byLayer.entrySet()) {
                out.append("<tr><th class=\"num\">").append(row.getKey() < 0 ? DASH : String.valueOf(row.getKey())).append("</th>");
                for (String k : kinds) {
                    Integer r = row.getValue().get(k);
                    if (r == null) {
                        out.append("<td>").append(DASH).append("</td>");
                        continue;
                    }
                    double t = (double) r / max;                   // white (0) to deep blue (the largest rank)
                    int red = (int) Math.round(255 - t * (255 - 31)), green = (int) Math.round(255 - t * (255 - 92)), blue = (int) Math.round(255 - t * (255 - 170));
                    out.append("<td class=\"num\" style=\"background:rgb(").append(red).append(',').append(green).append(',').append(blue)
                            .append(");color:").append(t > 0.55 ? "#fff" : "#111").append("\">").append(r).append("</td>");
                }
                out.append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n</figure>\n");
        }

        private void chart(String title, Map<String, MetricSeries.Series> series, String caption) {
            if (series.isEmpty()) return;
            XYChart chart = Charts.lineChart(title, series, "loss", this::seriesTitle);
            if (chart == null) return;
            figure(title, caption, chart);
        }

        /** A figure with the chart as inline SVG; a chart XChart cannot draw becomes a note, never a failed page. */
        private void figure(String title, String caption, org.knowm.xchart.internal.chartpart.Chart<?, ?> chart) {
            out.append("<figure>\n<figcaption>").append(Xml.escape(title));
            if (caption != null) out.append(" <span class=\"note\">(").append(Xml.escape(caption)).append(")</span>");
            out.append("</figcaption>\n");
            try {
                out.append(Charts.inlineSvg(chart, "chart" + (++charts)));
            } catch (IOException | RuntimeException e) {
                out.append("<p class=\"note\">chart not drawn: ").append(Xml.escape(e.toString())).append("</p>");
            }
            out.append("\n</figure>\n");
        }

        private String seriesTitle(String stage) {
            return Charts.seriesTitle(stage, JsonFields.text(stage("train"), "method").orElse("adapter"));
        }

        private void trainFigures(JsonNode train) {
            double adapter = JsonFields.number(train, "adapter_bytes");
            double model = JsonFields.number(train, "model_bytes");
            if (adapter > 0 && model > 0) {
                out.append("<p class=\"callout\">The adapter is <strong>").append(Xml.escape(Fmt.bytes(adapter)))
                        .append("</strong> against <strong>").append(Xml.escape(Fmt.bytes(model)))
                        .append("</strong> for the whole model: <strong>").append(Xml.escape(Fmt.times(model / adapter)))
                        .append(" smaller</strong> (").append(Xml.escape(Fmt.percent(adapter / model)))
                        .append(" of the model's size).");
                double broadcast = JsonFields.number(train, "bytes_broadcast_per_round");
                double reduced = JsonFields.number(train, "bytes_reduced_per_round");
                if (Double.isFinite(broadcast) && Double.isFinite(reduced)) {
                    out.append(" Per round the driver broadcasts ").append(Xml.escape(Fmt.bytes(broadcast)))
                            .append(" to the executors and reduces ").append(Xml.escape(Fmt.bytes(reduced)))
                            .append(" from them, where synchronising the whole model would move ").append(Xml.escape(Fmt.bytes(model)))
                            .append(" each way.");
                }
                out.append("</p>\n");
            }

            List<String[]> rows = new ArrayList<>();
            JsonFields.text(train, "method").ifPresent(m -> rows.add(new String[] {"method", Xml.escape(methodTitle(m))}));
            if (JsonFields.hasNumber(train, "rounds")) {
                String v = Xml.escape(Fmt.integer(JsonFields.number(train, "rounds")));
                if (JsonFields.hasNumber(train, "local_steps")) {
                    double ls = JsonFields.number(train, "local_steps");
                    v += " × " + Xml.escape(Fmt.integer(ls)) + " local step" + (ls == 1 ? "" : "s");
                }
                rows.add(new String[] {"rounds", v});
            }
            JsonFields.text(train, "sync").ifPresent(s -> rows.add(new String[] {"synchronised", Xml.escape(s
                    + JsonFields.text(train, "aggregate").filter(a -> !a.equals("mean")).map(a -> ", aggregate " + a).orElse("")
                    + JsonFields.text(train, "outer_optimizer").filter(a -> !a.equals("none")).map(a -> ", outer " + a).orElse(""))}));
            double trainable = JsonFields.number(train, "trainable_params");
            double total = JsonFields.number(train, "total_params");
            if (Double.isFinite(trainable)) {
                String v = Xml.escape(Fmt.integer(trainable));
                if (Double.isFinite(total) && total > 0) {
                    v += " of " + Xml.escape(Fmt.integer(total)) + " (" + Xml.escape(Fmt.percent(trainable / total)) + ")";
                }
                rows.add(new String[] {"trainable parameters", v});
            } else if (Double.isFinite(total)) {
                rows.add(new String[] {"total parameters", Xml.escape(Fmt.integer(total))});
            }
            bytesRow(rows, "broadcast per round", JsonFields.number(train, "bytes_broadcast_per_round"));
            bytesRow(rows, "reduced per round", JsonFields.number(train, "bytes_reduced_per_round"));
            bytesRow(rows, "adapter size", adapter);
            bytesRow(rows, "model size", model);
            if (adapter > 0 && model > 0) {
                rows.add(new String[] {"adapter / model", "<strong>" + Xml.escape(Fmt.percent(adapter / model)) + "</strong> ("
                        + Xml.escape(Fmt.times(model / adapter)) + " smaller)"});
            }
            if (JsonFields.hasNumber(train, "tokens_per_second")) {
                rows.add(new String[] {"throughput", Xml.escape(Fmt.integer(JsonFields.number(train, "tokens_per_second")))
                        + " tokens/s"});
            }
            if (JsonFields.hasNumber(train, "final_loss")) {
                rows.add(new String[] {"final loss", Xml.escape(Fmt.fixed(JsonFields.number(train, "final_loss"), 3))});
            }
            if (JsonFields.hasNumber(train, "seconds")) {
                rows.add(new String[] {"time", Xml.escape(Fmt.duration(JsonFields.number(train, "seconds")))});
            }
            if (rows.isEmpty()) return;
            out.append("<h3>Adapter training</h3>\n");
            figures(rows);
        }

        private static void bytesRow(List<String[]> rows, String label, double bytes) {
            if (!Double.isFinite(bytes)) return;
            rows.add(new String[] {label, Xml.escape(Fmt.bytes(bytes)) + (Math.abs(bytes) >= 1024
                    ? " <span class=\"note\">(" + Xml.escape(Fmt.integer(bytes)) + " bytes)</span>" : "")});
        }

        /** A two-column table of label and (already escaped) value. */
        private void figures(List<String[]> rows) {
            out.append("<table class=\"figures\">\n<tbody>\n");
            for (String[] r : rows) {
                out.append("<tr><th scope=\"row\">").append(Xml.escape(r[0])).append("</th><td>").append(r[1])
                        .append("</td></tr>\n");
            }
            out.append("</tbody>\n</table>\n");
        }

        // ------------------------------------------------------------------------------------------ GLoRA search

        /** The chosen structure per layer and every candidate tried, best first (ties by id, as the search ranks). */
        private void gloraSearch() {
            JsonNode search = stage("glora_search");
            if (search == null) return;
            Optional<JsonNode> chosen = JsonFields.object(search, "chosen");
            JsonNode candidates = search.get("candidates");
            boolean failed = "failed".equals(JsonFields.text(search, "status").orElse(""));
            if (chosen.isEmpty() && (candidates == null || !candidates.isArray()) && !failed) return;
            out.append("<section id=\"glora-search\">\n<h2>GLoRA structure search</h2>\n");
            if (failed) {
                out.append("<p class=\"callout bad\">The search failed")
                        .append(JsonFields.text(search, "error").map(m -> ": " + Xml.escape(firstLine(m))).orElse("."))
                        .append("</p>\n");
            }
            List<String[]> rows = new ArrayList<>();
            if (JsonFields.hasNumber(search, "chosen_candidate")) {
                String v = "#" + Xml.escape(Fmt.integer(JsonFields.number(search, "chosen_candidate")));
                if (JsonFields.hasNumber(search, "chosen_validation_loss")) {
                    v += ", validation loss <strong>" + Xml.escape(Fmt.fixed(JsonFields.number(search, "chosen_validation_loss"), 4)) + "</strong>";
                }
                if (JsonFields.hasNumber(search, "configured_validation_loss")) {
                    v += " (configured structure " + Xml.escape(Fmt.fixed(JsonFields.number(search, "configured_validation_loss"), 4)) + ")";
                }
                rows.add(new String[] {"chosen candidate", v});
            }
            for (String k : List.of("population", "generations", "steps", "candidates_evaluated", "train_blocks", "validation_blocks")) {
                if (JsonFields.hasNumber(search, k)) rows.add(new String[] {k.replace('_', ' '), Xml.escape(Fmt.number(JsonFields.number(search, k)))});
            }
            JsonFields.text(search, "validation_source").ifPresent(v -> rows.add(new String[] {"validation blocks from",
                    Xml.escape(v.equals("held_out_training_blocks") ? "held-out training blocks (the validation split is empty)"
                            : v.equals("validation_split") ? "the validation split" : v)}));
            if (!rows.isEmpty()) figures(rows);
            if (chosen.isPresent() && chosen.get().size() > 0) {
                out.append("<h3>Chosen structure per layer</h3>\n<table class=\"layers\">\n<thead><tr><th>layer</th>")
                        .append("<th>A</th><th>B</th><th>C</th><th>D</th><th>E</th></tr></thead>\n<tbody>\n");
                for (Iterator<Map.Entry<String, JsonNode>> it = chosen.get().fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    out.append("<tr><td><code>").append(Xml.escape(e.getKey())).append("</code></td>");
                    String[] terms = e.getValue().asText().split(",", -1);
                    for (int i = 0; i < 5; i++) out.append("<td>").append(i < terms.length ? Xml.escape(terms[i].strip()) : DASH).append("</td>");
                    out.append("</tr>\n");
                }
                out.append("</tbody>\n</table>\n");
            }
            if (candidates != null && candidates.isArray() && candidates.size() > 0) {
                List<JsonNode> cs = new ArrayList<>();
                candidates.forEach(c -> { if (c.isObject()) cs.add(c); });
                cs.sort(java.util.Comparator.comparingDouble((JsonNode c) -> {
                    double v = JsonFields.number(c, "validation_loss");
                    return Double.isFinite(v) ? v : Double.POSITIVE_INFINITY;
                }).thenComparingDouble(c -> JsonFields.number(c, "id")));
                double chosenId = JsonFields.number(search, "chosen_candidate");
                out.append("<h3>Candidates, best first</h3>\n<table class=\"layers\">\n<thead><tr><th class=\"num\">#</th>")
                        .append("<th class=\"num\">generation</th><th class=\"num\">parent</th><th class=\"num\">validation loss</th>")
                        .append("<th class=\"num\">train loss</th><th>executor</th><th></th></tr></thead>\n<tbody>\n");
                for (JsonNode c : cs) {
                    double id = JsonFields.number(c, "id");
                    out.append("<tr><td class=\"num\">").append(num(c, "id", 0)).append("</td><td class=\"num\">").append(num(c, "generation", 0))
                            .append("</td><td class=\"num\">").append(num(c, "parent", 0))
                            .append("</td><td class=\"num\">").append(num(c, "validation_loss", 4))
                            .append("</td><td class=\"num\">").append(num(c, "train_loss", 4))
                            .append("</td><td>").append(JsonFields.text(c, "executor").map(Xml::escape).orElse(DASH))
                            .append("</td><td>").append(Double.isFinite(id) && id == chosenId ? "<strong>chosen</strong>" : "")
                            .append("</td></tr>\n");
                }
                out.append("</tbody>\n</table>\n");
            }
            out.append("</section>\n");
        }

        /** A number field, fixed to {@code decimals} places (0: an integer), or a dash. */
        private static String num(JsonNode node, String field, int decimals) {
            if (!JsonFields.hasNumber(node, field)) return DASH;
            double v = JsonFields.number(node, field);
            return Xml.escape(decimals == 0 ? Fmt.integer(v) : Fmt.fixed(v, decimals));
        }

        // ------------------------------------------------------------------------------------------ LoRA-drop

        private void loraDrop() {
            JsonNode drop = stage("lora_drop");
            if (drop == null) return;
            List<String> kept = JsonFields.strings(drop, "kept");
            List<String> shared = JsonFields.strings(drop, "shared");
            List<LoraDropLayers.Layer> layers = LoraDropLayers.of(drop).layers();
            double threshold = JsonFields.number(drop, "threshold");

            List<String[]> rows = new ArrayList<>();
            if (JsonFields.hasNumber(drop, "threshold")) {
                rows.add(new String[] {"threshold", Xml.escape(threshold >= 0 && threshold <= 1 ? Fmt.percent(threshold)
                        + " of the total importance" : Fmt.number(threshold))});
            }
            if (drop.has("kept")) {
                rows.add(new String[] {"layers with their own LoRA (kept)", layerList(kept, layers.size())});
            }
            if (drop.has("shared")) {
                rows.add(new String[] {"layers sharing one LoRA", layerList(shared, layers.size())});
            }
            double full = JsonFields.number(drop, "trainable_params_full");
            double reduced = JsonFields.number(drop, "trainable_params_reduced");
            if (Double.isFinite(full) || Double.isFinite(reduced)) {
                rows.add(new String[] {"trainable parameters", (Double.isFinite(full) ? Xml.escape(Fmt.integer(full)) : DASH)
                        + " with LoRA on every layer → " + (Double.isFinite(reduced) ? Xml.escape(Fmt.integer(reduced)) : DASH)
                        + " with LoRA-drop"});
            }
            double reduction = parameterReduction(drop);
            if (Double.isFinite(reduction)) {
                rows.add(new String[] {"parameter reduction", "<strong>" + Xml.escape(Fmt.percent(reduction)) + "</strong>"});
            }
            double pplFull = JsonFields.number(drop, "perplexity_full_lora");
            double pplDrop = JsonFields.number(drop, "perplexity_lora_drop");
            if (JsonFields.hasNumber(drop, "perplexity_full_lora") || JsonFields.hasNumber(drop, "perplexity_lora_drop")) {
                String v = "full LoRA " + (JsonFields.hasNumber(drop, "perplexity_full_lora") ? Xml.escape(Fmt.fixed(pplFull, 2)) : DASH)
                        + " vs LoRA-drop " + (JsonFields.hasNumber(drop, "perplexity_lora_drop") ? Xml.escape(Fmt.fixed(pplDrop, 2)) : DASH);
                if (Double.isFinite(pplFull) && Double.isFinite(pplDrop) && pplFull > 0) {
                    v += " (" + Xml.escape(Fmt.signedPercent(pplDrop / pplFull - 1)) + ")";
                }
                rows.add(new String[] {"perplexity", v});
            }
            if (JsonFields.hasNumber(drop, "seconds")) {
                rows.add(new String[] {"time", Xml.escape(Fmt.duration(JsonFields.number(drop, "seconds")))});
            }
            boolean failed = "failed".equals(JsonFields.text(drop, "status").orElse(""));
            if (layers.isEmpty() && rows.isEmpty() && !failed) return;

            out.append("<section id=\"lora-drop\">\n<h2>LoRA-drop</h2>\n");
            if (failed) {
                out.append("<p class=\"callout bad\">LoRA-drop failed")
                        .append(JsonFields.text(drop, "error").map(m -> ": " + Xml.escape(firstLine(m))).orElse("."))
                        .append("</p>\n");
            }
            if (!layers.isEmpty()) {
                CategoryChart chart = Charts.importance(drop);
                if (chart != null) figure("Importance per layer, largest first", null, chart);
            }
            if (!rows.isEmpty()) figures(rows);
            if (!layers.isEmpty()) {
                out.append("<table class=\"layers\">\n<thead><tr><th class=\"num\">#</th><th>layer</th>")
                        .append("<th class=\"num\">importance</th><th class=\"num\">share</th>")
                        .append("<th class=\"num\">cumulative</th><th>LoRA</th></tr></thead>\n<tbody>\n");
                for (int i = 0; i < layers.size(); i++) {
                    LoraDropLayers.Layer l = layers.get(i);
                    double share = l.share();
                    out.append("<tr><td class=\"num\">").append(i + 1).append("</td><td><code>").append(Xml.escape(l.name()))
                            .append("</code></td><td class=\"num\">").append(Xml.escape(Fmt.number(l.importance())))
                            .append("</td><td class=\"num\">").append(Double.isFinite(share) ? Xml.escape(Fmt.percent(share)) : DASH)
                            .append("</td><td class=\"num\">")
                            .append(Double.isFinite(l.cumulative()) ? Xml.escape(Fmt.percent(l.cumulative())) : DASH)
                            .append("</td><td>");
                    switch (l.role()) {
                        case KEPT -> out.append("<span class=\"swatch\" style=\"background:").append(KEPT_COLOUR)
                                .append("\"></span>kept");
                        case SHARED -> out.append("<span class=\"swatch\" style=\"background:").append(SHARED_COLOUR)
                                .append("\"></span>shared");
                        default -> out.append(DASH);
                    }
                    out.append("</td></tr>\n");
                }
                out.append("</tbody>\n</table>\n");
            }
            out.append("</section>\n");
        }

        private static String layerList(List<String> names, int of) {
            StringBuilder s = new StringBuilder();
            s.append(names.size());
            if (of > 0) s.append(" of ").append(of);
            if (!names.isEmpty()) {
                s.append(": ");
                for (int i = 0; i < names.size(); i++) {
                    if (i > 0) s.append(", ");
                    s.append("<code>").append(Xml.escape(names.get(i))).append("</code>");
                }
            }
            return s.toString();
        }

        // ------------------------------------------------------------------------------------------ evaluation

        private static final String[] EVAL_COLUMNS = {"perplexity", "loss", "tokens", "accuracy"};

        private void evaluation() {
            JsonNode eval = stage("eval");
            if (eval == null) return;
            Map<String, JsonNode> models = new LinkedHashMap<>();
            for (String key : EVAL_ROWS) JsonFields.object(eval, key).ifPresent(m -> models.put(key, m));
            for (Iterator<Map.Entry<String, JsonNode>> it = eval.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                JsonNode v = e.getValue();
                if (models.containsKey(e.getKey()) || v == null || !v.isObject()) continue;
                for (String c : EVAL_COLUMNS) {
                    if (JsonFields.hasNumber(v, c)) {
                        models.put(e.getKey(), v);
                        break;
                    }
                }
            }
            JsonNode samples = eval.get("samples");
            boolean hasSamples = samples != null && samples.isArray() && !samples.isEmpty();
            boolean failed = "failed".equals(JsonFields.text(eval, "status").orElse(""));
            if (models.isEmpty() && !hasSamples && !failed) return;

            out.append("<section id=\"evaluation\">\n<h2>Evaluation</h2>\n");
            if (failed) {
                out.append("<p class=\"callout bad\">Evaluation failed")
                        .append(JsonFields.text(eval, "error").map(m -> ": " + Xml.escape(firstLine(m))).orElse("."))
                        .append("</p>\n");
            }
            if (!models.isEmpty()) evaluationTable(models);
            lossByRank(eval.get("by_rank"));
            if (hasSamples) samples(samples);
            out.append("</section>\n");
        }

        /** An adapter trained for several ranks (DyLoRA): validation loss at each rank, one run. */
        private void lossByRank(JsonNode byRank) {
            if (byRank == null || !byRank.isObject() || byRank.isEmpty()) return;
            List<MetricSeries.Point> points = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = byRank.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                double loss = JsonFields.number(e.getValue(), "loss");
                try {
                    if (Double.isFinite(loss)) points.add(new MetricSeries.Point(Integer.parseInt(e.getKey()), loss));
                } catch (NumberFormatException ignored) {
                    // a key that is not a rank is not drawn
                }
            }
            if (points.isEmpty()) return;
            Map<String, MetricSeries.Series> series = new LinkedHashMap<>();
            series.put("validation loss", new MetricSeries.Series("validation loss", "rank", points));
            XYChart chart = Charts.lineChart("Validation loss by rank", series, "loss", s -> s);
            if (chart != null) figure("Validation loss by rank", "one adapter, truncated to each rank", chart);
        }

        private void evaluationTable(Map<String, JsonNode> models) {
            List<String> columns = new ArrayList<>();
            for (String c : EVAL_COLUMNS) {
                for (JsonNode m : models.values()) {
                    if (JsonFields.hasNumber(m, c)) {
                        columns.add(c);
                        break;
                    }
                }
            }
            double basePpl = JsonFields.number(models.get("base"), "perplexity");
            boolean relative = columns.contains("perplexity") && Double.isFinite(basePpl) && basePpl > 0 && models.size() > 1;
            out.append("<table class=\"eval\">\n<thead><tr><th>model</th>");
            for (String c : columns) {
                out.append("<th class=\"num\">").append(Xml.escape(c)).append("</th>");
                if (c.equals("perplexity") && relative) out.append("<th class=\"num\">vs base</th>");
            }
            out.append("</tr></thead>\n<tbody>\n");
            for (Map.Entry<String, JsonNode> e : models.entrySet()) {
                JsonNode m = e.getValue();
                out.append("<tr><td>").append(Xml.escape(EVAL_ROW_TITLES.getOrDefault(e.getKey(), e.getKey()))).append("</td>");
                for (String c : columns) {
                    double v = JsonFields.number(m, c);
                    String cell;
                    if (!JsonFields.hasNumber(m, c)) {
                        cell = DASH;
                    } else {
                        cell = switch (c) {
                            case "perplexity" -> Fmt.fixed(v, 2);
                            case "loss" -> Fmt.fixed(v, 4);
                            case "tokens" -> Fmt.integer(v);
                            case "accuracy" -> v >= 0 && v <= 1 ? Fmt.percent(v) : Fmt.number(v);
                            default -> Fmt.number(v);
                        };
                    }
                    out.append("<td class=\"num\">").append(Xml.escape(cell)).append("</td>");
                    if (c.equals("perplexity") && relative) {
                        out.append("<td class=\"num\">");
                        if (e.getKey().equals("base")) {
                            out.append(DASH);
                        } else if (Double.isFinite(v)) {
                            out.append(Xml.escape(Fmt.signedPercent(v / basePpl - 1)));
                        } else {
                            out.append(DASH);
                        }
                        out.append("</td>");
                    }
                }
                out.append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n");

            double adapted = JsonFields.number(models.get("adapted"), "perplexity");
            double merged = JsonFields.number(models.get("merged"), "perplexity");
            if (Double.isFinite(adapted) && Double.isFinite(merged) && adapted > 0) {
                double diff = Math.abs(merged / adapted - 1);
                if (diff <= 1e-3) {
                    out.append("<p class=\"note\">The adapted and merged models agree, as they must (")
                            .append(diff == 0 ? "identical perplexity" : "perplexities differ by " + Xml.escape(Fmt.percent(diff)))
                            .append(").</p>\n");
                } else {
                    out.append("<p class=\"callout bad\">The adapted and merged models disagree: perplexity ")
                            .append(Xml.escape(Fmt.fixed(adapted, 2))).append(" against ").append(Xml.escape(Fmt.fixed(merged, 2)))
                            .append(" (").append(Xml.escape(Fmt.percent(diff)))
                            .append(" apart); merging W₀ + ΔW should not change the model's outputs.</p>\n");
                }
            }
        }

        private void samples(JsonNode samples) {
            out.append("<h3>Samples</h3>\n<p class=\"note\">Generated text, shown as written by the models.</p>\n");
            int i = 0;
            for (JsonNode sample : samples) {
                i++;
                out.append("<div class=\"sample\">\n<h4>Sample ").append(i).append("</h4>\n");
                if (sample == null || !sample.isObject()) {
                    out.append("<pre>").append(Xml.escape(sample == null || sample.isNull() ? "" : sample.isTextual()
                            ? sample.textValue() : sample.toString())).append("</pre>\n</div>\n");
                    continue;
                }
                out.append("<dl>\n");
                JsonNode prompt = sample.get("prompt");
                if (prompt != null) sampleField("prompt", prompt);
                for (Iterator<Map.Entry<String, JsonNode>> it = sample.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> f = it.next();
                    if (!f.getKey().equals("prompt")) sampleField(f.getKey(), f.getValue());
                }
                out.append("</dl>\n</div>\n");
            }
        }

        private void sampleField(String key, JsonNode value) {
            String label = EVAL_ROW_TITLES.getOrDefault(key, key);
            String text = value == null || value.isNull() ? "" : value.isTextual() ? value.textValue() : value.toString();
            out.append("<dt>").append(Xml.escape(label)).append("</dt><dd><pre")
                    .append(key.equals("prompt") ? " class=\"prompt\"" : "").append('>').append(Xml.escape(text))
                    .append("</pre></dd>\n");
        }
    }

    // ---------------------------------------------------------------------------------------------- shared

    private static double parameterReduction(JsonNode drop) {
        if (drop == null) return Double.NaN;
        double r = JsonFields.number(drop, "param_reduction");
        if (Double.isFinite(r)) return r;
        double full = JsonFields.number(drop, "trainable_params_full");
        double reduced = JsonFields.number(drop, "trainable_params_reduced");
        return full > 0 && Double.isFinite(reduced) ? 1 - reduced / full : Double.NaN;
    }

    private static String stageTitle(String key) {
        return STAGE_TITLES.getOrDefault(key, key);
    }

    private static String methodTitle(String method) {
        return Charts.methodTitle(method);
    }

    private static String hex(java.awt.Color c) {
        return String.format(java.util.Locale.ROOT, "#%02X%02X%02X", c.getRed(), c.getGreen(), c.getBlue());
    }

    private static String firstLine(String text) {
        String t = text.strip();
        int nl = t.indexOf('\n');
        String line = nl < 0 ? t : t.substring(0, nl) + " …";
        return line.length() > 300 ? line.substring(0, 300) + " …" : line;
    }

    private static void head(StringBuilder out, String title) {
        out.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
                .append("<meta name=\"generator\" content=\"spark-lora\"/>\n")
                .append("<title>").append(Xml.escape(title)).append("</title>\n<style>\n").append(CSS).append("</style>\n")
                .append("</head>\n<body>\n<main>\n");
    }

    private static void foot(StringBuilder out) {
        out.append("<footer>Written by spark-lora from report.json and metrics.jsonl.</footer>\n</main>\n</body>\n</html>\n");
    }

    /** The whole style sheet: plain, light, and free of the characters that XML would need escaped. */
    private static final String CSS = """
            :root { color-scheme: light; }
            * { box-sizing: border-box; }
            body { margin: 0; background: #f5f7fa; color: #1f2933;
              font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
            main { max-width: 1000px; margin: 0 auto; padding: 28px 24px 48px; }
            h1 { font-size: 26px; margin: 0 0 4px; font-weight: 650; }
            h1 .run { color: #0b5394; }
            h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid #d9e2ec; }
            h3 { font-size: 16px; margin: 22px 0 8px; }
            h4 { font-size: 14px; margin: 0 0 6px; color: #52606d; }
            a { color: #0b5394; }
            code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 13px; }
            .meta { color: #52606d; margin: 0; }
            .note { color: #52606d; font-weight: normal; }
            .highlights { background: #ffffff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 10px 14px 10px 32px; margin: 18px 0 0; }
            .highlights li { margin: 3px 0; }
            .callout { background: #eaf4fb; border-left: 4px solid #0072b2; padding: 10px 14px; margin: 12px 0; border-radius: 0 6px 6px 0; }
            .callout p { margin: 4px 0; }
            .callout.bad { background: #fdecec; border-left-color: #b42318; color: #7a1b14; }
            table { border-collapse: collapse; width: 100%; background: #ffffff; margin: 8px 0 18px; font-size: 14px;
              border: 1px solid #d9e2ec; }
            th, td { padding: 6px 10px; border-bottom: 1px solid #e4e7eb; text-align: left; vertical-align: top; }
            thead th { background: #eef2f6; font-weight: 600; }
            table.figures th { width: 34%; font-weight: 500; color: #3e4c59; background: #f8fafc; }
            .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
            .badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
              border: 1px solid transparent; }
            .badge.done { background: #e3f4e8; color: #1d6b35; border-color: #b7e0c3; }
            .badge.skipped { background: #eef2f6; color: #3e4c59; border-color: #cbd2d9; }
            .badge.failed { background: #fdecec; color: #b42318; border-color: #f5b5b0; }
            .badge.other { background: #fff7e0; color: #8a5a00; border-color: #f0d58c; }
            .error { color: #b42318; white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: 12px; margin-bottom: 4px; }
            .kv { display: inline-block; margin: 0 12px 0 0; color: #3e4c59; white-space: nowrap; }
            figure { margin: 14px 0 20px; background: #ffffff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 12px 12px 6px; }
            figcaption { font-weight: 600; margin-bottom: 6px; }
            svg.chart { display: block; max-width: 100%; height: auto; }
            .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
            .sample { background: #ffffff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 10px 14px; margin: 10px 0; }
            .sample dl { margin: 0; }
            .sample dt { font-size: 12px; font-weight: 600; color: #52606d; margin-top: 6px; }
            .sample dd { margin: 2px 0 0; }
            pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f8fafc; border: 1px solid #e4e7eb;
              border-radius: 4px; padding: 6px 8px; margin: 0; line-height: 1.45; }
            pre.prompt { background: #eef2f6; }
            footer { margin-top: 40px; color: #7b8794; font-size: 12px; }
            @media print {
              body { background: #ffffff; font-size: 11pt; }
              main { max-width: none; padding: 0; }
              a { color: inherit; text-decoration: none; }
              figure, table, .sample, .callout, .highlights { break-inside: avoid; }
              h2, h3, h4 { break-after: avoid; }
              * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
            }
            """;
}
