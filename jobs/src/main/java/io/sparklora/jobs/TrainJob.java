package io.sparklora.jobs;

/**
 * {@code spark-submit --class io.sparklora.jobs.TrainJob spark-lora-jobs.jar --config hdfs:///conf/run.yaml}:
 * the {@code train} stage as its own entry point (the same as {@code spark-lora train}).
 */
public final class TrainJob {
    private TrainJob() {}

    public static void main(String[] args) {
        String[] all = new String[args.length + 1];
        all[0] = "train";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(SparkLoraCli.run(all));
    }
}
