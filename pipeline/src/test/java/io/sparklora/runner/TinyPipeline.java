package io.sparklora.runner;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.api.TinyBase;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A whole pipeline over {@link TinyBase}'s base and 30 of its documents, run on Spark {@code local[2]}: the tests that
 * take a method or a setting through every stage give only the sections they care about.
 */
public final class TinyPipeline {
    private static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    /** Where the run wrote, and its report. */
    public record Run(Path out, JsonNode report) {}

    private TinyPipeline() {}

    /**
     * Writes the base (seed 7) and the dataset under {@code tmp} and runs every stage of a config named {@code name} with
     * output {@code tmp/run}, data {seq_len 16, 2 partitions, validation 0.2}, {@code base: {path: …, <baseOptions>}},
     * and {@code sections} (YAML lines: adapter, train, lora_drop, evaluate, ...).
     */
    public static Run run(Path tmp, String name, String baseOptions, String... sections) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(30, 1));
        Path out = tmp.resolve("run");
        List<String> lines = new ArrayList<>(List.of(
                "name: " + name,
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + (baseOptions.isEmpty() ? "" : ", " + baseOptions) + "}",
                "data: {seq_len: 16, partitions: 2, validation_fraction: 0.2}"));
        lines.addAll(List.of(sections));
        lines.add("");
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n", lines), "test.yaml");
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            return new Run(out, new PipelineRunner(sc, cfg, QUIET).run(Set.of()));
        }
    }
}
