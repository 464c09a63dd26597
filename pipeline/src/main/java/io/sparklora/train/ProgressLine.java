package io.sparklora.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * One console line per report: step, loss, tokens/s and the time left. Rate-limited so long runs do
 * not flood logs, but always prints the first and last step.
 */
public final class ProgressLine {
    private final PrintStream out;
    private final String label;
    private final long total;
    private final long minIntervalNanos;
    private final long start = System.nanoTime();
    private long lastPrint = 0;

    public ProgressLine(PrintStream out, String label, long total, double minIntervalSeconds) {
        this.out = out;
        this.label = label;
        this.total = total;
        this.minIntervalNanos = (long) (minIntervalSeconds * 1e9);
    }

    /** Reports {@code done} of {@code total} units with the latest loss and tokens processed so far. */
    public void update(long done, double loss, long tokens) {
        long now = System.nanoTime();
        if (done != 1 && done != total && now - lastPrint < minIntervalNanos) return;
        lastPrint = now;
        out.println(format(done, loss, tokens, (now - start) / 1e9));
    }

    String format(long done, double loss, long tokens, double elapsed) {
        double rate = elapsed > 0 ? tokens / elapsed : 0;
        double eta = done > 0 ? elapsed * (total - done) / done : 0;
        return String.format(Locale.ROOT, "%s %d/%d | loss %.4f | %.0f tok/s | elapsed %s | ETA %s",
                label, done, total, loss, rate, clock(elapsed), clock(eta));
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    }
}
