package io.sparklora.jobs;

import io.sparklora.api.SparkLora;
import io.sparklora.spark.SparkSetup;

import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;

import java.util.Map;

/**
 * {@code spark-lora pipeline|tokenize|train|lora-drop|evaluate --config conf/x.yaml}: runs one stage (with
 * the stages it needs, which are skipped when already complete) or the whole pipeline, on the Spark
 * master that spark-submit set, or else the one given by {@code --master} or the config.
 */
final class StageCommand {
    /** What each CLI stage does, for its --help. */
    private static final Map<String, String> SUMMARIES = Map.of(
            "pipeline", "Runs every stage of the pipeline config and writes report.json and report.html; complete stages are skipped.",
            "tokenize", "Learns or loads the tokenizer and writes the token shards (skipped when complete).",
            "train", "Trains the adapter on Spark, after the stages it needs (complete ones are skipped; training resumes from its last checkpoint).",
            "lora-drop", "LoRA-drop: ranks the adapted layers by importance and keeps those that matter, after the stages it needs.",
            "evaluate", "Evaluates base, adapted, merged and fully fine-tuned models and writes the report, after the stages it needs.");

    /** The options every stage takes: one table per stage, which parses and prints --help. */
    static Args.Spec spec(String stage) {
        return new Args.Spec(stage, SUMMARIES.get(stage),
                Args.Option.value("config", "URI", "conf/demo.yaml", "the pipeline YAML (a path or any Hadoop URI)"),
                Args.Option.value("output", "URI", "the config's output", "the run's output directory"),
                Args.Option.value("master", "URL", "spark-submit's master, else the config's spark.master", "Spark master"),
                Args.Option.flag("fresh", "delete the run's output first (nothing is skipped)"));
    }

    private StageCommand() {}

    static int run(String stage, String[] argv) throws Exception {
        Args a = spec(stage).parse(argv);
        if (!a.positional().isEmpty()) throw new Args.UsageException(stage + ": unexpected argument '" + a.positional().get(0) + "'\nusage: spark-lora " + spec(stage).synopsis());
        String configUri = a.get("config");
        PipelineConfig cfg = PipelineConfig.read(new Configuration(), configUri);
        if (a.has("output")) cfg.output = a.get("output");
        // spark-submit passes its master as a system property; only without one does the CLI or config choose
        String master = a.has("master") ? a.get("master") : System.getProperty("spark.master") != null ? null : cfg.spark.master;
        JavaSparkContext sc = SparkSetup.context("spark-lora " + stage + " (" + cfg.name + ")", master, cfg.spark.conf);
        try {
            ClusterOffer.requireFit(sc.getConf());   // a standalone cluster no executor fits on would wait forever
            if (a.flag("fresh")) {
                // never delete what a live run is writing: a scheduler's retry with --fresh beside the first attempt
                io.sparklora.runner.OutputLock.requireFree(sc.hadoopConfiguration(), HadoopFiles.path(cfg.output).toString());
                HadoopFiles.delete(sc.hadoopConfiguration(), cfg.output);
            }
            // one implementation: the public API runs the stage and the earlier ones it needs
            SparkLora.on(sc).progressTo(System.out).run(cfg, stage);
            System.out.println("report: " + io.sparklora.util.Redaction.userInfo(HadoopFiles.resolve(HadoopFiles.path(cfg.output).toString(), "report.html")));
            return 0;
        } catch (io.sparklora.runner.OutputLock.HeldException e) {
            System.err.println("spark-lora " + stage + ": " + e.getMessage());
            return 1;
        } catch (PipelineRunner.StageFailedException e) {
            System.err.println("spark-lora " + stage + ": " + e.getMessage());
            return 1;
        } finally {
            sc.stop();
        }
    }
}
