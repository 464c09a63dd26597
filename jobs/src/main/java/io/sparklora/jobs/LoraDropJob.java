package io.sparklora.jobs;

/**
 * {@code spark-submit --class io.sparklora.jobs.LoraDropJob spark-lora-jobs.jar --config hdfs:///conf/run.yaml}:
 * the {@code lora-drop} stage as its own entry point (the same as {@code spark-lora lora-drop}).
 */
public final class LoraDropJob {
    private LoraDropJob() {}

    public static void main(String[] args) {
        String[] all = new String[args.length + 1];
        all[0] = "lora-drop";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(SparkLoraCli.run(all));
    }
}
