package io.sparklora.bench;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The machine's practical fp32 matmul peak: ND4J's sgemm (OpenBLAS underneath) on square
 * n×n·n×n products at n = 1024, 1536 and 2048. Each size is warmed up, then timed several times;
 * the best repetition counts (2·n³ FLOPs) and the largest of the sizes is reported as the peak that
 * model FLOPs utilisation (MFU) is measured against.
 *
 * <p>Run alone: {@code java -cp ... io.sparklora.bench.SgemmPeak [reps]}.
 */
public final class SgemmPeak {
    public static final int[] SIZES = {1024, 1536, 2048};

    /** GFLOP/s by size, and the max. */
    public record Result(Map<Integer, Double> gflopsBySize, double peakGflops) {
        public String toJson() {
            StringBuilder sb = new StringBuilder("{");
            gflopsBySize.forEach((n, g) -> sb.append('"').append(n).append("\":").append(fmt(g)).append(','));
            sb.setLength(sb.length() - 1);
            return sb.append('}').toString();
        }
    }

    private SgemmPeak() {}

    public static Result measure(int reps) {
        Map<Integer, Double> by = new LinkedHashMap<>();
        double best = 0;
        for (int n : SIZES) {
            double g = measure(n, reps);
            by.put(n, g);
            best = Math.max(best, g);
        }
        return new Result(by, best);
    }

    /** Best-of-{@code reps} GFLOP/s of C = A·B at size n (fp32, preallocated output, no copies). */
    public static double measure(int n, int reps) {
        INDArray a = Nd4j.rand(DataType.FLOAT, n, n);
        INDArray b = Nd4j.rand(DataType.FLOAT, n, n);
        INDArray c = Nd4j.create(DataType.FLOAT, n, n);
        double flops = 2.0 * n * n * n;
        // warm-up: thread pools, page faults, CPU frequency
        for (int i = 0; i < 2; i++) Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
        double bestSeconds = Double.MAX_VALUE;
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
            bestSeconds = Math.min(bestSeconds, (System.nanoTime() - t0) / 1e9);
        }
        return flops / bestSeconds / 1e9;
    }

    static String fmt(double v) { return String.format(Locale.ROOT, "%.2f", v); }

    public static void main(String[] args) {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        Result r = measure(reps);
        r.gflopsBySize().forEach((n, g) -> System.out.printf(Locale.ROOT, "sgemm n=%d: %.1f GFLOP/s%n", n, g));
        System.out.printf(Locale.ROOT, "peak: %.1f GFLOP/s (threads: %s)%n", r.peakGflops(),
                System.getenv().getOrDefault("OMP_NUM_THREADS", "default"));
        System.out.println("{\"sgemm_gflops\":" + r.toJson() + ",\"peak_gflops\":" + fmt(r.peakGflops()) + "}");
    }
}
