package io.sparklora.util;

/**
 * Named points where a fault-injection test stops the JVM as abruptly as {@code kill -9}: no {@code finally} block,
 * no shutdown hook, nothing flushed. Off unless the system property {@value #PROPERTY} names a point, as
 * {@code <point>} (the first time it is reached) or {@code <point>:<detail>} (when it is reached with that detail, a
 * round number or a file name). The process exits with status 137, as after SIGKILL.
 *
 * <p>The points, each at a moment a real kill can land:
 * <ul>
 *   <li>{@code write.before-rename:<name>}: an atomic write has filled its temporary sibling of {@code <name>} but not
 *       renamed it into place (a checkpoint directory {@code round-000004}, {@code LATEST}, {@code adapter}, ...);</li>
 *   <li>{@code write.after-delete:<name>}: a replace that cannot rename over its target (a directory, or a file on an
 *       object store) has removed the old {@code <name>} and not yet renamed the new one into place;</li>
 *   <li>{@code train.round:<n>}: the driver has applied round {@code n} (1-based) of a training stage, before its
 *       checkpoint;</li>
 *   <li>{@code evaluate.scored}: the evaluate stage's Spark job has finished, before its figures are written.</li>
 * </ul>
 * Tests: {@code DriverKillIT} (jobs) runs the CLI with {@code -Dsparklora.fault.halt=...} and reruns it.
 */
public final class FaultPoints {
    public static final String PROPERTY = "sparklora.fault.halt";
    private static final String HALT = System.getProperty(PROPERTY);

    private FaultPoints() {}

    /** Halts the JVM if {@value #PROPERTY} names this point (with this detail, when it gives one). */
    public static void reach(String point, Object detail) {
        if (HALT == null) return;
        if (HALT.equals(point) || HALT.equals(point + ":" + detail)) {
            System.err.println("spark-lora: fault injected: halting at " + point + ":" + detail);
            System.err.flush();
            Runtime.getRuntime().halt(137);
        }
    }
}
