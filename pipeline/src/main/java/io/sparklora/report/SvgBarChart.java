package io.sparklora.report;

import java.util.ArrayList;
import java.util.List;

/**
 * A vertical bar chart as a self-contained SVG element: one bar per category, each in its own colour,
 * a value axis with round ticks ({@link NiceScale}) that always includes zero, category labels slanted
 * under the bars (shortened from the start when long; the full label is the bar's tooltip), and a
 * legend. Optionally a line of fractions (such as a cumulative share) over the bars, on a second axis
 * from 0 to 100% at the right, with a dashed reference line at a threshold on that axis: a Pareto chart.
 *
 * <pre>{@code
 * String svg = new SvgBarChart("Importance").yLabel("importance")
 *         .bar("h.0.attn", 0.31, Palette.KEPT).bar("h.1.attn", 0.12, Palette.SHARED)
 *         .legend("kept", Palette.KEPT).legend("shared", Palette.SHARED)
 *         .overlay("cumulative share", new double[] {0.72, 1.0}).threshold(0.9, "threshold 90%")
 *         .toSvg();
 * }</pre>
 */
public final class SvgBarChart {

    private record Bar(String label, double value, String colour) {
    }

    private static final int MAX_TICKS = 6;
    private static final int MAX_LABEL_CHARS = 32;
    private static final int VALUE_LABEL_LIMIT = 16;
    private static final double MIN_SLOT = 16;
    private static final double LABEL_ANGLE = 40;

    private final String title;
    private final List<Bar> bars = new ArrayList<>();
    private final List<Svg.LegendEntry> legend = new ArrayList<>();
    private String yLabel = "";
    private String overlayName;
    private double[] overlay;
    private String thresholdLabel;
    private double threshold = Double.NaN;
    private double width = 720;
    private double plotHeight = 240;

    public SvgBarChart(String title) {
        this.title = title == null ? "" : title;
    }

    public SvgBarChart yLabel(String label) {
        this.yLabel = label == null ? "" : label;
        return this;
    }

    /** The SVG's least width and the height of its plot area; many bars make the SVG wider. */
    public SvgBarChart size(double width, double plotHeight) {
        this.width = Math.max(200, width);
        this.plotHeight = Math.max(80, plotHeight);
        return this;
    }

    /** Adds a bar; a non-finite value is drawn as an empty slot labelled with its category. */
    public SvgBarChart bar(String label, double value, String colour) {
        bars.add(new Bar(label == null ? "" : label, value, colour == null ? Palette.NEUTRAL : colour));
        return this;
    }

    /** A legend entry for a bar colour. */
    public SvgBarChart legend(String label, String colour) {
        legend.add(new Svg.LegendEntry(label, colour, "", Svg.Swatch.BOX));
        return this;
    }

    /** A line through the bars' centres, one fraction (0 to 1) per bar, on the right-hand 0–100% axis. */
    public SvgBarChart overlay(String name, double[] fractions) {
        this.overlayName = name == null ? "" : name;
        this.overlay = fractions == null ? null : fractions.clone();
        return this;
    }

    /** A dashed horizontal line at {@code fraction} on the right-hand axis (needs an {@link #overlay}). */
    public SvgBarChart threshold(double fraction, String label) {
        this.threshold = fraction;
        this.thresholdLabel = label == null ? "" : label;
        return this;
    }

    public boolean isEmpty() {
        for (Bar b : bars) {
            if (Double.isFinite(b.value())) return false;
        }
        return true;
    }

