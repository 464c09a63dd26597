package io.sparklora.jobs;

import io.sparklora.api.SparkLora;
import io.sparklora.spark.SparkSetup;

import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;

import java.util.Set;

/**
 * {@code spark-lora pipeline|tokenize|train|lora-drop|evaluate --config conf/x.yaml}: runs one stage (with
 * the stages it needs, which are skipped when already complete) or the whole pipeline, on the Spark
 * master that spark-submit set, or else the one given by {@code --master} or the config.
 */
final class StageCommand {
    static final String USAGE = "pipeline|tokenize|train|lora-drop|evaluate [--config conf/demo.yaml] [--output URI] [--master local[2]] [--fresh]";

    private StageCommand() {}

    static int run(String stage, String[] argv) throws Exception {
        Args a = new Args(stage, argv, Set.of("config", "output", "master"), Set.of("fresh"));
        if (!a.positional().isEmpty()) throw new Args.UsageException(stage + ": unexpected argument '" + a.positional().get(0) + "'\nusage: spark-lora " + USAGE);
        String configUri = a.get("config", "conf/demo.yaml");
        PipelineConfig cfg = PipelineConfig.read(new Configuration(), configUri);
        if (a.get("output", null) != null) cfg.output = a.get("output", null);
        // spark-submit passes its master as a system property; only without one does the CLI or config choose
        String master = a.get("master", System.getProperty("spark.master") != null ? null : cfg.spark.master);
        JavaSparkContext sc = SparkSetup.context("spark-lora " + stage + " (" + cfg.name + ")", master, cfg.spark.conf);
        try {
            if (a.flag("fresh")) HadoopFiles.delete(sc.hadoopConfiguration(), cfg.output);
            // one implementation: the public API runs the stage and the earlier ones it needs
            SparkLora.on(sc).progressTo(System.out).run(cfg, stage);
            System.out.println("report: " + HadoopFiles.resolve(HadoopFiles.path(cfg.output).toString(), "report.html"));
            return 0;
        } catch (PipelineRunner.StageFailedException e) {
            System.err.println("spark-lora " + stage + ": " + e.getMessage());
            return 1;
        } finally {
            sc.stop();
        }
    }
}
