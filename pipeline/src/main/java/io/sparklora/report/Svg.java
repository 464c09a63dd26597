package io.sparklora.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * SVG markup primitives shared by the charts: the root element, text, coordinates and the legend.
 * Every piece of text passes through {@link Xml#escape}. Text widths are estimated from the character
 * count (no font metrics offline), generously, so that labels do not collide.
 */
final class Svg {

    static final String FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
    static final double TICK_FONT = 11;
    static final double LABEL_FONT = 12;
    private static final double LEGEND_ROW = 18;
    private static final double LEGEND_SWATCH = 22;

    /** How a legend entry is drawn: a short line (a series), a box (bars) or a dashed line (a reference). */
    enum Swatch { LINE, BOX, DASHED }

    record LegendEntry(String label, String colour, String dash, Swatch swatch) {
    }

    private Svg() {
    }

    /** A coordinate with at most one decimal, always with a point (never a locale's comma). */
    static String num(double v) {
        if (!Double.isFinite(v)) return "0";
        double r = Math.round(v * 10) / 10.0;
        if (r == Math.rint(r)) return Long.toString((long) r);
        return String.format(Locale.ROOT, "%.1f", r);
    }

    /** An estimate of the rendered width of {@code text} at {@code fontSize} pixels in a sans-serif font. */
    static double textWidth(String text, double fontSize) {
        return (text == null ? 0 : text.codePointCount(0, text.length())) * fontSize * 0.6;
    }

    /** Shortens {@code text} to {@code maxChars} by dropping its start (the end of a module name says most). */
    static String keepEnd(String text, int maxChars) {
        if (text == null) return "";
        if (text.length() <= maxChars) return text;
        return "…" + text.substring(text.length() - (maxChars - 1));
    }

    static void open(StringBuilder out, double width, double height, String title) {
        out.append("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\"")
                .append(" width=\"").append(num(width)).append("\" height=\"").append(num(height)).append('"')
                .append(" viewBox=\"0 0 ").append(num(width)).append(' ').append(num(height)).append('"')
                .append(" aria-label=\"").append(Xml.escape(title)).append('"')
                .append(" font-family=\"").append(FONT).append("\" font-size=\"").append(num(TICK_FONT)).append('"')
                .append(" fill=\"").append(Palette.TEXT).append("\">\n");
        out.append("<title>").append(Xml.escape(title)).append("</title>\n");
        out.append("<rect x=\"0\" y=\"0\" width=\"").append(num(width)).append("\" height=\"").append(num(height))
                .append("\" fill=\"#ffffff\"/>\n");
    }

    static void close(StringBuilder out) {
        out.append("</svg>");
    }

    /** A text element; {@code extra} is inserted verbatim among the attributes (callers pass only constants). */
    static void text(StringBuilder out, double x, double y, String anchor, double size, String fill, String content,
                     String extra) {
        out.append("<text x=\"").append(num(x)).append("\" y=\"").append(num(y)).append('"');
        if (anchor != null && !anchor.equals("start")) out.append(" text-anchor=\"").append(Xml.escape(anchor)).append('"');
        if (size != TICK_FONT) out.append(" font-size=\"").append(num(size)).append('"');
        if (fill != null) out.append(" fill=\"").append(Xml.escape(fill)).append('"');
        if (extra != null && !extra.isEmpty()) out.append(' ').append(extra);
        out.append('>').append(Xml.escape(content)).append("</text>\n");
    }

    static void line(StringBuilder out, double x1, double y1, double x2, double y2, String stroke, double width,
                     String dash) {
        out.append("<line x1=\"").append(num(x1)).append("\" y1=\"").append(num(y1))
                .append("\" x2=\"").append(num(x2)).append("\" y2=\"").append(num(y2))
                .append("\" stroke=\"").append(Xml.escape(stroke)).append("\" stroke-width=\"").append(num(width)).append('"');
        if (dash != null && !dash.isEmpty()) out.append(" stroke-dasharray=\"").append(Xml.escape(dash)).append('"');
        out.append("/>\n");
    }

    /** The height the legend takes when laid out in rows no wider than {@code width}; 0 without entries. */
    static double legendHeight(List<LegendEntry> entries, double width) {
        if (entries.isEmpty()) return 0;
        return layout(entries, width).rows * LEGEND_ROW;
    }

    /** Draws the legend with its top-left corner at ({@code x}, {@code y}). */
    static void legend(StringBuilder out, List<LegendEntry> entries, double x, double y, double width) {
        if (entries.isEmpty()) return;
        Layout layout = layout(entries, width);
        out.append("<g class=\"legend\">\n");
        for (int i = 0; i < entries.size(); i++) {
            LegendEntry e = entries.get(i);
            double ex = x + layout.xs.get(i);
            double mid = y + layout.ys.get(i) + LEGEND_ROW / 2;
            switch (e.swatch()) {
                case BOX -> out.append("<rect x=\"").append(num(ex + 5)).append("\" y=\"").append(num(mid - 6))
                        .append("\" width=\"12\" height=\"12\" fill=\"").append(Xml.escape(e.colour())).append("\"/>\n");
                case LINE, DASHED -> line(out, ex, mid, ex + LEGEND_SWATCH, mid, e.colour(), 2.5,
                        e.swatch() == Swatch.DASHED && (e.dash() == null || e.dash().isEmpty()) ? "5 3" : e.dash());
            }
            text(out, ex + LEGEND_SWATCH + 6, mid + 4, "start", LABEL_FONT, null, e.label(), null);
        }
        out.append("</g>\n");
    }

    private record Layout(List<Double> xs, List<Double> ys, int rows) {
    }

    private static Layout layout(List<LegendEntry> entries, double width) {
        List<Double> xs = new ArrayList<>();
        List<Double> ys = new ArrayList<>();
        double cx = 0;
        int row = 0;
        for (LegendEntry e : entries) {
            double w = LEGEND_SWATCH + 6 + textWidth(e.label(), LABEL_FONT) + 18;
            if (cx > 0 && cx + w > width) {
                row++;
                cx = 0;
            }
            xs.add(cx);
            ys.add(row * LEGEND_ROW);
            cx += w;
        }
        return new Layout(xs, ys, row + 1);
    }
}
