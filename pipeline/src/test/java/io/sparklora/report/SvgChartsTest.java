package io.sparklora.report;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SvgChartsTest {

    private static List<SvgLineChart.Point> points(double... xy) {
        List<SvgLineChart.Point> out = new java.util.ArrayList<>();
        for (int i = 0; i < xy.length; i += 2) out.add(new SvgLineChart.Point(xy[i], xy[i + 1]));
        return out;
    }

    @Test
    void lineChartHasAxesTicksLabelsAndLegend() {
        String svg = new SvgLineChart("Loss <&>").xLabel("step").yLabel("loss")
                .series("a<b", points(0, 0, 10, 7.3))
                .series("second", points(5, 1, 2, 3, 8, Double.NaN))
                .toSvg();
        assertDoesNotThrow(() -> ReportHtmlTest.parseXml(svg));
        assertTrue(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assertTrue(svg.endsWith("</svg>"));
        assertTrue(svg.contains("<title>Loss &lt;&amp;&gt;</title>"));
        assertTrue(svg.contains(">a&lt;b</text>"), "legend text escaped");
        for (String tick : List.of(">0</text>", ">2</text>", ">4</text>", ">6</text>", ">8</text>", ">10</text>")) {
            assertTrue(svg.contains(tick), tick);
        }
        assertTrue(svg.contains(">step</text>"));
        assertTrue(svg.contains(">loss</text>"));
        assertEquals(2, ReportHtmlTest.count(svg, "<polyline"));
        assertTrue(svg.contains("stroke-dasharray=\"6 3\""), "second series is dashed");
    }

    @Test
    void chartsWithoutDataAreEmpty() {
        assertTrue(new SvgLineChart("x").isEmpty());
        assertEquals("", new SvgLineChart("x").series("nan", points(1, Double.NaN)).toSvg());
        assertEquals("", new SvgBarChart("x").bar("nan", Double.NaN, null).toSvg());
        String single = new SvgLineChart("one").series("s", points(3, 4)).toSvg();
        assertFalse(single.contains("<polyline"));
        assertTrue(single.contains("<circle"), "a single point is still visible");
    }

    @Test
    void barChartIsAParetoChartWhenAsked() {
        String svg = new SvgBarChart("Importance").yLabel("importance")
                .bar("transformer.h.0.attn.c_attn", 0.31, Palette.KEPT)
                .bar("<evil>", 0.12, Palette.SHARED)
                .bar("model.layers.23.self_attn.q_proj.very.long.module.name", 0.05, null)
                .legend("kept", Palette.KEPT).legend("shared", Palette.SHARED)
                .overlay("cumulative", new double[] {0.65, 0.9, 1.0})
                .threshold(0.9, "threshold 90%")
                .toSvg();
        assertDoesNotThrow(() -> ReportHtmlTest.parseXml(svg));
        assertTrue(svg.contains("&lt;evil&gt;"));
        assertFalse(svg.contains("<evil>"));
        assertTrue(svg.contains(">100%</text>"), "right-hand percentage axis");
        assertTrue(svg.contains(">…"), "long labels shortened from the start");
        assertTrue(svg.contains("<title>model.layers.23.self_attn.q_proj.very.long.module.name</title>"), "full label kept as tooltip");
        assertEquals(3, ReportHtmlTest.count(svg, "<rect x=\"") - 3, "3 bars besides background and 2 legend boxes");
    }

    @Test
    void longSeriesAreThinnedButKeepTheirSpikes() {
        List<SvgLineChart.Point> pts = new java.util.ArrayList<>();
        for (int step = 1; step <= 100_000; step++) pts.add(new SvgLineChart.Point(step, step == 50_000 ? 97 : 4 + 1.0 / step));
        String svg = new SvgLineChart("long").series("train", pts).toSvg();
        assertTrue(svg.length() < 100_000, "SVG of " + svg.length() + " characters");
        assertTrue(svg.contains(">100</text>"), "the spike still sets the y axis");
        String polyline = svg.replaceAll("(?s).*<polyline[^>]* points=\"([^\"]*)\".*", "$1");
        double top = Double.MAX_VALUE;
        for (String xy : polyline.split(" ")) top = Math.min(top, Double.parseDouble(xy.split(",")[1]));
        assertTrue(svg.contains("," + Svg.num(top) + " "), "the spike is drawn");
        assertTrue(top < 60, "the spike reaches near the top of the plot, y=" + top);
        assertFalse(svg.contains("<circle"), "no markers on long series");
    }

    @Test
    void manyBarsWidenTheChart() {
        SvgBarChart chart = new SvgBarChart("many");
        for (int i = 0; i < 100; i++) chart.bar("layer." + i, 100 - i, Palette.KEPT);
        String svg = chart.toSvg();
        assertDoesNotThrow(() -> ReportHtmlTest.parseXml(svg));
        double width = Double.parseDouble(svg.replaceAll("(?s).*?width=\"([0-9.]+)\".*", "$1"));
        assertTrue(width >= 100 * 16, "at least 16 px per bar, got " + width);
    }
}
