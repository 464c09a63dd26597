package io.sparklora.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

import java.util.Map;

/**
 * The Spark context spark-lora's stages run in. Under {@code spark-submit} the master and settings come
 * from the submit command; locally (the CLI, notebooks, tests) {@link #local} makes a quiet context.
 */
public final class SparkSetup {
    private SparkSetup() {}

    /** Settings every spark-lora context gets unless the user set them. */
    public static SparkConf defaults(SparkConf conf) {
        conf.setIfMissing("spark.serializer", "org.apache.spark.serializer.KryoSerializer");
        conf.setIfMissing("spark.ui.showConsoleProgress", "false");
        // tasks hold one model replica each; spark-lora's data is small, its compute is not
        conf.setIfMissing("spark.task.maxFailures", "4");
        // Spark's own redaction (UI, event log, spark.logConf) also covers the credential keys its default misses
        conf.setIfMissing("spark.redaction.regex", io.sparklora.util.Redaction.DEFAULT_REGEX);
        return conf;
    }

    /** A context for {@code master} (local[2], local-cluster[...], spark://...) with extra settings. */
    public static JavaSparkContext context(String appName, String master, Map<String, String> settings) {
        SparkConf conf = new SparkConf().setAppName(appName);
        if (master != null && !master.isBlank()) conf.setMaster(master);
        conf.setIfMissing("spark.master", "local[*]");
        settings.forEach(conf::set);
        if (conf.get("spark.master").startsWith("local")) {
            // one machine: stay on loopback (a cluster driver must advertise a reachable address instead)
            conf.setIfMissing("spark.ui.enabled", "false");
            conf.setIfMissing("spark.driver.host", "127.0.0.1");
            conf.setIfMissing("spark.driver.bindAddress", "127.0.0.1");
        }
        return new JavaSparkContext(defaults(conf));
    }

    public static JavaSparkContext local(int threads) {
        return context("spark-lora", "local[" + threads + "]", Map.of());
    }
}
