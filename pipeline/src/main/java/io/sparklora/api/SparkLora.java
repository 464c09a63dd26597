package io.sparklora.api;

import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The pipeline from a program or notebook, on a Spark session that already exists:
 *
 * <pre>{@code
 * SparkLora lora = SparkLora.on(spark);
 * Run run = lora.run("conf/demo.yaml");               // every stage; finished ones are skipped
 * double[] loss = run.metrics().series("train", "loss").values();
 * }</pre>
 *
 * It runs exactly what {@code spark-lora pipeline|tokenize|train|lora-drop|evaluate} runs (the CLI calls
 * this class), writes the same run directory, and never stops the session. Progress lines go to
 * {@code System.out} unless {@link #progressTo} or {@link #quiet} says otherwise. Instances are immutable
 * and cheap; the {@code with}-style methods return new ones.
 *
 * <p>Errors: a bad config or input is an {@link IllegalArgumentException} naming what and where; a stage
 * that fails is a {@link PipelineRunner.StageFailedException} naming the stage; storage errors are
 * {@link UncheckedIOException}s.
 */
public final class SparkLora {
    /**
     * Stage → the earlier stages it reads from (run first; those already complete are skipped). The order
     * of {@link PipelineRunner#STAGES} is the running order.
     */
    private static final Map<String, List<String>> NEEDS = Map.of(
            "tokenizer", List.of(),
            "tokenize", List.of("tokenizer"),
            "pretrain", List.of("tokenizer", "tokenize"),
            "glora_search", List.of("tokenizer", "tokenize", "pretrain"),
            "train", List.of("tokenizer", "tokenize", "pretrain", "glora_search"),
            "lora_drop", List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train"),
            "full_finetune", List.of("tokenizer", "tokenize", "pretrain"),
            "evaluate", List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train", "full_finetune"));

    private final JavaSparkContext sc;
    private final PrintStream progress;

    private SparkLora(JavaSparkContext sc, PrintStream progress) {
        this.sc = sc;
        this.progress = progress;
    }

    /** Uses {@code spark}'s context; the session stays the caller's (nothing here stops it). */
    public static SparkLora on(SparkSession spark) {
        return on(JavaSparkContext.fromSparkContext(spark.sparkContext()));
    }

    /** Uses an existing Java Spark context (the CLI's way in); nothing here stops it. */
    public static SparkLora on(JavaSparkContext sc) {
        return new SparkLora(sc, System.out);
    }

    /** The same, with progress lines ({@code [train] running}, step lines, summaries) written to {@code out}. */
    public SparkLora progressTo(PrintStream out) {
        return new SparkLora(sc, out == null ? new PrintStream(OutputStream.nullOutputStream()) : out);
    }

    /** The same, printing no progress lines. */
    public SparkLora quiet() {
        return progressTo(null);
    }

    /** Reads and validates a pipeline config (YAML, any Hadoop URI) with the session's Hadoop settings. */
    public PipelineConfig config(String yamlUri) {
        try {
            return PipelineConfig.read(sc.hadoopConfiguration(), yamlUri);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** Parses a pipeline config given as YAML text (handy in notebooks); errors name {@code "inline config"}. */
    public static PipelineConfig configFromYaml(String yaml) {
        return PipelineConfig.parse(yaml, "inline config");
    }

    /** Reads the config at {@code configUri} and runs every stage (see {@link #run(PipelineConfig)}). */
    public Run run(String configUri) {
        return run(config(configUri));
    }

    /**
     * Runs every enabled stage of {@code cfg} in order, skipping stages whose results are already complete
     * in {@code cfg.output}, and returns the run (its report.json, metrics.jsonl and adapter are written).
     */
    public Run run(PipelineConfig cfg) {
        return run(cfg, new String[0]);
    }

    /**
     * Runs the named stages and every earlier stage they need ({@link #withPrerequisites}); complete stages
     * are skipped. No names, or {@code "pipeline"}, means all stages. Names are the runner's
     * ({@code tokenizer, tokenize, pretrain, glora_search, train, lora_drop, full_finetune, evaluate}) or the CLI's
     * ({@code lora-drop}, {@code glora-search}); a disabled stage among them is not run.
     */
    public Run run(PipelineConfig cfg, String... stages) {
        try {
            new PipelineRunner(sc, cfg, progress).run(new LinkedHashSet<>(withPrerequisites(stages)));
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
        return Run.open(cfg.output, sc.hadoopConfiguration());
    }

    /** Opens a finished (or partly finished) run directory with the session's Hadoop settings. */
    public Run open(String runUri) {
        return Run.open(runUri, sc.hadoopConfiguration());
    }

    /**
     * The runner stages to run for {@code stages}, in running order: each named stage and the earlier ones
     * it reads from. Empty (meaning all stages) when no name is given or one is {@code "pipeline"}.
     *
     * @throws IllegalArgumentException for an unknown stage name, listing the known ones
     */
    public static List<String> withPrerequisites(String... stages) {
        Set<String> wanted = new LinkedHashSet<>();
        for (String s : stages) {
            String name = s.strip().toLowerCase(Locale.ROOT).replace('-', '_');
            if (name.equals("pipeline")) return List.of();
            if (!NEEDS.containsKey(name)) {
                throw new IllegalArgumentException("unknown stage '" + s + "'; stages: pipeline, " + String.join(", ", PipelineRunner.STAGES));
            }
            wanted.addAll(NEEDS.get(name));
            wanted.add(name);
        }
        List<String> ordered = new ArrayList<>();
        for (String s : PipelineRunner.STAGES) if (wanted.contains(s)) ordered.add(s);
        return ordered;
    }
}
