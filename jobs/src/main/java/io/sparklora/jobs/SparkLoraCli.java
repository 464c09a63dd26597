package io.sparklora.jobs;

import java.util.Arrays;
import java.util.List;

/**
 * The {@code spark-lora} command: one entry point for every job, dispatched by subcommand.
 * {@code bin/spark-lora} runs it locally; {@code spark-submit --class io.sparklora.jobs.SparkLoraCli} runs
 * it on a cluster.
 */
public final class SparkLoraCli {
    private SparkLoraCli() {}

    static final String USAGE = String.join(System.lineSeparator(),
            "usage: spark-lora <command> [options]        (spark-lora <command> --help: its options and defaults)",
            "  " + StageCommand.spec("pipeline").synopsis() + "     also: tokenize, train, lora-drop, evaluate",
            "  " + TrainLocalCommand.SPEC.synopsis(),
            "  " + TrainManyCommand.SPEC.synopsis(),
            "  " + EvaluateLocalCommand.SPEC.synopsis(),
            "  " + InferCommand.spec("generate").synopsis() + "     also: score",
            "  " + InspectCommand.SPEC.synopsis(),
            "  " + MergeCommand.SPEC.synopsis(),
            "  " + QuantizeCommand.SPEC.synopsis(),
            "  " + ExportCommand.SPEC.synopsis(),
            "  " + PrivacyCommand.SPEC.synopsis(),
            "every command also takes --verbose (Spark's, Hadoop's and ND4J's INFO logs) and --help");

    /** The --help text of a command as typed ({@code train} and {@code evaluate} have a Spark and a --local form). */
    static String help(String command, List<String> rest) {
        boolean local = rest.contains("--local");
        return switch (command) {
            case "pipeline", "tokenize", "lora-drop" -> StageCommand.spec(command).help();
            case "train" -> local ? TrainLocalCommand.SPEC.help()
                    : StageCommand.spec("train").help() + System.lineSeparator() + System.lineSeparator() + TrainLocalCommand.SPEC.help();
            case "evaluate" -> local ? EvaluateLocalCommand.SPEC.help()
                    : StageCommand.spec("evaluate").help() + System.lineSeparator() + System.lineSeparator() + EvaluateLocalCommand.SPEC.help();
            case "train-many" -> TrainManyCommand.SPEC.help();
            case "generate", "score" -> InferCommand.spec(command).help();
            case "inspect" -> InspectCommand.SPEC.help();
            case "merge" -> MergeCommand.SPEC.help();
            case "quantize" -> QuantizeCommand.SPEC.help();
            case "export" -> ExportCommand.SPEC.help();
            case "privacy" -> PrivacyCommand.SPEC.help();
            default -> throw new Args.UsageException("unknown command '" + command + "'\n" + USAGE);
        };
    }

    public static void main(String[] argv) {
        System.exit(run(argv));
    }

    static int run(String[] argv) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            System.out.println(USAGE);
            return argv.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
        List<String> restList = Arrays.asList(rest);
        try {
            if (restList.contains("--help") || restList.contains("-h")) {
                System.out.println(help(argv[0], restList));
                return 0;
            }
            // The CUDA build on a machine without a usable GPU: one line, before ND4J prints a native stack trace.
            java.util.Optional<String> noGpu = io.sparklora.model.CudaCheck.problem();
            if (noGpu.isPresent()) {
                System.err.println(io.sparklora.model.CudaCheck.message(noGpu.get()));
                return io.sparklora.model.CudaCheck.EXIT_CODE;
            }
            if (restList.contains("--verbose")) CliLogging.verbose();
            return switch (argv[0]) {
                case "pipeline", "tokenize", "lora-drop" -> StageCommand.run(argv[0], rest);
                // --local: the one-process commands (no Spark); otherwise the distributed stage
                case "train" -> restList.contains("--local") ? TrainLocalCommand.run(rest) : StageCommand.run("train", rest);
                case "evaluate" -> restList.contains("--local") ? EvaluateLocalCommand.run(rest) : StageCommand.run("evaluate", rest);
                case "train-many" -> TrainManyCommand.run(rest);
                case "generate", "score" -> InferCommand.run(argv[0], rest);
                case "inspect" -> InspectCommand.run(rest);
                case "merge" -> MergeCommand.run(rest);
                case "quantize" -> QuantizeCommand.run(rest);
                case "export" -> ExportCommand.run(rest);
                case "privacy" -> PrivacyCommand.run(rest);
                default -> throw new Args.UsageException("unknown command '" + argv[0] + "'\n" + USAGE);
            };
        } catch (Args.UsageException e) {
            System.err.println("spark-lora: " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException | java.io.UncheckedIOException e) {
            // bad input: say what and where, without a stack trace
            System.err.println("spark-lora " + argv[0] + ": " + io.sparklora.util.Redaction.userInfo(e.getMessage()));
            return 1;
        } catch (RuntimeException e) {
            if (e.getClass().getName().startsWith("io.sparklora")) {
                System.err.println("spark-lora " + argv[0] + ": " + io.sparklora.util.Redaction.userInfo(e.getMessage()));
                return 1;
            }
            throw e;
        } catch (Exception e) {
            System.err.println("spark-lora " + argv[0] + ": " + io.sparklora.util.Redaction.userInfo(String.valueOf(e)));
            return 1;
        }
    }
}
