package io.sparklora.jobs;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.config.Configurator;

/**
 * The CLI's log level switch. Spark, Hadoop and ND4J log through SLF4J into Log4j 2 (Spark 3.5's
 * log4j-slf4j2-impl and log4j-core); {@code bin/spark-lora} and the submit scripts start the JVM with
 * {@code -Dlog4j2.configurationFile=conf/log4j2.properties}, which logs warnings only. {@code --verbose}
 * raises the root logger to INFO for this process (the driver, under spark-submit). The CLI's own progress
 * lines are printed to stdout, not logged, so no level hides them.
 */
final class CliLogging {
    private CliLogging() {}

    /** Root logger to INFO: Spark's, Hadoop's and ND4J's INFO lines appear on stderr. */
    static void verbose() {
        try {
            Configurator.setRootLevel(Level.INFO);
        } catch (LinkageError e) {
            // a cluster whose Spark logs through something other than Log4j 2: its own configuration decides
            System.err.println("spark-lora: --verbose needs Log4j 2 on the class path (" + e + "); log levels unchanged");
        }
    }
}
