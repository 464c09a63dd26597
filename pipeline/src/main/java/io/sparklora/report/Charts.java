package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.util.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.AxesChartStyler;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The charts of a run, drawn with XChart, for report.html (inline SVG), the README pictures and the
 * notebooks (PNG): the same code everywhere.
 *
 * <ul>
 *   <li>{@link #lossCurves(List, JsonNode)}: training loss of the adapter stages of metrics.jsonl (the
 *       method's own run, LoRA-drop's warm-up and reduced set, full fine-tuning), one line per stage,
 *       x = step (or round, or line number when a stage records neither), y = loss;</li>
 *   <li>{@link #importance(JsonNode)}: LoRA-drop's importance per layer, largest first, bars coloured
 *       {@link #KEPT} or {@link #SHARED}, with the cumulative share of the importance and the threshold
 *       on a second axis from 0 to 1.</li>
 * </ul>
 *
 * Both return {@code null} when the run has nothing to draw. Charts render headless: loading this class
 * sets {@code java.awt.headless=true} unless the property is already set.
 */
public final class Charts {

    /** Bars of LoRA-drop layers that keep their own adapter. */
    public static final Color KEPT = new Color(0x0072B2);
    /** Bars of LoRA-drop layers that share one adapter. */
    public static final Color SHARED = new Color(0xE69F00);
    /** Bars whose role the report does not record. */
    public static final Color NEUTRAL = new Color(0x9AA5B1);
    /** The threshold line. */
    public static final Color MARK = new Color(0xD55E00);
    /** The cumulative-share line. */
    public static final Color OVERLAY = new Color(0x323F4B);

    /** Line colours, in series order: the Okabe–Ito palette without yellow (distinct for colour-blind readers). */
    private static final Color[] SERIES = {
        new Color(0x0072B2), new Color(0xD55E00), new Color(0x009E73), new Color(0xCC79A7),
        new Color(0xE69F00), new Color(0x56B4E9), new Color(0x000000), new Color(0x8C564B),
    };

    public static final int WIDTH = 760;
    public static final int HEIGHT = 400;

    static {
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    private Charts() {
    }

    /** Whether {@code stage} (a metrics.jsonl stage name) is adapter training: drawn by {@link #lossCurves}. */
    public static boolean isAdapterStage(String stage) {
        return stage.equals("train") || stage.equals("train_lora") || stage.startsWith("lora_drop")
                || stage.startsWith("full_finetune");
    }

    /**
     * Loss of the adapter stages of {@code metrics} (the lines of metrics.jsonl); {@code report} (may be
     * {@code null}) names the method of the {@code train} series. {@code null} when no adapter stage has a loss.
     */
    public static XYChart lossCurves(List<JsonNode> metrics, JsonNode report) {
        Map<String, MetricSeries.Series> adapter = new LinkedHashMap<>();
        MetricSeries.byStage(metrics, "loss").forEach((stage, s) -> {
            if (isAdapterStage(stage)) adapter.put(stage, s);
        });
        String method = JsonFields.object(report, "train").flatMap(t -> JsonFields.text(t, "method")).orElse("lora");
        return lineChart("Adapter training loss", adapter, "loss", stage -> seriesTitle(stage, method));
    }

    /** {@link #lossCurves(List, JsonNode)} without a report (the train series is called LoRA). */
    public static XYChart lossCurves(List<JsonNode> metrics) {
        return lossCurves(metrics, null);
    }

    /**
     * One line per series, named by {@code names} applied to its stage; the x axis is titled after what the
     * series count (step, round, line). {@code null} when no series has a point.
     */
    public static XYChart lineChart(String title, Map<String, MetricSeries.Series> series, String yTitle,
                                    UnaryOperator<String> names) {
        List<String> axes = new ArrayList<>();
        for (MetricSeries.Series s : series.values()) {
            if (!s.points().isEmpty() && !axes.contains(s.xAxis())) axes.add(s.xAxis());
        }
        if (axes.isEmpty()) return null;
        XYChart chart = new XYChart(WIDTH, HEIGHT);
        chart.setTitle(title);
        chart.setXAxisTitle(String.join(" / ", axes));
        chart.setYAxisTitle(yTitle);
        style(chart.getStyler());
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        int i = 0;
        double maxX = 0;
        double minX = Double.POSITIVE_INFINITY;
        for (MetricSeries.Series s : series.values()) {
            if (s.points().isEmpty()) continue;
            double[] x = new double[s.points().size()];
            double[] y = new double[x.length];
            for (int k = 0; k < x.length; k++) {
                x[k] = s.points().get(k).x();
                y[k] = s.points().get(k).y();
            }
            for (double v : x) {
                maxX = Math.max(maxX, Math.abs(v));
                minX = Math.min(minX, v);
            }
            XYSeries line = chart.addSeries(uniqueName(chart, names.apply(s.stage())), x, y);
            line.setLineColor(SERIES[i % SERIES.length]);
            line.setLineWidth(2f);
            line.setMarker(x.length <= 40 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
            line.setMarkerColor(SERIES[i % SERIES.length]);
            i++;
        }
        // XChart labels every tick it places (one per step on short runs); label only multiples of a
        // round stride, about 8 of them, which keeps the axis readable and the SVG small.
        double stride = labelStride(maxX / 8);
        if (minX >= 0) chart.getStyler().setXAxisMin(0.0); // ticks from 0, so that round multiples are ticks
        chart.getStyler().setXAxisTickLabelsFormattingFunction(v -> {
            double k = v / stride;
            if (Math.abs(k - Math.rint(k)) > 1e-9) return "";
            double d = v;
            return d == Math.rint(d) ? Long.toString((long) d) : Fmt.number(d);
        });
        return chart;
    }

    /** The smallest of 1, 2, 5 times a power of ten that is at least {@code atLeast} (1 when that is not positive). */
    static double labelStride(double atLeast) {
        if (!(atLeast > 0) || !Double.isFinite(atLeast)) return 1;
        double p = Math.pow(10, Math.floor(Math.log10(atLeast)));
        for (double m : new double[] {1, 2, 5, 10}) {
            if (m * p >= atLeast * (1 - 1e-12)) return m * p;
        }
        return 10 * p;
    }

    /**
     * LoRA-drop's importance per layer of {@code report} (a whole report.json or its {@code lora_drop}
     * object): series {@code "kept (own LoRA)"}, {@code "shared LoRA"} and {@code "role not recorded"} (bars,
     * only those that occur), {@code "cumulative share"} and {@code "threshold NN%"} (lines on the second
     * y axis, when the importances have a positive total and the threshold lies in [0, 1]). {@code null}
     * when the report has no importance per layer.
     */
    public static CategoryChart importance(JsonNode report) {
        LoraDropLayers drop = LoraDropLayers.of(report);
        if (drop.isEmpty()) return null;
        List<String> full = new ArrayList<>();
        for (LoraDropLayers.Layer l : drop.layers()) full.add(l.name());
        String prefix = commonPrefix(full);
        List<String> names = new ArrayList<>();
        for (String n : full) names.add(n.substring(prefix.length()));
        CategoryChart chart = new CategoryChart(WIDTH, HEIGHT + 100);
        chart.setTitle("LoRA-drop: importance per layer");
        chart.setXAxisTitle("layer" + (prefix.isEmpty() ? "" : " (" + prefix + "…)") + ", largest importance first");
        chart.setYAxisTitle("importance");
        style(chart.getStyler());
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
        chart.getStyler().setXAxisLabelRotation(names.size() > 4 ? 90 : 0);
        chart.getStyler().setOverlapped(true);
        chart.getStyler().setAvailableSpaceFill(0.7);
        chart.getStyler().setYAxisMin(0, 0.0);
        chart.getStyler().setYAxisDecimalPattern("0.###");
        bars(chart, "kept (own LoRA)", names, drop, LoraDropLayers.Role.KEPT, KEPT);
        bars(chart, "shared LoRA", names, drop, LoraDropLayers.Role.SHARED, SHARED);
        bars(chart, "role not recorded", names, drop, LoraDropLayers.Role.UNKNOWN, NEUTRAL);
        if (drop.hasShares()) {
            List<Double> cumulative = new ArrayList<>();
            for (LoraDropLayers.Layer l : drop.layers()) cumulative.add(l.cumulative());
            CategorySeries c = chart.addSeries("cumulative share", names, cumulative);
            c.setChartCategorySeriesRenderStyle(CategorySeries.CategorySeriesRenderStyle.Line);
            c.setYAxisGroup(1);
            c.setLineColor(OVERLAY);
            c.setMarker(SeriesMarkers.CIRCLE);
            c.setMarkerColor(OVERLAY);
            double t = drop.threshold();
            if (t >= 0 && t <= 1) {
                List<Double> flat = new ArrayList<>();
                for (int k = 0; k < names.size(); k++) flat.add(t);
                CategorySeries th = chart.addSeries("threshold " + Fmt.percent(t), names, flat);
                th.setChartCategorySeriesRenderStyle(CategorySeries.CategorySeriesRenderStyle.Line);
                th.setYAxisGroup(1);
                th.setLineColor(MARK);
                th.setLineStyle(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f,
                        new float[] {6f, 4f}, 0f));
                th.setMarker(SeriesMarkers.NONE);
            }
            chart.getStyler().setYAxisGroupPosition(1, Styler.YAxisPosition.Right);
            chart.getStyler().setYAxisMin(1, 0.0);
            chart.getStyler().setYAxisMax(1, 1.0);
            chart.setYAxisGroupTitle(1, "cumulative share");
        }
        return chart;
    }

    /** The chart as a PNG image. */
    public static byte[] png(Chart<?, ?> chart) throws IOException {
        return BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG);
    }

    /** The chart as a standalone SVG document. */
    public static byte[] svgDocument(Chart<?, ?> chart) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        VectorGraphicsEncoder.saveVectorGraphic(chart, out, VectorGraphicsEncoder.VectorGraphicsFormat.SVG);
        return out.toByteArray();
    }

    /**
     * The chart as an {@code <svg>} element for inlining into HTML: the document without its XML
     * declaration and doctype, with {@code class="chart"}, a {@code viewBox} so that it scales, and a
     * {@code <title>} (the chart's title) and {@code <desc>} ({@code "series: "} and the series names,
     * separated by {@code "; "}): XChart draws every letter as a path, so these are the chart's only
     * text for search and screen readers.
     */
    public static String inlineSvg(Chart<?, ?> chart) throws IOException {
        return inlineSvg(chart, "chart");
    }

    /**
     * {@link #inlineSvg(Chart)} with its element ids (clip paths) renamed {@code idPrefix-1},
     * {@code idPrefix-2}, ... in order of appearance (XChart names them after object hash codes): the
     * output is the same on every run, and charts with different prefixes can share one page.
     */
    public static String inlineSvg(Chart<?, ?> chart, String idPrefix) throws IOException {
        String doc = new String(svgDocument(chart), StandardCharsets.UTF_8);
        int start = doc.indexOf("<svg");
        if (start < 0) throw new IOException("XChart wrote no <svg> element");
        String svg = renameIds(compactPaths(doc.substring(start).strip()), idPrefix);
        int close = svg.indexOf('>');
        String open = "<svg class=\"chart\" role=\"img\"" + svg.substring("<svg".length(), close);
        if (!open.contains("viewBox")) open += " viewBox=\"0 0 " + chart.getWidth() + " " + chart.getHeight() + "\"";
        List<String> names = new ArrayList<>();
        for (var series : chart.getSeriesCollection()) names.add(series.getName());
        return open + "><title>" + Xml.escape(chart.getTitle()) + "</title><desc>series: "
                + Xml.escape(String.join("; ", names)) + "</desc>" + svg.substring(close + 1);
    }

    private static final Pattern CLIP_ID = Pattern.compile("\\bclip\\d+\\b");

    static String renameIds(String svg, String prefix) {
        Map<String, String> ids = new LinkedHashMap<>();
        Matcher m = CLIP_ID.matcher(svg);
        StringBuilder out = new StringBuilder(svg.length());
        while (m.find()) {
            String id = ids.computeIfAbsent(m.group(), k -> prefix + "-" + (ids.size() + 1));
            m.appendReplacement(out, Matcher.quoteReplacement(id));
        }
        m.appendTail(out);
        return out.toString();
    }

    private static final Pattern PATH_DATA = Pattern.compile(" d=\"([^\"]*)\"");
    private static final Pattern DECIMAL = Pattern.compile("-?\\d+\\.\\d+");

    /**
     * Rounds the coordinates of every path's {@code d} attribute to 0.1 px (XChart draws all text as
     * glyph outlines, written with up to 9 decimals: rounding halves the page without a visible change).
     */
    static String compactPaths(String svg) {
        Matcher paths = PATH_DATA.matcher(svg);
        StringBuilder out = new StringBuilder(svg.length() / 2);
        while (paths.find()) {
            Matcher numbers = DECIMAL.matcher(paths.group(1));
            StringBuilder d = new StringBuilder(paths.group(1).length());
            while (numbers.find()) {
                long tenths = Math.round(Double.parseDouble(numbers.group()) * 10);
                String r = tenths % 10 == 0 ? Long.toString(tenths / 10)
                        : (tenths < 0 ? "-" : "") + Math.abs(tenths) / 10 + "." + Math.abs(tenths) % 10;
                numbers.appendReplacement(d, r.equals("-0") ? "0" : r);
            }
            numbers.appendTail(d);
            paths.appendReplacement(out, Matcher.quoteReplacement(" d=\"" + d + "\""));
        }
        paths.appendTail(out);
        return out.toString();
    }

    /** Writes the chart as PNG to {@code file}, atomically. */
    public static void writePng(Chart<?, ?> chart, Path file) throws IOException {
        AtomicFiles.writeBytes(file, png(chart));
    }

    /** Writes the chart as a standalone SVG document to {@code file}, atomically. */
    public static void writeSvg(Chart<?, ?> chart, Path file) throws IOException {
        AtomicFiles.writeBytes(file, svgDocument(chart));
    }

    /** The legend name of a metrics.jsonl stage; {@code method} names the {@code train} stage's method. */
    public static String seriesTitle(String stage, String method) {
        return switch (stage) {
            case "pretrain", "pretrain_base" -> "pretraining";
            case "train", "train_lora" -> methodTitle(method);
            case "lora_drop.warmup" -> "LoRA-drop warm-up (all layers)";
            case "lora_drop.train" -> "LoRA-drop (kept + shared)";
            case "full_finetune" -> "full fine-tuning";
            default -> stage.startsWith("lora_drop.") ? "LoRA-drop " + stage.substring("lora_drop.".length()) : stage;
        };
    }

    /** A human name of an adapter method key ({@code lora} → LoRA). */
    public static String methodTitle(String method) {
        return switch (method.toLowerCase(Locale.ROOT)) {
            case "lora" -> "LoRA";
            case "loraplus" -> "LoRA+";
            case "lora_fa" -> "LoRA-FA";
            case "dora" -> "DoRA";
            case "vera" -> "VeRA";
            case "lora_drop", "lora-drop" -> "LoRA-drop";
            case "full", "full_finetune" -> "full fine-tuning";
            default -> method;
        };
    }

    /**
     * The first dotted element of the names, dot included, when every name starts with it and goes on
     * after it ({@code transformer.} for GPT-2's layers), else {@code ""}: the bar labels leave it out.
     */
    static String commonPrefix(List<String> names) {
        if (names.size() < 2) return "";
        int dot = names.get(0).indexOf('.');
        if (dot < 0) return "";
        String p = names.get(0).substring(0, dot + 1);
        for (String n : names) if (!n.startsWith(p) || n.length() == p.length()) return "";
        return p;
    }

    private static void bars(CategoryChart chart, String name, List<String> names, LoraDropLayers drop,
                             LoraDropLayers.Role role, Color colour) {
        List<Double> values = new ArrayList<>();
        boolean any = false;
        for (LoraDropLayers.Layer l : drop.layers()) {
            boolean mine = l.role() == role && Double.isFinite(l.importance());
            values.add(mine ? l.importance() : 0.0);
            any |= mine;
        }
        if (!any) return;
        CategorySeries s = chart.addSeries(name, names, values);
        s.setChartCategorySeriesRenderStyle(CategorySeries.CategorySeriesRenderStyle.Bar);
        s.setFillColor(colour);
    }

    private static void style(AxesChartStyler styler) {
        styler.setChartBackgroundColor(Color.WHITE);
        styler.setPlotBackgroundColor(Color.WHITE);
        styler.setPlotBorderVisible(false);
        styler.setPlotGridLinesColor(new Color(0xE4E7EB));
        // Solid horizontal grid lines only: XChart's dashed ones are written as one small rectangle per
        // dash, which made the vertical grid of a 60-step run most of a chart's SVG.
        styler.setPlotGridLinesStroke(new BasicStroke(1f));
        styler.setPlotGridVerticalLinesVisible(false);
        styler.setLegendBorderColor(new Color(0xD9E2EC));
        styler.setChartTitleBoxVisible(false);
        styler.setAntiAlias(true);
    }

    private static String uniqueName(XYChart chart, String name) {
        String n = name;
        for (int i = 2; chart.getSeries(n) != null; i++) n = name + " (" + i + ")";
        return n;
    }
}
