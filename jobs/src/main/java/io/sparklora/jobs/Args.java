package io.sparklora.jobs;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Command-line options of the form {@code --name value} and {@code --flag}, parsed against the command's
 * {@link Spec}: one table per command that declares each option's name, argument, default and
 * description, and that both parses and prints {@code --help}. Anything not in the table is an error that
 * names the option, so typos never pass silently; an option left out takes the table's default.
 */
public final class Args {
    private final Spec spec;
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> flags = new LinkedHashSet<>();
    private final List<String> positional = new ArrayList<>();

    /**
     * One option. {@code arg} is the placeholder of its value ({@code null}: a flag, off unless given);
     * {@code defaultValue} is what {@link Args#get(String)} returns when the option is left out (a value
     * in words such as "min(10, steps/10)" where the command computes it; {@code null}: none or required).
     */
    public record Option(String name, String arg, String defaultValue, boolean required, String description) {
        static Option value(String name, String arg, String defaultValue, String description) {
            return new Option(name, arg, defaultValue, false, description);
        }

        static Option required(String name, String arg, String description) {
            return new Option(name, arg, null, true, description);
        }

        static Option flag(String name, String description) {
            return new Option(name, null, null, false, description);
        }

        boolean isFlag() { return arg == null; }

        /** "(required)", "(default: X)", "(default: off)" for flags, or "(default: none)" for an optional value without one. */
        String defaultText() {
            if (required) return "(required)";
            if (isFlag()) return "(default: off)";
            return defaultValue == null ? "(default: none)" : "(default: " + defaultValue + ")";
        }
    }

    /** Options every command takes; {@link SparkLoraCli} acts on them before the command runs. */
    static final List<Option> COMMON = List.of(
            Option.flag("verbose", "Spark's, Hadoop's and ND4J's INFO logs on stderr (quiet: warnings only)"),
            Option.flag("help", "print this help and exit"));

    /** A command's option table: its name as typed, a one-line summary, and its options in help order. */
    public static final class Spec {
        final String command;
        final String summary;
        final List<Option> options;

        Spec(String command, String summary, Option... options) {
            this.command = command;
            this.summary = summary;
            List<Option> all = new ArrayList<>(List.of(options));
            all.addAll(COMMON);
            this.options = List.copyOf(all);
        }

        Option option(String name) {
            for (Option o : options) if (o.name().equals(name)) return o;
            return null;
        }

        Args parse(String[] argv) { return new Args(this, argv); }

        /** One line: the command with its required options, then [options]. */
        String synopsis() {
            StringBuilder b = new StringBuilder(command);
            for (Option o : options) {
                if (o.required()) b.append(" --").append(o.name()).append(' ').append(o.arg());
            }
            return b.append(" [options]").toString();
        }

        /** The --help text: synopsis, summary, then every option with its argument, default and description. */
        String help() {
            List<String> left = new ArrayList<>();
            int width = 0;
            for (Option o : options) {
                String l = "--" + o.name() + (o.isFlag() ? "" : " " + o.arg());
                left.add(l);
                width = Math.max(width, l.length());
            }
            StringBuilder b = new StringBuilder("usage: spark-lora ").append(synopsis()).append(System.lineSeparator())
                    .append(summary).append(System.lineSeparator()).append(System.lineSeparator()).append("options:");
            for (int i = 0; i < options.size(); i++) {
                Option o = options.get(i);
                b.append(System.lineSeparator()).append("  ").append(String.format("%-" + width + "s", left.get(i)))
                        .append("  ").append(o.description()).append(' ').append(o.defaultText());
            }
            return b.toString();
        }
    }

    private Args(Spec spec, String[] argv) {
        this.spec = spec;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.startsWith("--")) {
                String name = a.substring(2);
                String inline = null;
                int eq = name.indexOf('=');
                if (eq > 0) {
                    inline = name.substring(eq + 1);
                    name = name.substring(0, eq);
                }
                Option o = spec.option(name);
                if (o == null) {
                    List<String> known = new ArrayList<>();
                    spec.options.forEach(k -> known.add("--" + k.name()));
                    throw new UsageException(spec.command + ": unknown option --" + name + " (known: " + String.join(" ", known) + ")");
                }
                if (o.isFlag()) {
                    if (inline != null) throw new UsageException(spec.command + ": --" + name + " is a flag and takes no value");
                    flags.add(name);
                } else {
                    if (inline == null && i + 1 >= argv.length) throw new UsageException(spec.command + ": option --" + name + " needs a value");
                    values.put(name, inline != null ? inline : argv[++i]);
                }
            } else {
                positional.add(a);
            }
        }
        for (Option o : spec.options) {
            if (o.required() && !values.containsKey(o.name())) {
                throw new UsageException(spec.command + ": missing required option --" + o.name() + " " + o.arg() + "\nusage: spark-lora " + spec.synopsis());
            }
        }
    }

    private Option declared(String name) {
        Option o = spec.option(name);
        if (o == null) throw new IllegalStateException(spec.command + " reads --" + name + " but does not declare it");
        return o;
    }

    public boolean flag(String name) {
        declared(name);
        return flags.contains(name);
    }

    /** Whether the option was given on the command line. */
    public boolean has(String name) {
        declared(name);
        return values.containsKey(name);
    }

    /** The value given, else the table's default (may be null). */
    public String get(String name) {
        Option o = declared(name);
        return values.getOrDefault(name, o.defaultValue());
    }

    public String require(String name) {
        String v = get(name);
        if (v == null) throw new UsageException(spec.command + ": missing required option --" + name);
        return v;
    }

    public int getInt(String name) {
        String v = require(name);
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new UsageException(spec.command + ": --" + name + " must be an integer, got '" + v + "'");
        }
    }

    public double getDouble(String name) {
        String v = require(name);
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new UsageException(spec.command + ": --" + name + " must be a number, got '" + v + "'");
        }
    }

    public List<String> positional() { return positional; }

    /** A command-line mistake: printed without a stack trace, exit code 2. */
    public static final class UsageException extends RuntimeException {
        public UsageException(String message) { super(message); }
    }
}
