package io.sparklora.report;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * A line chart as a self-contained SVG element: one polyline per series, x and y axes with round
 * ticks ({@link NiceScale}), light grid lines, axis labels and a legend above the plot. Points that are
 * not finite are left out; a chart without any point is {@linkplain #isEmpty() empty} and should not be
 * drawn. Each series' colour comes with its own dash pattern, so it still reads in black and white.
 *
 * <pre>{@code
 * String svg = new SvgLineChart("Pretraining loss").xLabel("step").yLabel("loss")
 *         .series("pretrain", points).toSvg();
 * }</pre>
 */
public final class SvgLineChart {

    /** One data point. */
    public record Point(double x, double y) {
    }

    private record Series(String name, List<Point> points) {
    }

    private static final int MAX_TICKS = 6;
    private static final int MARKER_LIMIT = 40;

    private final String title;
    private final List<Series> series = new ArrayList<>();
    private String xLabel = "";
    private String yLabel = "";
    private double width = 720;
    private double plotHeight = 260;

    public SvgLineChart(String title) {
        this.title = title == null ? "" : title;
    }

    public SvgLineChart xLabel(String label) {
        this.xLabel = label == null ? "" : label;
        return this;
    }

    public SvgLineChart yLabel(String label) {
        this.yLabel = label == null ? "" : label;
        return this;
    }

    /** The SVG's width and the height of its plot area, in pixels (the SVG scales down to fit its container). */
    public SvgLineChart size(double width, double plotHeight) {
        this.width = Math.max(200, width);
        this.plotHeight = Math.max(80, plotHeight);
        return this;
    }

    /** Adds a series; its non-finite points are dropped and the rest are drawn in order of x. */
    public SvgLineChart series(String name, List<Point> points) {
        List<Point> kept = new ArrayList<>();
        if (points != null) {
            for (Point p : points) {
                if (p != null && Double.isFinite(p.x()) && Double.isFinite(p.y())) kept.add(p);
            }
        }
        kept.sort(Comparator.comparingDouble(Point::x)); // stable: equal x keep their order
        if (!kept.isEmpty()) series.add(new Series(name == null ? "" : name, kept));
        return this;
    }

    /** Whether there is nothing to draw. */
    public boolean isEmpty() {
        return series.isEmpty();
    }

    /** The chart as an {@code <svg>} element; an empty chart gives an empty string. */
    public String toSvg() {
        if (isEmpty()) return "";
        double xLo = Double.POSITIVE_INFINITY, xHi = Double.NEGATIVE_INFINITY;
        double yLo = Double.POSITIVE_INFINITY, yHi = Double.NEGATIVE_INFINITY;
        boolean wholeX = true;
        for (Series s : series) {
            for (Point p : s.points()) {
                xLo = Math.min(xLo, p.x());
                xHi = Math.max(xHi, p.x());
                yLo = Math.min(yLo, p.y());
                yHi = Math.max(yHi, p.y());
                wholeX &= p.x() == Math.rint(p.x());
            }
        }
        NiceScale xs = wholeX ? NiceScale.ofIntegers(xLo, xHi, MAX_TICKS) : NiceScale.of(xLo, xHi, MAX_TICKS);
        NiceScale ys = NiceScale.of(yLo, yHi, MAX_TICKS);

        List<Svg.LegendEntry> legend = new ArrayList<>();
        for (int i = 0; i < series.size(); i++) {
            legend.add(new Svg.LegendEntry(series.get(i).name(), Palette.seriesColour(i), Palette.seriesDash(i),
                    Svg.Swatch.LINE));
        }
        double yTickWidth = 0;
        for (double t : ys.ticks()) yTickWidth = Math.max(yTickWidth, Svg.textWidth(ys.label(t), Svg.TICK_FONT));
        double left = 12 + (yLabel.isEmpty() ? 0 : Svg.LABEL_FONT + 8) + yTickWidth + 8;
        double right = 16 + Svg.textWidth(xs.label(xs.max()), Svg.TICK_FONT) / 2;
        double legendHeight = Svg.legendHeight(legend, width - left - right);
        double top = 10 + (legendHeight > 0 ? legendHeight + 8 : 0);
        double bottom = 22 + (xLabel.isEmpty() ? 0 : Svg.LABEL_FONT + 10);
        double plotWidth = width - left - right;
        double height = top + plotHeight + bottom;

        StringBuilder out = new StringBuilder(4096);
        Svg.open(out, width, height, title);
        Svg.legend(out, legend, left, 8, plotWidth);

        // Grid and ticks.
        out.append("<g class=\"axes\">\n");
        for (double t : ys.ticks()) {
            double y = top + plotHeight * (1 - ys.fraction(t));
            Svg.line(out, left, y, left + plotWidth, y, Palette.GRID, 1, null);
            Svg.text(out, left - 6, y + 4, "end", Svg.TICK_FONT, Palette.MUTED, ys.label(t), null);
        }
        for (double t : xs.ticks()) {
            double x = left + plotWidth * xs.fraction(t);
            Svg.line(out, x, top, x, top + plotHeight, Palette.GRID, 1, null);
            Svg.line(out, x, top + plotHeight, x, top + plotHeight + 4, Palette.AXIS, 1, null);
            Svg.text(out, x, top + plotHeight + 16, "middle", Svg.TICK_FONT, Palette.MUTED, xs.label(t), null);
        }
        Svg.line(out, left, top + plotHeight, left + plotWidth, top + plotHeight, Palette.AXIS, 1, null);
        Svg.line(out, left, top, left, top + plotHeight, Palette.AXIS, 1, null);
        if (!xLabel.isEmpty()) {
            Svg.text(out, left + plotWidth / 2, height - 8, "middle", Svg.LABEL_FONT, Palette.TEXT, xLabel, null);
        }
        if (!yLabel.isEmpty()) {
            double cx = 12 + Svg.LABEL_FONT / 2, cy = top + plotHeight / 2;
            out.append("<text x=\"").append(Svg.num(cx)).append("\" y=\"").append(Svg.num(cy))
                    .append("\" text-anchor=\"middle\" font-size=\"").append(Svg.num(Svg.LABEL_FONT))
                    .append("\" transform=\"rotate(-90 ").append(Svg.num(cx)).append(' ').append(Svg.num(cy))
                    .append(")\">").append(Xml.escape(yLabel)).append("</text>\n");
        }
        out.append("</g>\n");

        // Series.
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            String colour = Palette.seriesColour(i);
            out.append("<g class=\"series\">\n<title>").append(Xml.escape(s.name())).append("</title>\n");
            List<Point> drawn = thin(s.points(), xs, (int) Math.ceil(plotWidth));
            if (drawn.size() > 1) {
                out.append("<polyline fill=\"none\" stroke=\"").append(colour)
                        .append("\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"");
                String dash = Palette.seriesDash(i);
                if (!dash.isEmpty()) out.append(" stroke-dasharray=\"").append(dash).append('"');
                out.append(" points=\"");
                boolean first = true;
                for (Point p : drawn) {
                    if (!first) out.append(' ');
                    first = false;
                    out.append(Svg.num(left + plotWidth * xs.fraction(p.x()))).append(',')
                            .append(Svg.num(top + plotHeight * (1 - ys.fraction(p.y()))));
                }
                out.append("\"/>\n");
            }
            if (s.points().size() <= MARKER_LIMIT) {
                for (Point p : s.points()) {
                    out.append("<circle cx=\"").append(Svg.num(left + plotWidth * xs.fraction(p.x())))
                            .append("\" cy=\"").append(Svg.num(top + plotHeight * (1 - ys.fraction(p.y()))))
                            .append("\" r=\"2.5\" fill=\"").append(colour).append("\"/>\n");
                }
            }
            out.append("</g>\n");
        }
        Svg.close(out);
        return out.toString();
    }

    /**
     * At most about four points per horizontal pixel: a long series is cut into {@code pixels} buckets
     * along x, each drawn by its first, lowest, highest and last points, so spikes survive and the SVG
     * stays small however many steps were logged.
     */
    static List<Point> thin(List<Point> points, NiceScale xs, int pixels) {
        if (points.size() <= 4L * Math.max(1, pixels)) return points;
        List<Point> out = new ArrayList<>();
        int i = 0;
        while (i < points.size()) {
            int bucket = bucket(points.get(i).x(), xs, pixels);
            int j = i;
            Point lowest = points.get(i), highest = points.get(i);
            while (j < points.size() && bucket(points.get(j).x(), xs, pixels) == bucket) {
                Point p = points.get(j);
                if (p.y() < lowest.y()) lowest = p;
                if (p.y() > highest.y()) highest = p;
                j++;
            }
            Point first = points.get(i), last = points.get(j - 1);
            out.add(first);
            // Lowest and highest in x order, so the line does not double back.
            Point a = lowest.x() <= highest.x() ? lowest : highest, b = a == lowest ? highest : lowest;
            if (a != first) out.add(a);
            if (b != first && b != a) out.add(b);
            if (last != first && last != a && last != b) out.add(last);
            i = j;
        }
        return out;
    }

    private static int bucket(double x, NiceScale xs, int pixels) {
        return (int) Math.min(pixels, Math.max(0, Math.floor(xs.fraction(x) * pixels)));
    }
}
