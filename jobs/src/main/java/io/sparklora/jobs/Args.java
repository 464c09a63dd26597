package io.sparklora.jobs;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Command-line options of the form {@code --name value} and {@code --flag}. Each command declares what
 * it accepts; anything else is an error that names the option, so typos never pass silently.
 */
public final class Args {
    private final String command;
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> flags = new LinkedHashSet<>();
    private final List<String> positional = new ArrayList<>();

    public Args(String command, String[] argv, Set<String> valueOptions, Set<String> flagOptions) {
        this.command = command;
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
                if (flagOptions.contains(name) && inline == null) {
                    flags.add(name);
                } else if (valueOptions.contains(name)) {
                    if (inline == null && i + 1 >= argv.length) throw new UsageException(command + ": option --" + name + " needs a value");
                    values.put(name, inline != null ? inline : argv[++i]);
                } else {
                    List<String> known = new ArrayList<>();
                    valueOptions.forEach(o -> known.add("--" + o));
                    flagOptions.forEach(o -> known.add("--" + o));
                    throw new UsageException(command + ": unknown option --" + name + " (known: " + String.join(" ", known) + ")");
                }
            } else {
                positional.add(a);
            }
        }
    }

    public boolean flag(String name) { return flags.contains(name); }

    public String get(String name, String fallback) { return values.getOrDefault(name, fallback); }

    public String require(String name) {
        String v = values.get(name);
        if (v == null) throw new UsageException(command + ": missing required option --" + name);
        return v;
    }

    public int getInt(String name, int fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + name + " must be an integer, got '" + v + "'");
        }
    }

    public double getDouble(String name, double fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + name + " must be a number, got '" + v + "'");
        }
    }

    public List<String> positional() { return positional; }

    /** A command-line mistake: printed without a stack trace, exit code 2. */
    public static final class UsageException extends RuntimeException {
        public UsageException(String message) { super(message); }
    }
}
