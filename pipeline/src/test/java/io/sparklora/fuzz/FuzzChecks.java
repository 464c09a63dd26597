package io.sparklora.fuzz;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * The one rule every fuzz target checks: a reader of untrusted bytes may refuse its input only with its own
 * documented exception, carrying a message that names the file (or the place) it could not read. A fuzz target
 * catches exactly the documented types and passes each to {@link #clearError}; anything else (an
 * {@code OutOfMemoryError}, a {@code StackOverflowError}, a {@code NullPointerException} or
 * {@code NumberFormatException} from deep inside, ...) escapes the target and is a finding.
 */
final class FuzzChecks {
    /**
     * How long each target fuzzes when run in fuzzing mode ({@code JAZZER_FUZZ=1}, see bench/run-fuzz.sh). In the build
     * (regression mode) only the seed corpus is replayed and this does not apply.
     */
    static final String BUDGET = "1m";

    private FuzzChecks() {}

    /**
     * Fails (rethrowing {@code e} as the cause, so the finding keeps its stack) unless {@code e}'s message is
     * there and names {@code where}.
     */
    static void clearError(Throwable e, String where) {
        String message = e.getMessage();
        if (message == null || message.isBlank() || !message.contains(where)) {
            throw new AssertionError("unclear error (a readable message naming " + where + " was expected): " + e, e);
        }
    }

    /** A fresh directory for one target's files, removed when the JVM exits. */
    static Path scratchDirectory(String name) {
        try {
            Path dir = Files.createTempDirectory("spark-lora-fuzz-" + name);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void write(Path file, byte[] content) {
        try {
            Files.write(file, content);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> all = Files.walk(dir)) {
            all.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a scratch directory under the system temp dir; nothing depends on its removal
        }
    }
}
