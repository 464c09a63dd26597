package io.sparklora.jobs;

/**
 * {@code spark-submit --class io.sparklora.jobs.PipelineJob spark-lora-jobs.jar --config hdfs:///conf/run.yaml}:
 * the {@code pipeline} stage as its own entry point (the same as {@code spark-lora pipeline}).
 */
public final class PipelineJob {
    private PipelineJob() {}

    public static void main(String[] args) {
        String[] all = new String[args.length + 1];
        all[0] = "pipeline";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(SparkLoraCli.run(all));
    }
}
