package io.sparklora.spark;

import org.apache.spark.ExceptionFailure;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Ends a job at the first task that fails on bad input, instead of letting Spark retry it {@code spark.task.maxFailures}
 * times: a malformed shard, an unknown label or a tokenizer that does not fit the model fails the same way on every
 * attempt and every executor. Real faults (a lost executor, an I/O error, an out-of-memory) keep Spark's retries.
 *
 * <p>A task error counts as bad input when its class is one the project throws for input it refuses
 * ({@link #INPUT_ERRORS}). The listener then cancels the task's stage with the task's one-line message; the stage code
 * asks {@link #takeInputError} for that message and throws it as the failure, as a local run would.
 *
 * <p>Two mechanisms. The train stage's tasks (the long-running ones) do not throw refused input at all: they return it
 * in their {@code RoundResult}, so the job completes, nothing is retried, and the driver fails the run with the message
 * (tested with 4 attempts allowed: the bad shard is read once). The other stages throw, and this listener cancels the
 * stage at the first such failure. Spark delivers listener events asynchronously, so in local mode, where retries are
 * immediate, attempts already scheduled may still run before the cancellation lands; the message is the task's own
 * either way.
 */
public final class FailFast extends SparkListener {
    /** Exception classes that mean refused input: deterministic, so retrying cannot help. */
    public static final Set<String> INPUT_ERRORS = Set.of(
            IllegalArgumentException.class.getName(),
            NumberFormatException.class.getName(),
            io.sparklora.checkpoint.CheckpointException.class.getName(),
            io.sparklora.model.ModelConfigException.class.getName());

    /** Whether {@code t} (or what it wraps) is one of the {@link #INPUT_ERRORS}: refused input, the same on every attempt. */
    public static boolean isInputError(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (INPUT_ERRORS.contains(c.getClass().getName())) return true;
            if (!(c instanceof java.io.UncheckedIOException) && !(c instanceof java.util.concurrent.CompletionException)) break;
        }
        return false;
    }

    private static final Map<SparkContext, FailFast> INSTALLED = Collections.synchronizedMap(new WeakHashMap<>());

    private final SparkContext sc;
    private volatile String inputError;

    private FailFast(SparkContext sc) { this.sc = sc; }

    /** Registers the listener on {@code sc} once (stages call this before their jobs). */
    public static void install(SparkContext sc) {
        INSTALLED.computeIfAbsent(sc, k -> {
            FailFast f = new FailFast(k);
            k.addSparkListener(f);
            return f;
        });
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd end) {
        if (!(end.reason() instanceof ExceptionFailure f) || !INPUT_ERRORS.contains(f.className())) return;
        if (inputError == null) inputError = f.description();
        sc.cancelStage(end.stageId(), "input error, not retried: " + f.description());
    }

    /** The input error that ended the last failed job on {@code sc}, if one did (cleared by the call). */
    public static Optional<String> takeInputError(SparkContext sc) {
        FailFast f = INSTALLED.get(sc);
        if (f == null || f.inputError == null) return Optional.empty();
        String m = f.inputError;
        f.inputError = null;
        return Optional.of(m);
    }

    /**
     * Rethrows a failed job: as its input error (an IllegalArgumentException with the task's one-line message) when it was
     * one, otherwise unchanged (Spark's SparkException is checked in Java's eyes but thrown unchecked from Scala).
     */
    public static RuntimeException translate(SparkContext sc, Exception jobFailure) {
        Optional<String> m = takeInputError(sc);
        if (m.isPresent()) return new IllegalArgumentException(m.get(), jobFailure);
        if (jobFailure instanceof RuntimeException r) return r;
        throw FailFast.<RuntimeException>sneaky(jobFailure);
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> T sneaky(Throwable t) throws T { throw (T) t; }
}
