package io.sparklora.jobs;

import java.util.Arrays;

/**
 * The {@code spark-lora} command: one entry point for every job, dispatched by subcommand.
 * {@code bin/spark-lora} runs it locally; {@code spark-submit --class io.sparklora.jobs.SparkLoraCli} runs
 * it on a cluster.
 */
public final class SparkLoraCli {
    private SparkLoraCli() {}

    static final String USAGE = String.join(System.lineSeparator(),
            "usage: spark-lora <command> [options]",
            "  " + StageCommand.USAGE,
            "  " + TrainLocalCommand.USAGE,
            "  " + EvaluateLocalCommand.USAGE,
            "  " + InspectCommand.USAGE,
            "  " + MergeCommand.USAGE);

    public static void main(String[] argv) {
        System.exit(run(argv));
    }

    static int run(String[] argv) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            System.out.println(USAGE);
            return argv.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
        try {
            return switch (argv[0]) {
                case "pipeline", "tokenize", "lora-drop" -> StageCommand.run(argv[0], rest);
                // --local: the one-process commands (no Spark); otherwise the distributed stage
                case "train" -> Arrays.asList(rest).contains("--local") ? TrainLocalCommand.run(rest) : StageCommand.run("train", rest);
                case "evaluate" -> Arrays.asList(rest).contains("--local") ? EvaluateLocalCommand.run(rest) : StageCommand.run("evaluate", rest);
                case "inspect" -> InspectCommand.run(rest);
                case "merge" -> MergeCommand.run(rest);
                default -> throw new Args.UsageException("unknown command '" + argv[0] + "'\n" + USAGE);
            };
        } catch (Args.UsageException e) {
            System.err.println("spark-lora: " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException | java.io.UncheckedIOException e) {
            // bad input: say what and where, without a stack trace
            System.err.println("spark-lora " + argv[0] + ": " + e.getMessage());
            return 1;
        } catch (RuntimeException e) {
            if (e.getClass().getName().startsWith("io.sparklora")) {
                System.err.println("spark-lora " + argv[0] + ": " + e.getMessage());
                return 1;
            }
            throw e;
        } catch (Exception e) {
            System.err.println("spark-lora " + argv[0] + ": " + e);
            return 1;
        }
    }
}
