package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.XYChart;

import javax.imageio.ImageIO;
import java.awt.GraphicsEnvironment;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.sparklora.report.ReportHtmlTest.FULL_METRICS;
import static io.sparklora.report.ReportHtmlTest.FULL_REPORT;
import static io.sparklora.report.ReportHtmlTest.json;
import static io.sparklora.report.ReportHtmlTest.lines;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ChartsTest {

    @Test
    void lossCurvesHaveOneLinePerAdapterStageWithItsPoints() {
        XYChart chart = Charts.lossCurves(lines(FULL_METRICS), json(FULL_REPORT));
        assertNotNull(chart);
        List<String> names = new ArrayList<>();
        chart.getSeriesCollection().forEach(s -> names.add(s.getName()));
        assertEquals(List.of("LoRA", "LoRA-drop warm-up (all layers)", "LoRA-drop (kept + shared)", "full fine-tuning"), names,
                "pretraining is not adapter training");
        assertArrayEquals(new double[] {1, 2, 3}, chart.getSeries("LoRA").getXData());
        assertArrayEquals(new double[] {4.9, 4.6, 4.4}, chart.getSeries("LoRA").getYData());
        assertArrayEquals(new double[] {1, 2}, chart.getSeries("LoRA-drop warm-up (all layers)").getXData(), "rounds when no step");
        assertEquals("step / round", chart.getXAxisTitle());
        assertEquals("loss", chart.getYAxisTitle());
        // The method of the train stage names its line.
        XYChart dora = Charts.lossCurves(lines(FULL_METRICS), json("{\"train\": {\"method\": \"dora\"}}"));
        assertNotNull(dora.getSeries("DoRA"));
    }

    @Test
    void chartsWithoutDataAreNull() {
        assertNull(Charts.lossCurves(lines("{\"stage\":\"pretrain\",\"step\":1,\"loss\":3.0}"), null));
        assertNull(Charts.lossCurves(List.of()));
        assertNull(Charts.importance(json("{\"train\": {}}")));
        assertNull(Charts.importance(null));
    }

    @Test
    void importanceBarsAreSortedColouredByRoleWithCumulativeShareAndThreshold() {
        CategoryChart chart = Charts.importance(json(FULL_REPORT));
        assertNotNull(chart);
        CategorySeries kept = chart.getSeries("kept (own LoRA)");
        CategorySeries shared = chart.getSeries("shared LoRA");
        assertNull(chart.getSeries("role not recorded"), "no role-less layer, no such series");
        List<Object> categories = new ArrayList<>();
        kept.getXData().forEach(categories::add);
        assertEquals(List.of("h.0.attn.c_attn", "h.1.attn.c_attn"), categories, "largest first, shared prefix left out");
        assertEquals("layer (transformer.…), largest importance first", chart.getXAxisTitle());
        assertArrayEquals(new double[] {0.31, 0}, kept.getYData());
        assertArrayEquals(new double[] {0, 0.12}, shared.getYData());
        assertEquals(Charts.KEPT, kept.getFillColor());
        assertEquals(Charts.SHARED, shared.getFillColor());
        double[] cumulative = chart.getSeries("cumulative share").getYData();
        assertEquals(0.31 / 0.43, cumulative[0], 1e-12);
        assertEquals(1.0, cumulative[1], 1e-12);
        assertArrayEquals(new double[] {0.9, 0.9}, chart.getSeries("threshold 90.0%").getYData());
        assertEquals(1, chart.getSeries("cumulative share").getYAxisGroup(), "shares on the second axis");
        // The stage object itself works as well as the whole report.
        assertNotNull(Charts.importance(json(FULL_REPORT).get("lora_drop")).getSeries("kept (own LoRA)"));
    }

    @Test
    void layersWithoutShareOrRoleStillDraw() {
        CategoryChart chart = Charts.importance(json("{\"lora_drop\": {\"importance\": {\"a\": 0, \"b\": 0}, \"threshold\": 0.9}}"));
        assertNotNull(chart.getSeries("role not recorded"));
        assertNull(chart.getSeries("cumulative share"), "no positive total, no shares");
        assertNull(chart.getSeries("threshold 90.0%"));
    }

    @Test
    void pngRendersHeadless() throws Exception {
        byte[] png = Charts.png(Charts.lossCurves(lines(FULL_METRICS)));
        assertTrue(GraphicsEnvironment.isHeadless());
        BufferedImage image = ImageIO.read(new ByteArrayInputStream(png));
        assertEquals(Charts.WIDTH, image.getWidth());
        assertEquals(Charts.HEIGHT, image.getHeight());
    }

    @Test
    void renderReportWritesThePngsNamedAfterTheRun(@TempDir Path dir) throws Exception {
        Path run = Files.createDirectory(dir.resolve("demo"));
        Files.writeString(run.resolve("report.json"), FULL_REPORT);
        Files.writeString(run.resolve("metrics.jsonl"), FULL_METRICS);
        Path out = dir.resolve("images");
        List<Path> written = RenderReport.writePngs(run, out);
        assertEquals(List.of(out.resolve("demo-loss-curves.png"), out.resolve("demo-lora-drop-importance.png")), written);
        for (Path p : written) assertNotNull(ImageIO.read(p.toFile()), p.toString());
    }

    @Test
    void commonPrefixIsTheSharedFirstElement() {
        assertEquals("transformer.", Charts.commonPrefix(List.of("transformer.h.0.mlp.c_fc", "transformer.h.1.attn.c_attn")));
        assertEquals("transformer.", Charts.commonPrefix(List.of("transformer.h.0", "transformer.h.1")));
        assertEquals("", Charts.commonPrefix(List.of("a.b", "a.")), "a name would become empty");
        assertEquals("", Charts.commonPrefix(List.of("only.one")));
        assertEquals("", Charts.commonPrefix(List.of("ab.c", "ax.c")));
    }

    @Test
    void xLabelsAreRoundMultiples() {
        assertEquals(0.5, Charts.labelStride(0.4));
        assertEquals(2, Charts.labelStride(1.5));
        assertEquals(10, Charts.labelStride(7.5), "60 steps / 8 → every 10th");
        assertEquals(20, Charts.labelStride(18.75), "150 steps / 8 → every 20th");
        assertEquals(1, Charts.labelStride(0));
        XYChart chart = Charts.lossCurves(lines(FULL_METRICS));
        assertEquals("1", chart.getStyler().getxAxisTickLabelsFormattingFunction().apply(1.0));
        assertEquals("", chart.getStyler().getxAxisTickLabelsFormattingFunction().apply(1.5));
    }

    @Test
    void pathCoordinatesAreRoundedToATenth() {
        assertEquals("<path d=\"M-9.1,-1 L0,-3.1 Q12.3,4 0.1,0\" style=\"x:1.2345\"/>",
                Charts.compactPaths("<path d=\"M-9.125,-1.015625 L-0.0,-3.109375 Q12.25,4.0 0.0625,0\" style=\"x:1.2345\"/>"));
    }
}
