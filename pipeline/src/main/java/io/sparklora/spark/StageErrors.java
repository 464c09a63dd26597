package io.sparklora.spark;

import org.apache.spark.SparkException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.InvocationTargetException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns a failed Spark job back into the error a task raised. Spark wraps a task's exception in a
 * {@link SparkException} whose message is a stage report with an executor stack trace; the user should
 * see the original one-line message ("file.txt:12: not valid UTF-8 ..."), as when the code runs locally.
 */
public final class StageErrors {
    private static final Pattern TASK_FAILURE = Pattern.compile(
            "most recent failure: Lost task .*?\\): (?:[\\w.$]+(?:Exception|Error): )?([^\\n]*)");

    private StageErrors() {}

    /** The first exception in the cause chain that is not a wrapper (SparkException, UncheckedIOException, ...). */
    public static Throwable original(Throwable t) {
        Throwable cur = t;
        for (int depth = 0; depth < 32 && cur != null; depth++) {
            boolean wrapper = cur instanceof SparkException || cur instanceof UncheckedIOException
                    || cur instanceof ExecutionException || cur instanceof CompletionException
                    || cur instanceof InvocationTargetException;
            if (!wrapper) return cur;
            if (cur.getCause() == null || cur.getCause() == cur) break;
            cur = cur.getCause();
        }
        return cur == null ? t : cur;
    }

    /**
     * Rethrows the original error of {@code t} when it is unchecked, returns it when it is an IOException
     * (for the caller to throw), and otherwise returns an IOException with its one-line message.
     */
    public static IOException unwrap(Throwable t) {
        Throwable o = original(t);
        if (o instanceof IOException io) return io;
        if (o instanceof UncheckedIOException u) return u.getCause();
        if (o instanceof SparkException s) return new IOException(oneLine(s), s);
        if (o instanceof RuntimeException r) throw r;
        if (o instanceof Error e) throw e;
        return new IOException(o.getMessage(), t);
    }

    /** The task's message out of a stage-failure report (for a SparkException that carries no cause). */
    static String oneLine(SparkException e) {
        String msg = e.getMessage() == null ? "" : e.getMessage();
        Matcher m = TASK_FAILURE.matcher(msg);
        if (m.find()) return m.group(1).strip();
        int nl = msg.indexOf('\n');
        return nl < 0 ? msg : msg.substring(0, nl);
    }
}
