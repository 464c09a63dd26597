package io.sparklora.train;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The factored QR/SVD arithmetic against dense products and LAPACK's SVD. */
class LowRankTest {
    static double[][] random(int rows, int cols, long seed) {
        Random r = new Random(seed);
        double[][] m = new double[rows][cols];
        for (double[] row : m) for (int j = 0; j < cols; j++) row[j] = r.nextGaussian();
        return m;
    }

    static double[][] product(double[][] b, double[][] a) {
        double[][] o = new double[b.length][a[0].length];
        for (int i = 0; i < b.length; i++) for (int t = 0; t < a.length; t++) for (int j = 0; j < a[0].length; j++) o[i][j] += b[i][t] * a[t][j];
        return o;
    }

    static double frob(double[][] m) {
        double s = 0;
        for (double[] row : m) for (double v : row) s += v * v;
        return Math.sqrt(s);
    }

    static double[][] minus(double[][] x, double[][] y) {
        double[][] o = new double[x.length][x[0].length];
        for (int i = 0; i < x.length; i++) for (int j = 0; j < x[0].length; j++) o[i][j] = x[i][j] - y[i][j];
        return o;
    }

    @Test
    void qrIsOrthonormalAndReconstructsTallAndWideInputs() {
        for (int[] s : new int[][]{{40, 6}, {5, 9}, {7, 7}}) {
            double[][] x = random(s[0], s[1], s[0] * 31L + s[1]);
            double[][][] qr = LowRank.qr(x);
            assertTrue(frob(minus(product(qr[0], qr[1]), x)) < 1e-10 * frob(x), "Q·R != x for " + s[0] + "x" + s[1]);
            double[][] qtq = product(LowRank.transpose(qr[0]), qr[0]);
            for (int i = 0; i < qtq.length; i++) for (int j = 0; j < qtq.length; j++) assertEquals(i == j ? 1 : 0, qtq[i][j], 1e-12);
        }
    }

    @Test
    void truncationIsExactAtFullRankAndMatchesLapacksTailBelowIt() {
        double[][] b = random(30, 12, 1), a = random(12, 50, 2);          // a rank-12 product [30, 50]
        double[][] dense = product(b, a);
        LowRank.Truncated full = LowRank.truncate(b, a, 12);
        assertTrue(frob(minus(product(full.b(), full.a()), dense)) < 1e-10 * frob(dense));
        assertEquals(0, full.relativeError(), 1e-12);
        assertEquals(frob(dense), LowRank.frobeniusOfProduct(b, a), 1e-9 * frob(dense));

        INDArray d = Nd4j.create(dense).castTo(DataType.DOUBLE);
        INDArray s = Nd4j.create(DataType.DOUBLE, 30);
        Nd4j.getBlasWrapper().lapack().gesvd(d.dup('f'), s, Nd4j.create(DataType.DOUBLE, new long[]{30, 30}, 'f'),
                Nd4j.create(DataType.DOUBLE, new long[]{50, 50}, 'f'));
        double[] sv = s.toDoubleVector();
        LowRank.Truncated cut = LowRank.truncate(b, a, 5);
        for (int i = 0; i < 12; i++) assertEquals(sv[i], cut.singularValues()[i], 1e-9 * sv[0], "sigma " + i);
        double tail = 0;
        for (int i = 5; i < 30; i++) tail += sv[i] * sv[i];
        double err = frob(minus(product(cut.b(), cut.a()), dense));
        assertEquals(Math.sqrt(tail), err, 1e-9 * frob(dense), "the rank-5 cut is Eckart-Young's best");
        assertEquals(err / frob(dense), cut.relativeError(), 1e-12);
    }

    @Test
    void aZeroProductGivesZeroFactors() {
        double[][] b = new double[8][4], a = random(4, 6, 3);
        LowRank.Truncated t = LowRank.truncate(b, a, 2);
        assertEquals(0, frob(t.b()) * frob(t.a()), 0);
        assertEquals(0, t.relativeError());
    }
}
