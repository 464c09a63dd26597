package io.sparklora.jobs;

import io.sparklora.privacy.RdpAccountant;
import org.junit.jupiter.api.Test;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/** {@code spark-lora privacy}: ε for a plan, the noise for a target ε, and clear errors. */
class PrivacyCommandTest {
    private static String[] run(String... argv) { return CliHelpTest.run(argv); }

    @Test
    void printsEpsilonAndTheBestOrderOrTheNoiseForATarget() {
        String[] r = run("privacy", "--sample-rate", "0.01", "--noise-multiplier", "1.0", "--steps", "1000", "--delta", "1e-5");
        assertEquals("0", r[0], r[2]);
        RdpAccountant.Spent s = RdpAccountant.epsilon(0.01, 1.0, 1000, 1e-5);
        assertTrue(r[1].startsWith(String.format(Locale.ROOT, "epsilon %.4f at delta 1.00e-05 (best RDP order %.1f)", s.epsilon(), s.order())), r[1]);
        r = run("privacy", "--sample-rate", "0.01", "--epsilon", "2", "--steps", "1000");
        assertEquals("0", r[0], r[2]);
        double sigma = RdpAccountant.noiseFor(2, 0.01, 1000, 1e-5);
        assertTrue(r[1].startsWith(String.format(Locale.ROOT, "noise multiplier %.4f reaches epsilon", sigma)), r[1]);
    }

    @Test
    void badPlansAreUsageErrors() {
        String[] r = run("privacy", "--sample-rate", "0.01", "--steps", "10");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("exactly one of --noise-multiplier"), r[2]);
        r = run("privacy", "--sample-rate", "1.5", "--noise-multiplier", "1", "--steps", "10");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--sample-rate must be in (0, 1]"), r[2]);
    }
}
