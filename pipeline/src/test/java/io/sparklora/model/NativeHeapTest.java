package io.sparklora.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The engine sets glibc's malloc thresholds on a Linux CPU build (docs/BENCHMARKS.md, "Native heap"). */
class NativeHeapTest {

    @Test
    void theThresholdsAreSetOnceOnLinuxWithGlibc() {
        assumeTrue(System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux"), "glibc is Linux's");
        boolean userSettings = System.getenv("GLIBC_TUNABLES") != null
                || System.getenv().keySet().stream().anyMatch(v -> v.startsWith("MALLOC_") && v.endsWith("_"));
        assumeTrue(!userSettings, "the user's own malloc settings win");
        assertTrue(NativeHeap.tune(), "mallopt was not called or refused a value");
        assertTrue(NativeHeap.tune(), "a second call reports the first one's result");
    }
}
