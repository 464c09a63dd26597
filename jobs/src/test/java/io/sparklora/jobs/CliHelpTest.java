package io.sparklora.jobs;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** {@code spark-lora <command> --help} exits 0 and lists every option with its default, from the command's one table. */
class CliHelpTest {

    /** Runs the CLI in this JVM: {exit code, stdout, stderr}. */
    static String[] run(String... argv) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true));
        System.setErr(new PrintStream(err, true));
        try {
            return new String[]{String.valueOf(SparkLoraCli.run(argv)), out.toString(), err.toString()};
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    /** The line of {@code help} that describes {@code --name}. */
    private static String line(String help, String name) {
        return help.lines().filter(l -> l.strip().startsWith("--" + name + " ") || l.strip().equals("--" + name))
                .findFirst().orElseThrow(() -> new AssertionError("--" + name + " not in help:\n" + help));
    }

    @Test
    void everyCommandsHelpNamesEachOptionWithItsDefault() {
        Map<List<String>, Args.Spec> commands = new java.util.LinkedHashMap<>(Map.of(
                List.of("pipeline"), StageCommand.spec("pipeline"), List.of("tokenize"), StageCommand.spec("tokenize"),
                List.of("lora-drop"), StageCommand.spec("lora-drop"), List.of("train"), StageCommand.spec("train"),
                List.of("evaluate"), StageCommand.spec("evaluate"), List.of("train", "--local"), TrainLocalCommand.SPEC,
                List.of("evaluate", "--local"), EvaluateLocalCommand.SPEC, List.of("inspect"), InspectCommand.SPEC,
                List.of("merge"), MergeCommand.SPEC));
        commands.put(List.of("export"), ExportCommand.SPEC);
        commands.put(List.of("privacy"), PrivacyCommand.SPEC);
        commands.put(List.of("quantize"), QuantizeCommand.SPEC);
        commands.put(List.of("train-many", "--local"), TrainManyCommand.SPEC);
        for (var e : commands.entrySet()) {
            List<String> argv = new java.util.ArrayList<>(e.getKey());
            argv.add("--help");
            String[] r = run(argv.toArray(String[]::new));
            assertEquals("0", r[0], argv + ": " + r[2]);
            assertEquals("", r[2], argv.toString());
            assertTrue(r[1].startsWith("usage: spark-lora " + e.getValue().command), r[1]);
            for (Args.Option o : e.getValue().options) {
                String l = line(r[1], o.name());
                if (!o.isFlag()) assertTrue(l.strip().startsWith("--" + o.name() + " " + o.arg()), l);
                assertTrue(l.endsWith(o.defaultText()), argv + ": " + l);
                assertTrue(l.contains(o.description()), l);
            }
            assertTrue(r[1].contains("--verbose") && r[1].contains("--help"), "every command takes --verbose and --help");
        }
    }

    @Test
    void helpShowsTheDefaultsTheCommandsUse() {
        String train = run("train", "--local", "--help")[1];
        assertTrue(line(train, "steps").endsWith("(default: 100)"), train);
        assertTrue(line(train, "lr").endsWith("(default: 2e-4)"), train);
        assertTrue(line(train, "model").endsWith("(required)"), train);
        assertTrue(line(train, "activation-checkpointing").endsWith("(default: off)"), train);
        assertTrue(line(run("merge", "--help")[1], "dtype").endsWith("(default: float32)"));
        assertTrue(line(run("evaluate", "--local", "--help")[1], "seq").endsWith("(default: 256)"));
        // train without --local shows the Spark stage first, then the one-process form
        String both = run("train", "--help")[1];
        assertTrue(both.indexOf("usage: spark-lora train [options]") < both.indexOf("usage: spark-lora train --local"), both);
        assertTrue(line(run("pipeline", "--help")[1], "config").endsWith("(default: conf/demo.yaml)"));
    }

    @Test
    void theTableThatPrintsTheDefaultIsTheOneThatParses() {
        Args a = MergeCommand.SPEC.parse(new String[]{"--model", "m", "--adapter", "x", "--out", "o"});
        assertEquals("float32", a.get("dtype"));
        assertFalse(a.has("dtype"));
        Args t = TrainLocalCommand.SPEC.parse(new String[]{"--local", "--model", "m", "--data", "d", "--adapter", "r=8", "--out", "o", "--steps", "7"});
        assertEquals(7, t.getInt("steps"));
        assertEquals(4, t.getInt("batch"));
        assertEquals(2e-4, t.getDouble("lr"));
        assertTrue(t.flag("local"));
        assertFalse(t.flag("activation-checkpointing"));
        assertEquals("conf/demo.yaml", StageCommand.spec("train").parse(new String[]{}).get("config"));
        Args.UsageException flagValue = assertThrows(Args.UsageException.class, () -> MergeCommand.SPEC.parse(new String[]{"--verbose=yes"}));
        assertTrue(flagValue.getMessage().contains("--verbose is a flag"), flagValue.getMessage());
        String[] missing = run("merge", "--model", "m");
        assertEquals("2", missing[0]);
        assertTrue(missing[2].contains("missing required option --adapter"), missing[2]);
    }
}
