package io.sparklora.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.xml.sax.InputSource;

import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReportHtmlTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static final String FULL_REPORT = """
            {
              "name": "demo", "output": "runs/demo", "seconds": 150.2, "spark": {"master": "local[*]", "default_parallelism": 2},
              "tokenize": {"status": "done", "seconds": 8.1, "train_rows": 500, "validation_rows": 60, "tokens": 70000, "seq_len": 128,
                           "partitions": 2, "tokenizer_fingerprint": "ab12cd"},
              "pretrain": {"status": "done", "seconds": 40.0, "params": 600000, "steps": 150, "final_loss": 4.1},
              "train": {"status": "done", "seconds": 30.0, "method": "lora", "rounds": 40, "local_steps": 1, "sync": "gradients",
                        "trainable_params": 73728, "total_params": 700000,
                        "bytes_broadcast_per_round": 294912, "bytes_reduced_per_round": 294912, "adapter_bytes": 294912,
                        "model_bytes": 2800000, "tokens_per_second": 2500.0, "final_loss": 3.2},
              "lora_drop": {"status": "done", "seconds": 25.0, "threshold": 0.9,
                            "importance": {"transformer.h.1.attn.c_attn": 0.12, "transformer.h.0.attn.c_attn": 0.31},
                            "kept": ["transformer.h.0.attn.c_attn"], "shared": ["transformer.h.1.attn.c_attn"],
                            "trainable_params_full": 73728, "trainable_params_reduced": 40000, "param_reduction": 0.46,
                            "perplexity_full_lora": 120.5, "perplexity_lora_drop": 125.1},
              "eval": {"status": "done", "seconds": 12.0,
                       "base": {"perplexity": 600.1, "loss": 6.4, "tokens": 8000, "accuracy": 0.5},
                       "adapted": {"perplexity": 120.3, "loss": 4.79, "tokens": 8000, "accuracy": 0.93},
                       "merged": {"perplexity": 120.3, "loss": 4.79, "tokens": 8000, "accuracy": 0.93},
                       "full_finetune": {"perplexity": 110.0, "loss": 4.7, "tokens": 8000, "accuracy": 0.95},
                       "samples": [{"prompt": "Hello <script>alert('prompt')</script>",
                                    "base": "</pre><script>alert(1)</script>",
                                    "adapted": "a & b < c > d \\"quoted\\" \\u0007bell"}]}
            }
            """;

    static final String FULL_METRICS = """
            {"stage":"pretrain","step":10,"loss":5.1,"lr":0.003,"elapsed_s":3.2}
            {"stage":"pretrain","step":20,"loss":4.6,"lr":0.003,"elapsed_s":6.1}
            {"stage":"pretrain","step":30,"loss":4.1,"lr":0.003,"elapsed_s":9.0}
            {"stage":"train","round":1,"step":1,"loss":4.9,"tokens_per_second":2400,"bytes_broadcast":294912,"bytes_reduced":294912,"elapsed_s":1.0}
            {"stage":"train","round":2,"step":2,"loss":4.6,"tokens_per_second":2450,"bytes_broadcast":294912,"bytes_reduced":294912,"elapsed_s":2.0}
            {"stage":"train","round":3,"step":3,"loss":4.4,"tokens_per_second":2400,"bytes_broadcast":294912,"bytes_reduced":294912,"elapsed_s":5.0}
            {"stage":"lora_drop.warmup","round":1,"loss":4.8}
            {"stage":"lora_drop.warmup","round":2,"loss":4.6}
            {"stage":"lora_drop.train","round":4,"loss":4.5}
            {"stage":"lora_drop.train","round":5,"loss":4.3}
            {"stage":"full_finetune","step":4,"loss":4.4}
            {"stage":"full_finetune","step":5,"loss":4.2}
            """;

    static JsonNode json(String text) {
        try {
            return JSON.readTree(text);
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    static List<JsonNode> lines(String text) {
        List<JsonNode> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (!line.isBlank()) out.add(json(line));
        }
        return out;
    }

    static int count(String haystack, String needle) {
        int n = 0;
        for (int i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length())) n++;
        return n;
    }

    /** Parses the page as XML: it must be well-formed, SVG and all. */
    static Document parseXml(String html) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
        f.setExpandEntityReferences(false);
        DocumentBuilder b = f.newDocumentBuilder();
        b.setErrorHandler(null);
        return b.parse(new InputSource(new StringReader(html)));
    }

    static List<String> svgs(String html) {
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile("<svg[\\s>].*?</svg>", Pattern.DOTALL).matcher(html);
        while (m.find()) out.add(m.group());
        return out;
    }

    @Test
    void fullExampleHasOneSvgPerChart() throws Exception {
        String html = ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS));
        // Pretraining loss, adapter training loss (LoRA + LoRA-drop + full fine-tuning), LoRA-drop importance.
        assertEquals(3, count(html, "<svg "), html);
        assertEquals(3, count(html, "</svg>"));
        assertEquals(3, svgs(html).size());
        for (String svg : svgs(html)) assertDoesNotThrow(() -> parseXml(svg), svg);
        assertFalse(html.contains("could not be rendered"));
        for (String section : List.of("id=\"stages\"", "id=\"training\"", "id=\"lora-drop\"", "id=\"evaluation\"")) {
            assertTrue(html.contains(section), section);
        }
        // Each chart names itself and its series (XChart draws letters as paths: these are its only text).
        assertTrue(svgs(html).get(0).contains("<title>Pretraining loss</title><desc>series: pretraining</desc>"));
        assertTrue(svgs(html).get(1).contains("<title>Adapter training loss</title><desc>series: LoRA; "
                + "LoRA-drop warm-up (all layers); LoRA-drop (kept + shared); full fine-tuning</desc>"), svgs(html).get(1));
        assertTrue(svgs(html).get(2).contains("<title>LoRA-drop: importance per layer</title>"));
        // Every chart scales with the page and has ids of its own.
        for (int i = 0; i < 3; i++) {
            String svg = svgs(html).get(i);
            assertTrue(svg.startsWith("<svg class=\"chart\""), svg.substring(0, 200));
            assertTrue(svg.contains("viewBox=\""));
            assertTrue(svg.contains("id=\"chart" + (i + 1) + "-1\""), "ids renumbered per chart");
        }
        // Title: run name and total time.
        assertTrue(html.contains("<title>spark-lora · demo · 2 min 30 s</title>"), html);
        assertTrue(html.contains("<span class=\"run\">demo</span>"));
    }

    @Test
    void pageIsWellFormedXml() throws Exception {
        String html = ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS));
        Document doc = parseXml(html);
        assertEquals("html", doc.getDocumentElement().getTagName());
        assertEquals(3, doc.getElementsByTagName("svg").getLength());
        assertTrue(html.startsWith("<!DOCTYPE html>"));
        // Self-contained: nothing is loaded from elsewhere.
        String withoutNamespaces = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
                .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
        for (String external : List.of("<script", "<link", "<image", "<img", "src=", "@import", "http://", "https://")) {
            assertFalse(withoutNamespaces.contains(external), external);
        }
        // url(...) only for the charts' own clip paths.
        assertEquals(count(html, "url("), count(html, "url(#chart"));
        assertEquals(html, ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS)), "the same page on every render");
        assertTrue(html.length() < 400_000, "three charts stay under 400 KB: " + html.length());
    }

    @Test
    void keptAndSharedLayersHaveTheirColours() {
        String html = ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS));
        String bars = svgs(html).get(2);
        assertTrue(bars.contains("fill:rgb(0,114,178)"), "kept bars in the kept colour");
        assertTrue(bars.contains("fill:rgb(230,159,0)"), "shared bars in the shared colour");
        assertTrue(bars.contains("<desc>series: kept (own LoRA); shared LoRA; cumulative share; threshold 90.0%</desc>"), bars);
        assertEquals("#0072B2", ReportHtml.KEPT_COLOUR);
        assertEquals("#E69F00", ReportHtml.SHARED_COLOUR);
        // The layer table, largest first: h.0 (0.31, kept) before h.1 (0.12, shared), though the report lists h.1 first.
        int table = html.indexOf("<table class=\"layers\">");
        int kept = html.indexOf("<code>transformer.h.0.attn.c_attn</code>", table);
        int shared = html.indexOf("<code>transformer.h.1.attn.c_attn</code>", table);
        assertTrue(table > 0 && kept > table && shared > kept, html);
        assertTrue(html.indexOf("</span>kept</td>", kept) < shared, "h.0 marked kept");
        assertTrue(html.indexOf("</span>shared</td>", shared) > shared, "h.1 marked shared");
        // Cumulative share: 0.31 / 0.43 then 100%.
        assertTrue(html.contains("72.1%"), html);
    }

    @Test
    void untrustedTextIsEscaped() throws Exception {
        ObjectNode report = (ObjectNode) json(FULL_REPORT);
        report.put("name", "<b>bold</b> & co");
        ((ObjectNode) report.get("pretrain")).put("status", "failed").put("error", "boom <img src=x onerror=alert(1)>");
        List<JsonNode> metrics = lines(FULL_METRICS);
        metrics.add(json("{\"stage\":\"<script>evil</script>\",\"step\":1,\"loss\":2.0}"));
        metrics.add(json("{\"stage\":\"<script>evil</script>\",\"step\":2,\"loss\":1.5}"));
        String html = ReportHtml.render(report, metrics);

        assertFalse(html.toLowerCase().contains("<script"), "unescaped <script>");
        assertFalse(html.contains("<img"));
        assertFalse(html.contains("<b>bold"));
        assertTrue(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), html);
        assertTrue(html.contains("Hello &lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;"));
        assertTrue(html.contains("a &amp; b &lt; c &gt; d &quot;quoted&quot; \uFFFDbell"), "control characters replaced");
        assertTrue(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
        assertTrue(html.contains("boom &lt;img src=x onerror=alert(1)&gt;"));
        assertTrue(html.contains("<desc>series: &lt;script&gt;evil&lt;/script&gt;</desc>"), "unknown stage's series named, escaped");
        assertEquals(4, count(html, "</svg>"), "the unknown stage gets a chart of its own");
        parseXml(html);
    }

    @Test
    void theSynchronisedRowNamesANonDefaultAggregateAndOuterOptimizer() throws Exception {
        String plain = ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS));
        assertTrue(plain.contains("<th scope=\"row\">synchronised</th><td>gradients</td>"), "the default row is unchanged");
        ObjectNode report = (ObjectNode) json(FULL_REPORT);
        ((ObjectNode) report.get("train")).put("sync", "parameters").put("aggregate", "svd").put("outer_optimizer", "none");
        String svd = ReportHtml.render(report, lines(FULL_METRICS));
        assertTrue(svd.contains("<th scope=\"row\">synchronised</th><td>parameters, aggregate svd</td>"), svd);
        ((ObjectNode) report.get("train")).put("aggregate", "mean").put("outer_optimizer", "sgd(lr=0.7,momentum=0.9,nesterov)");
        String diloco = ReportHtml.render(report, lines(FULL_METRICS));
        assertTrue(diloco.contains("<td>parameters, outer sgd(lr=0.7,momentum=0.9,nesterov)</td>"), diloco);
    }

    @Test
    void onlyTokenizeRendersWithoutCharts() throws Exception {
        JsonNode report = json("""
                {"name": "tok", "tokenize": {"status": "done", "seconds": 8.1, "train_rows": 500, "tokens": 70000,
                 "tokenizer_fingerprint": "ab12"}}
                """);
        String html = assertDoesNotThrow(() -> ReportHtml.render(report, List.of()));
        assertEquals(0, count(html, "<svg"), "no empty charts");
        assertTrue(html.contains("Tokenization"));
        assertTrue(html.contains("train rows 500"));
        assertTrue(html.contains("tokens 70,000"));
        assertTrue(html.contains("total time not recorded"));
        for (String section : List.of("id=\"training\"", "id=\"lora-drop\"", "id=\"evaluation\"")) {
            assertFalse(html.contains(section), section);
        }
        parseXml(html);

        // Metrics without any loss draw nothing either.
        String withMetrics = ReportHtml.render(report, lines("""
                {"stage":"tokenize","rows":100}
                {"stage":"train","round":1}
                """));
        assertEquals(0, count(withMetrics, "<svg"));
    }

    @Test
    void missingAndMistypedFieldsNeverThrow() throws Exception {
        List<String> reports = List.of(
                "{}",
                "[]",
                "null",
                "{\"train\": {\"status\": \"failed\", \"error\": \"OutOfMemoryError\\n at line 2\"}}",
                "{\"lora_drop\": {\"importance\": {\"a\": \"x\", \"b\": null, \"c\": 1}, \"kept\": \"not a list\"}}",
                "{\"lora_drop\": {\"importance\": {\"a\": 0, \"b\": 0}, \"threshold\": 7}}",
                "{\"eval\": {\"base\": {\"perplexity\": \"NaN\"}, \"adapted\": {\"perplexity\": null}, \"samples\": [\"plain\", null, 3]}}",
                "{\"seconds\": \"abc\", \"spark\": 3, \"name\": {\"x\": 1}, \"train\": {\"adapter_bytes\": 0, \"model_bytes\": 0}}",
                "{\"pretrain\": {\"status\": \"done\"}, \"eval\": {\"status\": \"skipped\"}}");
        List<JsonNode> weirdMetrics = lines("""
                {"stage":"pretrain","step":"ten","loss":"NaN"}
                {"loss":3.0}
                {"stage":"train","loss":null}
                [1,2,3]
                """);
        weirdMetrics.add(null);
        for (String r : reports) {
            JsonNode report = json(r);
            String html = assertDoesNotThrow(() -> ReportHtml.render(report, weirdMetrics), r);
            assertFalse(html.contains("could not be rendered"), r + "\n" + html);
            parseXml(html);
            String none = assertDoesNotThrow(() -> ReportHtml.render(report, null), r);
            parseXml(none);
        }
        assertDoesNotThrow(() -> ReportHtml.render(null, null));
    }

    @Test
    void numbersAreFormatted() {
        String html = ReportHtml.render(json(FULL_REPORT), lines(FULL_METRICS));
        assertTrue(html.contains("tokens 70,000"), "thousands separators");
        assertTrue(html.contains("73,728 of 700,000 (10.5%)"), "trainable vs total params and %");
        assertTrue(html.contains("288 KiB <span class=\"note\">(294,912 bytes)</span>"), "bytes per round");
        assertTrue(html.contains("2.67 MiB"), "model bytes");
        assertTrue(html.contains("9.5× smaller"), "adapter / model ratio stated");
        assertTrue(html.contains("10.5% of the model"));
        assertTrue(html.contains("2,500 tokens/s"));
        assertTrue(html.contains("<strong>46.0%</strong>"), "parameter reduction as %");
        assertTrue(html.contains("full LoRA 120.50 vs LoRA-drop 125.10 (+3.8%)"));
        assertTrue(html.contains("<td class=\"num\">600.10</td>"), "perplexity with 2 decimals");
        assertTrue(html.contains("<td class=\"num\">4.7900</td>"), "loss with 4 decimals");
        assertTrue(html.contains("<td class=\"num\">8,000</td>"), "tokens");
        assertTrue(html.contains("<td class=\"num\">93.0%</td>"), "accuracy as %");
        assertTrue(html.contains("<td class=\"num\">-80.0%</td>"), "adapted vs base");
        assertTrue(html.contains("<td class=\"num\">8.1 s</td>"), "stage seconds");
        assertTrue(html.contains("The adapted and merged models agree, as they must (identical perplexity)"));
        assertTrue(html.contains("default parallelism 2"));
    }

    @Test
    void evaluationColumnsFollowTheData() {
        JsonNode report = json("""
                {"evaluate": {"status": "done", "base": {"perplexity": 606.7, "loss": 6.408, "tokens": 30841},
                 "adapted": {"perplexity": 540.28, "loss": 6.292, "tokens": 30841},
                 "merged": {"perplexity": 540.29, "loss": 6.292, "tokens": 30841}}}
                """);
        String html = ReportHtml.render(report, List.of());
        assertTrue(html.contains("id=\"evaluation\""), "the alias 'evaluate' is the eval stage");
        assertFalse(html.contains(">accuracy<"), "no accuracy column without accuracy");
        assertTrue(html.contains("<td class=\"num\">30,841</td>"));
        assertFalse(html.contains("full fine-tuning"));
        assertFalse(html.contains("id=\"samples\""));
    }

    @Test
    void aSeveralRankAdapterGetsItsLossByRankChartAndNoTableRowPerRank() {
        JsonNode report = json("""
                {"evaluate": {"adapted": {"perplexity": 20.1, "loss": 3.0},
                 "by_rank": {"1": {"loss": 3.4, "perplexity": 30.0}, "2": {"loss": 3.1, "perplexity": 22.2}, "4": {"loss": 3.0, "perplexity": 20.1}}}}
                """);
        String html = ReportHtml.render(report, List.of());
        assertTrue(html.contains("Validation loss by rank"), "the chart's caption");
        assertEquals(1, html.split("<svg", -1).length - 1, "one chart");
        assertFalse(html.contains("<td>by_rank</td>"), "the ranks are a chart, not a table row");
        String none = ReportHtml.render(json("""
                {"evaluate": {"adapted": {"perplexity": 20.1, "loss": 3.0}}}
                """), List.of());
        assertFalse(none.contains("Validation loss by rank"));
    }

    @Test
    void adaptedAndMergedDisagreementIsFlagged() {
        JsonNode report = json("""
                {"eval": {"adapted": {"perplexity": 120.3}, "merged": {"perplexity": 131.0}}}
                """);
        String html = ReportHtml.render(report, List.of());
        assertTrue(html.contains("The adapted and merged models disagree: perplexity 120.30 against 131.00"), html);
        assertFalse(html.contains("vs base"), "no relative column without a base row");
    }

    @Test
    void currentDemoReportShapeRenders() throws Exception {
        // The shape bin/spark-lora pipeline writes today: other stage names, no metrics.
        JsonNode report = json("""
                {"tokenize": {"status": "done", "seconds": 1.45, "vocab_size": 2048, "spam_blocks": 1294},
                 "pretrain_base": {"status": "done", "seconds": 32.3, "params": 675328},
                 "train_lora": {"status": "done", "seconds": 36.0, "trainable_params": 32768, "total_params": 708096,
                                "tokens_per_second": 4715.115343737638},
                 "evaluate": {"status": "done", "seconds": 6.78,
                              "base": {"loss": 6.408, "perplexity": 606.7186946895878, "tokens": 30841},
                              "adapted": {"loss": 6.292, "perplexity": 540.281284917476, "tokens": 30841},
                              "merged": {"loss": 6.292, "perplexity": 540.2812763636282, "tokens": 30841}},
                 "seconds": 76.589154348}
                """);
        String html = ReportHtml.render(report, List.of());
        assertTrue(html.contains("<td>Pretraining</td>"));
        assertTrue(html.contains("params 675,328"));
        assertTrue(html.contains("32,768 of 708,096 (4.63%)"));
        assertTrue(html.contains("4,715 tokens/s"));
        assertTrue(html.contains("1 min 17 s"));
        assertTrue(html.contains("unnamed run"));
        assertEquals(0, count(html, "<svg"));
        parseXml(html);
    }

    @Test
    void renderReportWritesTheFileAndSkipsBrokenLines(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("report.json"), FULL_REPORT);
        Files.writeString(dir.resolve("metrics.jsonl"), FULL_METRICS + "\n{\"stage\":\"train\",\"ste");
        Path html = RenderReport.render(dir);
        assertEquals(dir.resolve("report.html"), html);
        String page = Files.readString(html, StandardCharsets.UTF_8);
        assertEquals(3, count(page, "</svg>"));
        parseXml(page);

        Path onlyMetrics = Files.createDirectory(dir.resolve("only-metrics"));
        Files.writeString(onlyMetrics.resolve("metrics.jsonl"), FULL_METRICS);
        String page2 = Files.readString(RenderReport.render(onlyMetrics), StandardCharsets.UTF_8);
        assertEquals(2, count(page2, "</svg>"), "loss charts from the metrics alone");
        assertTrue(page2.contains("The report records no stage."));
    }

    @Test
    void gloraSearchShowsTheChosenStructurePerLayerAndEveryCandidate() throws Exception {
        String report = """
                {"name": "g", "glora_search": {"status": "done", "seconds": 3.0, "population": 3, "generations": 1, "steps": 2,
                  "validation_source": "validation_split", "chosen_candidate": 2, "chosen_validation_loss": 3.25,
                  "configured_validation_loss": 3.5,
                  "chosen": {"h.0.c_attn": "lora,vector,none,constant,none", "h.1.c_attn": "none,lora,vector,vector,constant"},
                  "candidates": [
                    {"generation": 0, "id": 0, "validation_loss": 3.5, "train_loss": 3.9, "executor": "driver@1", "structures": {}},
                    {"generation": 0, "id": 1, "validation_loss": "NaN", "train_loss": "NaN", "executor": "1@<2>", "structures": {}},
                    {"generation": 0, "id": 2, "validation_loss": 3.25, "train_loss": 3.8, "executor": "driver@1", "structures": {}}]},
                 "train": {"status": "done", "method": "glora"}}
                """;
        String html = ReportHtml.render(json(report), List.of());
        assertDoesNotThrow(() -> parseXml(html));
        int section = html.indexOf("<section id=\"glora-search\">");
        assertTrue(section > 0 && section < html.indexOf("<section id=\"training\">"), "its own section, before training");
        assertTrue(html.contains("<a href=\"#glora-search\">"), "the stage table links to it");
        assertTrue(html.contains("<tr><td><code>h.0.c_attn</code></td><td>lora</td><td>vector</td><td>none</td><td>constant</td><td>none</td></tr>"), html);
        assertTrue(html.contains("#2, validation loss <strong>3.2500</strong> (configured structure 3.5000)"), html);
        // best first, the diverged candidate last, the chosen one marked, executors escaped
        int c2 = html.indexOf("<tr><td class=\"num\">2</td>", section), c0 = html.indexOf("<tr><td class=\"num\">0</td>", section),
                c1 = html.indexOf("<tr><td class=\"num\">1</td>", section);
        assertTrue(c2 > 0 && c2 < c0 && c0 < c1, html);
        assertTrue(html.indexOf("<strong>chosen</strong>", c2) < c0);
        assertTrue(html.contains("1@&lt;2&gt;"));
    }
}
