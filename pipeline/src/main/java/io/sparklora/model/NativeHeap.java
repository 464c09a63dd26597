package io.sparklora.model;

import com.sun.jna.Function;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Makes native buffer allocation cheap in a steady training loop, by setting glibc malloc's thresholds once per JVM.
 *
 * <p>ND4J's CPU buffers come from malloc. A training step allocates and frees the same few hundred buffers every step,
 * many of them megabytes ([B·T, 4C] activations, [B, H, T, T] scores). glibc serves blocks above its mmap threshold
 * (dynamic, at most 32 MiB) with a fresh mmap and gives them back with munmap on free, and trims freed heap memory
 * back to the kernel; every step then page-faults its buffers in again and the kernel zero-fills each page. On GPT-2
 * small (LoRA, 4 × 256 tokens) that was about 85,000 page faults and 2 s of system CPU time per step, and ND4J's buffer
 * allocation was a fifth of the main thread's time (docs/BENCHMARKS.md, "Fused kernels" and "Native heap").
 *
 * <p>{@link #tune()} sets {@code M_MMAP_THRESHOLD} to 32 MiB (the largest glibc accepts; this also stops it from
 * adjusting the threshold itself), {@code M_TRIM_THRESHOLD} to 2 GiB, the largest value {@code mallopt} takes (freed
 * memory stays in the process for the next step) and {@code M_TOP_PAD} to 256 MiB (the heap grows in large steps).
 * A step then reuses the previous step's memory: the process's resident set stays at its peak instead of shrinking
 * between steps, and that peak was lower in the measurement, since fewer blocks are left fragmented across mappings.
 *
 * <p>It is called when a {@link TransformerLM} is built, so every JVM that trains or infers (a Spark executor, the
 * driver, a notebook, the API) gets it before its first step. It does nothing on ND4J's CUDA backend, when the C
 * library has no {@code mallopt} (not glibc), when any of glibc's {@code MALLOC_*_} variables or
 * {@code GLIBC_TUNABLES} is set (the user's own settings win), or with {@code -Dsparklora.malloc.tune=false}.
 */
public final class NativeHeap {
    private static final int M_TRIM_THRESHOLD = -1;
    private static final int M_TOP_PAD = -2;
    private static final int M_MMAP_THRESHOLD = -3;
    private static final long MMAP_THRESHOLD = 32L << 20;
    private static final long TOP_PAD = 256L << 20;

    private static Boolean applied;

    private NativeHeap() {}

    /** Sets the thresholds once per JVM; returns whether they are set (now or before). */
    public static synchronized boolean tune() {
        if (applied == null) applied = apply();
        return applied;
    }

    private static boolean apply() {
        if ("false".equalsIgnoreCase(System.getProperty("sparklora.malloc.tune", "true"))) return false;
        if (System.getenv("GLIBC_TUNABLES") != null) return false;
        for (String v : System.getenv().keySet()) if (v.startsWith("MALLOC_") && v.endsWith("_")) return false;
        if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) return false;
        try {
            if (!Nd4j.getEnvironment().isCPU()) return false;
            Function mallopt = Function.getFunction("c", "mallopt");
            return mallopt.invokeInt(new Object[]{M_MMAP_THRESHOLD, (int) MMAP_THRESHOLD}) == 1
                    & mallopt.invokeInt(new Object[]{M_TRIM_THRESHOLD, Integer.MAX_VALUE}) == 1
                    & mallopt.invokeInt(new Object[]{M_TOP_PAD, (int) TOP_PAD}) == 1;
        } catch (UnsatisfiedLinkError | RuntimeException e) {
            return false;
        }
    }
}
