package io.sparklora.jobs;

/**
 * {@code spark-submit --class io.sparklora.jobs.TokenizeJob spark-lora-jobs.jar --config hdfs:///conf/run.yaml}:
 * the {@code tokenize} stage as its own entry point (the same as {@code spark-lora tokenize}).
 */
public final class TokenizeJob {
    private TokenizeJob() {}

    public static void main(String[] args) {
        String[] all = new String[args.length + 1];
        all[0] = "tokenize";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(SparkLoraCli.run(all));
    }
}
