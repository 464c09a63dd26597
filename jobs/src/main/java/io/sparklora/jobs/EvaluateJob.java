package io.sparklora.jobs;

/**
 * {@code spark-submit --class io.sparklora.jobs.EvaluateJob spark-lora-jobs.jar --config hdfs:///conf/run.yaml}:
 * the {@code evaluate} stage as its own entry point (the same as {@code spark-lora evaluate}).
 */
public final class EvaluateJob {
    private EvaluateJob() {}

    public static void main(String[] args) {
        String[] all = new String[args.length + 1];
        all[0] = "evaluate";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(SparkLoraCli.run(all));
    }
}