    /** The chart as an {@code <svg>} element; a chart without a finite bar gives an empty string. */
    public String toSvg() {
        if (isEmpty()) return "";
        double lo = 0, hi = 0;
        for (Bar b : bars) {
            if (!Double.isFinite(b.value())) continue;
            lo = Math.min(lo, b.value());
            hi = Math.max(hi, b.value());
        }
        NiceScale ys = NiceScale.of(lo, hi, MAX_TICKS);
        boolean hasOverlay = overlay != null && overlay.length > 0;
        boolean hasThreshold = hasOverlay && Double.isFinite(threshold);

        List<Svg.LegendEntry> entries = new ArrayList<>(legend);
        if (hasOverlay) entries.add(new Svg.LegendEntry(overlayName, Palette.OVERLAY, "", Svg.Swatch.LINE));
        if (hasThreshold) entries.add(new Svg.LegendEntry(thresholdLabel, Palette.MARK, "5 3", Svg.Swatch.DASHED));

        double yTickWidth = 0;
        for (double t : ys.ticks()) yTickWidth = Math.max(yTickWidth, Svg.textWidth(ys.label(t), Svg.TICK_FONT));
        double left = 12 + (yLabel.isEmpty() ? 0 : Svg.LABEL_FONT + 8) + yTickWidth + 8;
        double right = hasOverlay ? 16 + Svg.textWidth("100%", Svg.TICK_FONT) + 8 : 16;
        double totalWidth = Math.max(width, left + right + bars.size() * MIN_SLOT);
        double plotWidth = totalWidth - left - right;
        double slot = plotWidth / bars.size();
        double labelFont = Math.min(Svg.TICK_FONT, Math.max(7, slot * 0.75));
        // Slanted labels hang down and to the left of their bar: leave room below, and at the left for the first ones.
        double labelDrop = 0;
        double leftNeeded = left;
        for (int i = 0; i < bars.size(); i++) {
            double w = Svg.textWidth(Svg.keepEnd(bars.get(i).label(), MAX_LABEL_CHARS), labelFont) * 0.92;
            labelDrop = Math.max(labelDrop, w * Math.sin(Math.toRadians(LABEL_ANGLE)) + labelFont);
            leftNeeded = Math.max(leftNeeded, w * Math.cos(Math.toRadians(LABEL_ANGLE)) - slot * (i + 0.5) + 4);
        }
        if (leftNeeded > left) {
            totalWidth += leftNeeded - left;
            left = leftNeeded;
        }
        double legendHeight = Svg.legendHeight(entries, plotWidth);
        double top = 10 + (legendHeight > 0 ? legendHeight + 10 : 0) + (bars.size() <= VALUE_LABEL_LIMIT ? 8 : 0);
        double bottom = 12 + labelDrop + 8;
        double height = top + plotHeight + bottom;
        double zeroY = top + plotHeight * (1 - ys.fraction(0));

        StringBuilder out = new StringBuilder(4096);
        Svg.open(out, totalWidth, height, title);
        Svg.legend(out, entries, left, 8, plotWidth);

        out.append("<g class=\"axes\">\n");
        for (double t : ys.ticks()) {
            double y = top + plotHeight * (1 - ys.fraction(t));
            Svg.line(out, left, y, left + plotWidth, y, Palette.GRID, 1, null);
            Svg.text(out, left - 6, y + 4, "end", Svg.TICK_FONT, Palette.MUTED, ys.label(t), null);
        }
        if (hasOverlay) {
            for (int p = 0; p <= 100; p += 25) {
                double y = top + plotHeight * (1 - p / 100.0);
                Svg.line(out, left + plotWidth, y, left + plotWidth + 4, y, Palette.AXIS, 1, null);
                Svg.text(out, left + plotWidth + 7, y + 4, "start", Svg.TICK_FONT, Palette.MUTED, p + "%", null);
            }
            Svg.line(out, left + plotWidth, top, left + plotWidth, top + plotHeight, Palette.AXIS, 1, null);
        }
        Svg.line(out, left, top, left, top + plotHeight, Palette.AXIS, 1, null);
        if (!yLabel.isEmpty()) {
            double cx = left - 8 - yTickWidth - 8 - Svg.LABEL_FONT / 2, cy = top + plotHeight / 2;
            out.append("<text x=\"").append(Svg.num(cx)).append("\" y=\"").append(Svg.num(cy))
                    .append("\" text-anchor=\"middle\" font-size=\"").append(Svg.num(Svg.LABEL_FONT))
                    .append("\" transform=\"rotate(-90 ").append(Svg.num(cx)).append(' ').append(Svg.num(cy))
                    .append(")\">").append(Xml.escape(yLabel)).append("</text>\n");
        }
        out.append("</g>\n");

        out.append("<g class=\"bars\">\n");
        for (int i = 0; i < bars.size(); i++) {
            Bar b = bars.get(i);
            double cx = left + slot * (i + 0.5);
            if (Double.isFinite(b.value())) {
                double y = top + plotHeight * (1 - ys.fraction(b.value()));
                double barWidth = Math.max(1, slot * 0.7);
                out.append("<rect x=\"").append(Svg.num(cx - barWidth / 2)).append("\" y=\"")
                        .append(Svg.num(Math.min(y, zeroY))).append("\" width=\"").append(Svg.num(barWidth))
                        .append("\" height=\"").append(Svg.num(Math.abs(zeroY - y))).append("\" fill=\"")
                        .append(Xml.escape(b.colour())).append("\"><title>").append(Xml.escape(b.label()))
                        .append(": ").append(Xml.escape(Fmt.number(b.value()))).append("</title></rect>\n");
                if (bars.size() <= VALUE_LABEL_LIMIT) {
                    Svg.text(out, cx, Math.min(y, zeroY) - 4, "middle", Svg.TICK_FONT, Palette.TEXT,
                            Fmt.number(b.value()), null);
                }
            }
            double ly = top + plotHeight + 6 + labelFont * 0.6;
            out.append("<text x=\"").append(Svg.num(cx)).append("\" y=\"").append(Svg.num(ly))
                    .append("\" text-anchor=\"end\" font-size=\"").append(Svg.num(labelFont))
                    .append("\" transform=\"rotate(-").append(Svg.num(LABEL_ANGLE)).append(' ').append(Svg.num(cx)).append(' ').append(Svg.num(ly))
                    .append(")\"><title>").append(Xml.escape(b.label())).append("</title>")
                    .append(Xml.escape(Svg.keepEnd(b.label(), MAX_LABEL_CHARS))).append("</text>\n");
        }
        Svg.line(out, left, zeroY, left + plotWidth, zeroY, Palette.AXIS, 1, null);
        out.append("</g>\n");

        if (hasThreshold) {
            double y = top + plotHeight * (1 - clamp01(threshold));
            out.append("<g class=\"threshold\">\n");
            Svg.line(out, left, y, left + plotWidth, y, Palette.MARK, 1.5, "5 3");
            Svg.text(out, left + plotWidth - 4, y - 5, "end", Svg.TICK_FONT, Palette.MARK, thresholdLabel, null);
            out.append("</g>\n");
        }
        if (hasOverlay) {
            out.append("<g class=\"overlay\">\n<title>").append(Xml.escape(overlayName)).append("</title>\n");
            StringBuilder points = new StringBuilder();
            int n = Math.min(overlay.length, bars.size());
            for (int i = 0; i < n; i++) {
                if (!Double.isFinite(overlay[i])) continue;
                double cx = left + slot * (i + 0.5);
                double cy = top + plotHeight * (1 - clamp01(overlay[i]));
                if (points.length() > 0) points.append(' ');
                points.append(Svg.num(cx)).append(',').append(Svg.num(cy));
                out.append("<circle cx=\"").append(Svg.num(cx)).append("\" cy=\"").append(Svg.num(cy))
                        .append("\" r=\"3\" fill=\"").append(Palette.OVERLAY).append("\"><title>")
                        .append(Xml.escape(bars.get(i).label())).append(": ").append(Fmt.percent(overlay[i]))
                        .append("</title></circle>\n");
            }
            if (points.indexOf(" ") > 0) {
                out.append("<polyline fill=\"none\" stroke=\"").append(Palette.OVERLAY)
                        .append("\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"").append(points)
                        .append("\"/>\n");
            }
            out.append("</g>\n");
        }
        Svg.close(out);
        return out.toString();
    }

    private static double clamp01(double v) {
        return Math.max(0, Math.min(1, v));
    }
}
