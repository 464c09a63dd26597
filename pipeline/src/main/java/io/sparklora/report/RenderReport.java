package io.sparklora.report;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.sparklora.util.AtomicFiles;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Re-renders a run's {@code report.html} from its {@code report.json} and {@code metrics.jsonl}:
 *
 * <pre>java -cp ... io.sparklora.report.RenderReport runs/demo [more run directories] [--png docs/images]</pre>
 *
 * Either file may be missing (the page shows what the other one has). Malformed lines of
 * metrics.jsonl, such as a last line cut short by a crash, are skipped with a warning. The page is
 * written atomically.
 */
public final class RenderReport {

    public static final String REPORT_JSON = "report.json";
    public static final String METRICS_JSONL = "metrics.jsonl";
    public static final String REPORT_HTML = "report.html";

    /** Lenient about what the pipeline may write: NaN and Infinity as numbers. */
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private RenderReport() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            System.err.println("usage: RenderReport RUN_DIR [RUN_DIR...] [--png DIR]");
            System.err.println("  re-renders RUN_DIR/report.html; with --png also writes DIR/<run>-loss-curves.png and");
            System.err.println("  DIR/<run>-lora-drop-importance.png (<run> = RUN_DIR's last path element)");
            System.exit(args.length == 0 ? 2 : 0);
        }
        List<String> runs = new ArrayList<>();
        Path pngDir = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--png")) {
                if (i + 1 >= args.length) {
                    System.err.println("--png needs a directory");
                    System.exit(2);
                }
                pngDir = Path.of(args[++i]);
            } else {
                runs.add(args[i]);
            }
        }
        int status = 0;
        for (String arg : runs) {
            Path dir = Path.of(arg);
            if (!Files.isRegularFile(dir.resolve(REPORT_JSON)) && !Files.isRegularFile(dir.resolve(METRICS_JSONL))) {
                System.err.println(dir + ": neither " + REPORT_JSON + " nor " + METRICS_JSONL + " is there");
                status = 1;
                continue;
            }
            Path html = render(dir);
            System.out.println("wrote " + html);
            if (pngDir != null) {
                for (Path png : writePngs(dir, pngDir)) System.out.println("wrote " + png);
            }
        }
        System.exit(status);
    }

    /**
     * Writes the run's charts ({@link Charts#lossCurves}, {@link Charts#importance}) as PNG files into
     * {@code outDir}, named after the run directory; a chart the run has no data for is not written.
     * Returns the files written.
     */
    public static List<Path> writePngs(Path runDir, Path outDir) throws IOException {
        JsonNode report = readReport(runDir);
        List<JsonNode> metrics = readMetrics(runDir);
        Files.createDirectories(outDir);
        String name = runDir.toAbsolutePath().normalize().getFileName().toString();
        List<Path> written = new ArrayList<>();
        var loss = Charts.lossCurves(metrics, report);
        if (loss != null) {
            Path file = outDir.resolve(name + "-loss-curves.png");
            Charts.writePng(loss, file);
            written.add(file);
        }
        var importance = report == null ? null : Charts.importance(report);
        if (importance != null) {
            Path file = outDir.resolve(name + "-lora-drop-importance.png");
            Charts.writePng(importance, file);
            written.add(file);
        }
        return written;
    }

    /** The run's parsed report.json, or {@code null} when it has none. */
    public static JsonNode readReport(Path runDir) throws IOException {
        Path reportFile = runDir.resolve(REPORT_JSON);
        return Files.isRegularFile(reportFile) ? JSON.readTree(reportFile.toFile()) : null;
    }

    /** The run's metrics.jsonl lines (see {@link #readMetrics(Reader, String)}); empty when it has none. */
    public static List<JsonNode> readMetrics(Path runDir) throws IOException {
        Path metricsFile = runDir.resolve(METRICS_JSONL);
        if (!Files.isRegularFile(metricsFile)) return List.of();
        try (BufferedReader in = Files.newBufferedReader(metricsFile, StandardCharsets.UTF_8)) {
            return readMetrics(in, metricsFile.toString());
        }
    }

    /** Renders {@code runDir/report.html} from the files beside it; returns its path. */
    public static Path render(Path runDir) throws IOException {
        JsonNode report = readReport(runDir);
        List<JsonNode> metrics = readMetrics(runDir);
        Path html = runDir.resolve(REPORT_HTML);
        AtomicFiles.writeString(html, ReportHtml.render(report, metrics));
        return html;
    }

    /**
     * The JSON objects of a metrics.jsonl stream, one a line, in order; blank lines are ignored and
     * malformed ones skipped with one warning on standard error naming {@code source}.
     */
    public static List<JsonNode> readMetrics(Reader reader, String source) throws IOException {
        BufferedReader in = reader instanceof BufferedReader b ? b : new BufferedReader(reader);
        List<JsonNode> lines = new ArrayList<>();
        int bad = 0;
        int firstBad = 0;
        int number = 0;
        for (String line; (line = in.readLine()) != null; ) {
            number++;
            if (line.isBlank()) continue;
            try {
                JsonNode node = JSON.readTree(line);
                if (node != null && node.isObject()) {
                    lines.add(node);
                    continue;
                }
            } catch (IOException e) {
                // counted below
            }
            if (bad++ == 0) firstBad = number;
        }
        if (bad > 0) {
            System.err.println("warning: " + source + ": skipped " + bad + " malformed line" + (bad == 1 ? "" : "s")
                    + " (first: line " + firstBad + ")");
        }
        return lines;
    }
}
