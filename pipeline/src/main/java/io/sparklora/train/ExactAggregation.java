package io.sparklora.train;

import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code train.aggregate}: how the driver combines the workers' adapters under {@code sync: parameters}.
 * <ul>
 *   <li>{@code mean} (the default): every tensor's target-weighted mean. For a factored ΔW = B·A this is not the mean
 *       of the workers' ΔW: mean(B)·mean(A) ≠ mean(B·A).</li>
 *   <li>{@code frozen_a}: the mean again, accepted only for methods whose ΔW is linear in what trains (LoRA-FA: A is
 *       frozen and the same everywhere, so mean(B)·A = mean(B·A)). It states and checks that the average is exact.</li>
 *   <li>{@code svd}: each worker sends its own factors; the driver forms Σ w_i·B_i·A_i / Σ w_i exactly (factored, never
 *       as a dense matrix) and takes its best rank-r approximation ({@link LowRank#truncate}) as the next B and A. Exact
 *       whenever the sum has rank ≤ r, and the best rank-r choice otherwise. Other trained tensors (biases, DoRA's
 *       magnitude, token rows) are averaged.</li>
 *   <li>{@code stack}: FLoRA's stacking ({@link StackedRounds}): the workers' own factors are merged, exactly and
 *       without a rank cut, into a private copy of the targeted weights by every later round, and each round trains a
 *       fresh adapter on top.</li>
 * </ul>
 * The figures each {@code svd} round logs: {@code averaging_gap} = ‖mean(B)·mean(A) − mean(B·A)‖_F / ‖mean(B·A)‖_F
 * (what {@code mean} would have lost this round) and {@code truncation_gap} = ‖B'·A' − mean(B·A)‖_F / ‖mean(B·A)‖_F
 * (what the rank-r cut loses), both over all layers together.
 */
public final class ExactAggregation {
    public static final List<String> MODES = List.of("mean", "frozen_a", "svd", "stack");

    private ExactAggregation() {}

    /** A layer's pair of factor tensors, by name: B [out, r] and A [r, in]. */
    public record Pair(String b, String a) {}

    /** The next adapter and this round's gaps. */
    public record Result(AdapterTensors adapter, double averagingGap, double truncationGap) {}

    /** The factor pairs among {@code params}, paired by the method's name segments ({B's, A's}); both must train. */
    public static List<Pair> pairs(List<Parameter> params, String[] segments) {
        Map<String, Parameter> byName = new LinkedHashMap<>();
        for (Parameter p : params) byName.put(p.name(), p);
        List<Pair> out = new ArrayList<>();
        String bSeg = "." + segments[0] + ".", aSeg = "." + segments[1] + ".";
        for (Parameter p : params) {
            if (!p.name().contains(bSeg)) continue;
            String a = p.name().replace(bSeg, aSeg);
            if (!byName.containsKey(a)) throw new IllegalStateException("train.aggregate: svd: " + p.name() + " has no trained partner " + a);
            out.add(new Pair(p.name(), a));
        }
        if (out.isEmpty()) throw new IllegalStateException("train.aggregate: svd: no trained " + segments[0] + "/" + segments[1] + " pairs among the adapter's tensors");
        return out;
    }

    /**
     * {@code svd}: the next B, A of every pair from the workers' own factors, put into {@code averaged} (which holds the
     * means of the other tensors and is returned).
     */
    public static Result svd(List<PartitionFactors> workers, List<Pair> pairs, int rank, AdapterTensors averaged) {
        if (workers.isEmpty()) throw new IllegalStateException("train.aggregate: svd: no worker sent its factors");
        double total = 0;
        for (PartitionFactors w : workers) total += w.weight();
        if (!(total > 0)) throw new IllegalStateException("train.aggregate: svd: the workers' weights sum to " + total);
        double exact2 = 0, avgGap2 = 0, truncGap2 = 0;
        for (Pair pair : pairs) {
            Stacked s = stack(workers, pair, total);
            double exact = LowRank.frobeniusOfProduct(s.b, s.a), gap = averagingGap(workers, pair, total, s);
            LowRank.Truncated t = LowRank.truncate(s.b, s.a, rank);
            double tail = t.relativeError() * exact;
            exact2 += exact * exact;
            avgGap2 += gap * gap;
            truncGap2 += tail * tail;
            long[] bShape = workers.get(0).factors().get(pair.b()).shape(), aShape = workers.get(0).factors().get(pair.a()).shape();
            averaged.put(pair.b(), Nd4j.create(t.b()).castTo(DataType.FLOAT).reshape(bShape));
            averaged.put(pair.a(), Nd4j.create(t.a()).castTo(DataType.FLOAT).reshape(aShape));
        }
        double norm = Math.sqrt(exact2);
        return new Result(averaged, norm == 0 ? 0 : Math.sqrt(avgGap2) / norm, norm == 0 ? 0 : Math.sqrt(truncGap2) / norm);
    }

    /**
     * ‖mean(B)·mean(A) − mean(B·A)‖_F / ‖mean(B·A)‖_F over all pairs together (what plain averaging would lose), for
     * {@code stack}, which uses mean(B·A) itself.
     */
    public static double averagingGap(List<PartitionFactors> workers, List<Pair> pairs) {
        double total = 0;
        for (PartitionFactors w : workers) total += w.weight();
        double exact2 = 0, gap2 = 0;
        for (Pair pair : pairs) {
            Stacked s = stack(workers, pair, total);
            double exact = LowRank.frobeniusOfProduct(s.b, s.a), gap = averagingGap(workers, pair, total, s);
            exact2 += exact * exact;
            gap2 += gap * gap;
        }
        return exact2 == 0 ? 0 : Math.sqrt(gap2 / exact2);
    }

    /** One pair's ‖mean(B)·mean(A) − mean(B·A)‖_F: plain averaging's product against the exact mean, [B_s | −mean B]·[A_s; mean A]. */
    private static double averagingGap(List<PartitionFactors> workers, Pair pair, double total, Stacked s) {
        double[][] meanB = weightedMean(workers, pair.b(), total), meanA = weightedMean(workers, pair.a(), total);
        return LowRank.frobeniusOfProduct(concatColumns(s.b, negate(meanB)), concatRows(s.a, meanA));
    }

    /** B_s = [(w_1/W)·B_1 | … | (w_P/W)·B_P] [out, P·r] and A_s = [A_1; …; A_P] [P·r, in]: B_s·A_s = Σ w_i·B_i·A_i / W. */
    record Stacked(double[][] b, double[][] a) {}

    /** {@link Stacked} of the workers' factors, filled in one pass (also {@link StackedRounds}' sum of folds, weight s each and total 1). */
    static Stacked stack(List<PartitionFactors> workers, Pair pair, double total) {
        List<double[][]> as = new ArrayList<>();
        int rank = 0;
        for (PartitionFactors w : workers) {
            as.add(matrix(w.factors(), pair.a()));
            rank += as.get(as.size() - 1).length;
        }
        double[][] a = new double[rank][], b = null;
        int at = 0;
        for (int k = 0; k < workers.size(); k++) {
            double[][] bk = matrix(workers.get(k).factors(), pair.b());
            if (b == null) b = new double[bk.length][rank];
            double f = workers.get(k).weight() / total;
            int rk = as.get(k).length;
            for (int i = 0; i < bk.length; i++) for (int j = 0; j < rk; j++) b[i][at + j] = f * bk[i][j];
            System.arraycopy(as.get(k), 0, a, at, rk);
            at += rk;
        }
        return new Stacked(b, a);
    }

    private static double[][] weightedMean(List<PartitionFactors> workers, String name, double total) {
        double[][] m = null;
        for (PartitionFactors w : workers) {
            double[][] x = matrix(w.factors(), name);
            if (m == null) m = new double[x.length][x[0].length];
            double f = w.weight() / total;
            for (int i = 0; i < x.length; i++) for (int j = 0; j < x[0].length; j++) m[i][j] += f * x[i][j];
        }
        return m;
    }

    /** A factor as a 2-d float64 matrix (rows = its first dimension). */
    private static double[][] matrix(AdapterTensors t, String name) {
        float[] v = t.data().get(name);
        if (v == null) throw new IllegalStateException("train.aggregate: svd: a worker sent no " + name);
        long[] shape = t.get(name).shape();
        int rows = (int) shape[0], cols = (int) (v.length / rows);
        double[][] m = new double[rows][cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) m[i][j] = v[i * cols + j];
        return m;
    }

    private static double[][] concatColumns(double[][] x, double[][] y) {
        double[][] o = new double[x.length][x[0].length + y[0].length];
        for (int i = 0; i < x.length; i++) {
            System.arraycopy(x[i], 0, o[i], 0, x[i].length);
            System.arraycopy(y[i], 0, o[i], x[i].length, y[i].length);
        }
        return o;
    }

    private static double[][] concatRows(double[][] x, double[][] y) {
        double[][] o = new double[x.length + y.length][];
        for (int i = 0; i < x.length; i++) o[i] = x[i].clone();
        for (int i = 0; i < y.length; i++) o[x.length + i] = y[i].clone();
        return o;
    }

    private static double[][] negate(double[][] x) {
        double[][] o = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            o[i] = x[i].clone();
            for (int j = 0; j < o[i].length; j++) o[i][j] = -o[i][j];
        }
        return o;
    }
}
