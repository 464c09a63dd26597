package io.sparklora.model;

import org.nd4j.linalg.factory.Nd4j;

/**
 * How many CPU threads one caller of the engine uses: libnd4j's own parallel loops (elementwise ops, reductions,
 * batched matmuls) and OpenBLAS's gemm threads, both set to the same number.
 *
 * <p>Both are process-wide in ND4J: every thread of a JVM that runs engine ops shares them. Spark runs several
 * tasks in one executor JVM, each with {@code spark.task.cpus} cores; left at ND4J's default (every core of the
 * machine, or {@code OMP_NUM_THREADS}), each task's ops would spread over all cores and the tasks would fight over
 * them. On this workplace's 2-core AMD EPYC a demo-shaped step (GPT-2, 2 layers, d 128, batch 8 × 128) took
 * 0.26-0.30 s with 2 threads and 0.13 s with 1 (docs/BENCHMARKS.md, "Threads per task"), because at that width
 * every op is small and the threads spend their time handing work over.
 *
 * <p>{@link #set} is cheap when the value does not change, so every task calls it on start
 * ({@code spark/TaskEngine}); the driver's one-process stages set their own number.
 */
public final class EngineThreads {
    private static int current = -1;

    private EngineThreads() {}

    /**
     * Sets the number of threads engine ops use from now on, in this JVM.
     *
     * <p>This is the first engine call of every Spark task ({@code spark/TaskEngine}) and of the driver's stages, so it
     * is also where the CUDA build checks for a usable GPU before ND4J starts ({@link CudaCheck}).
     *
     * @throws IllegalArgumentException if {@code threads < 1}
     * @throws CudaCheck.CudaUnavailableException in the CUDA build, when this machine has no usable CUDA driver or GPU
     */
    public static synchronized void set(int threads) {
        if (threads < 1) throw new IllegalArgumentException("engine threads must be at least 1, got " + threads);
        CudaCheck.require();
        if (threads == current) return;
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);
        current = threads;
    }

    /** The number last {@link #set}, or ND4J's own (its master threads) when nothing set it yet. */
    public static synchronized int current() {
        return current > 0 ? current : Nd4j.getEnvironment().maxMasterThreads();
    }

    /** The number of OpenBLAS threads ND4J reports now (what {@link #set} also sets). */
    public static int blasThreads() {
        return Nd4j.factory().blas().getMaxThreads();
    }
}
