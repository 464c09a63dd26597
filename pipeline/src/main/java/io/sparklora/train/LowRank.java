package io.sparklora.train;

import java.util.Arrays;

/**
 * Sums of low-rank products B·A in float64, kept factored: the Frobenius norm of a product and its rank-r truncated SVD,
 * computed from thin QR factorisations of the factors and the SVD of the small core between them, so that no
 * [out, in] matrix is formed. For B [out, k] and A [k, in]: B = Q_b·R_b, Aᵀ = Q_a·R_a, and B·A = Q_b·(R_b·R_aᵀ)·Q_aᵀ
 * with orthonormal Q_b, Q_a, so the product's singular values are the core's. Matrices are row-major {@code double[rows][cols]}.
 */
public final class LowRank {
    private LowRank() {}

    /** A rank-r factorisation B [out, r] · A [r, in], with the singular values of the product it was cut from. */
    public record Truncated(double[][] b, double[][] a, double[] singularValues, int rank) {
        /** ‖B·A − the full product‖_F / ‖the full product‖_F: √(Σ_{i≥r} σ_i²) / √(Σ σ_i²); 0 for a zero product. */
        public double relativeError() {
            double total = 0, tail = 0;
            for (int i = 0; i < singularValues.length; i++) {
                total += singularValues[i] * singularValues[i];
                if (i >= rank) tail += singularValues[i] * singularValues[i];
            }
            return total == 0 ? 0 : Math.sqrt(tail / total);
        }
    }

    /** ‖B·A‖_F for B [out, k], A [k, in]. */
    public static double frobeniusOfProduct(double[][] b, double[][] a) {
        double[][] rb = qr(b)[1], ra = qr(transpose(a))[1];
        double[][] core = multiplyTransposed(rb, ra);
        double s = 0;
        for (double[] row : core) for (double v : row) s += v * v;
        return Math.sqrt(s);
    }

    /**
     * The best rank-r approximation of B·A (B [out, k], A [k, in]) in the Frobenius norm, as B' [out, r'] · A' [r', in]
     * with the singular values split evenly: B' = Q_b·U_r·√Σ_r, A' = √Σ_r·V_rᵀ·Q_aᵀ. r' = r; columns beyond the product's
     * rank are zero.
     */
    public static Truncated truncate(double[][] b, double[][] a, int r) {
        int out = b.length, in = a[0].length;
        double[][][] qrb = qr(b), qra = qr(transpose(a));
        double[][] qb = qrb[0], qa = qra[0];
        double[][] core = multiplyTransposed(qrb[1], qra[1]);       // [qb cols, qa cols]
        double[][][] svd = svd(core);
        double[][] u = svd[0], v = svd[2];
        double[] sigma = svd[1][0];
        double[][] bOut = new double[out][r], aOut = new double[r][in];
        int n = Math.min(r, sigma.length);
        for (int j = 0; j < n; j++) {
            double root = Math.sqrt(sigma[j]);
            for (int i = 0; i < out; i++) {
                double s = 0;
                for (int t = 0; t < u.length; t++) s += qb[i][t] * u[t][j];
                bOut[i][j] = s * root;
            }
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int t = 0; t < v.length; t++) s += qa[i][t] * v[t][j];
                aOut[j][i] = s * root;
            }
        }
        return new Truncated(bOut, aOut, sigma, r);
    }

    /**
     * Thin Householder QR of x [m, k]: {Q [m, q], R [q, k]} with q = min(m, k), Qᵀ·Q = I and x = Q·R. Signs follow
     * Householder's choice (R's diagonal may be negative).
     */
    static double[][][] qr(double[][] x) {
        int m = x.length, k = x[0].length, q = Math.min(m, k);
        double[][] w = new double[m][];
        for (int i = 0; i < m; i++) w[i] = x[i].clone();
        double[][] vs = new double[q][];
        double[] vNorm2 = new double[q];
        for (int j = 0; j < q; j++) {
            double norm = 0;
            for (int i = j; i < m; i++) norm += w[i][j] * w[i][j];
            norm = Math.sqrt(norm);
            if (norm == 0) continue;
            double alpha = w[j][j] > 0 ? -norm : norm;
            double[] v = new double[m - j];
            v[0] = w[j][j] - alpha;
            for (int i = j + 1; i < m; i++) v[i - j] = w[i][j];
            double vv = 0;
            for (double e : v) vv += e * e;
            if (vv == 0) continue;
            for (int c = j; c < k; c++) {
                double s = 0;
                for (int i = j; i < m; i++) s += v[i - j] * w[i][c];
                double f = 2 * s / vv;
                for (int i = j; i < m; i++) w[i][c] -= f * v[i - j];
            }
            vs[j] = v;
            vNorm2[j] = vv;
        }
        double[][] r = new double[q][k];
        for (int i = 0; i < q; i++) for (int c = i; c < k; c++) r[i][c] = w[i][c];
        double[][] qm = new double[m][q];
        for (int i = 0; i < q; i++) qm[i][i] = 1;
        for (int j = q - 1; j >= 0; j--) {          // Q = H_0·H_1·…·H_{q-1}·[I; 0]
            double[] v = vs[j];
            if (v == null) continue;
            for (int c = 0; c < q; c++) {
                double s = 0;
                for (int i = j; i < m; i++) s += v[i - j] * qm[i][c];
                double f = 2 * s / vNorm2[j];
                for (int i = j; i < m; i++) qm[i][c] -= f * v[i - j];
            }
        }
        return new double[][][]{qm, r};
    }

    /**
     * SVD of a small matrix m [p, n] by one-sided Jacobi rotations: {U [p, t], {σ} [1][t], V [n, t]} with t = min(p, n),
     * σ descending and m = U·diag(σ)·Vᵀ (to float64 rounding).
     */
    static double[][][] svd(double[][] m) {
        int p = m.length, n = m[0].length;
        if (p < n) {                                    // work on the tall one: mᵀ = V·Σ·Uᵀ
            double[][][] t = svd(transpose(m));
            return new double[][][]{t[2], t[1], t[0]};
        }
        double[][] u = new double[p][];
        for (int i = 0; i < p; i++) u[i] = m[i].clone();
        double[][] v = new double[n][n];
        for (int i = 0; i < n; i++) v[i][i] = 1;
        for (int sweep = 0; sweep < 60; sweep++) {
            boolean rotated = false;
            for (int a = 0; a < n - 1; a++) {
                for (int b = a + 1; b < n; b++) {
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < p; i++) {
                        alpha += u[i][a] * u[i][a];
                        beta += u[i][b] * u[i][b];
                        gamma += u[i][a] * u[i][b];
                    }
                    if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma == 0) continue;
                    rotated = true;
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    if (zeta == 0) t = 1;
                    double c = 1 / Math.sqrt(1 + t * t), s = c * t;
                    for (int i = 0; i < p; i++) {
                        double x = u[i][a], y = u[i][b];
                        u[i][a] = c * x - s * y;
                        u[i][b] = s * x + c * y;
                    }
                    for (int i = 0; i < n; i++) {
                        double x = v[i][a], y = v[i][b];
                        v[i][a] = c * x - s * y;
                        v[i][b] = s * x + c * y;
                    }
                }
            }
            if (!rotated) break;
        }
        double[] sigma = new double[n];
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int i = 0; i < p; i++) s += u[i][j] * u[i][j];
            sigma[j] = Math.sqrt(s);
        }
        Integer[] order = new Integer[n];
        for (int j = 0; j < n; j++) order[j] = j;
        Arrays.sort(order, (x, y) -> Double.compare(sigma[y], sigma[x]));
        double[][] uo = new double[p][n], vo = new double[n][n];
        double[] so = new double[n];
        for (int jj = 0; jj < n; jj++) {
            int j = order[jj];
            so[jj] = sigma[j];
            for (int i = 0; i < p; i++) uo[i][jj] = sigma[j] == 0 ? 0 : u[i][j] / sigma[j];
            for (int i = 0; i < n; i++) vo[i][jj] = v[i][j];
        }
        return new double[][][]{uo, {so}, vo};
    }

    static double[][] transpose(double[][] x) {
        double[][] t = new double[x[0].length][x.length];
        for (int i = 0; i < x.length; i++) for (int j = 0; j < x[0].length; j++) t[j][i] = x[i][j];
        return t;
    }

    /** x·yᵀ for x [p, k], y [q, k]. */
    static double[][] multiplyTransposed(double[][] x, double[][] y) {
        int k = x[0].length;
        if (y[0].length != k) throw new IllegalArgumentException("inner sizes differ: " + k + " and " + y[0].length);
        double[][] o = new double[x.length][y.length];
        for (int i = 0; i < x.length; i++) {
            for (int j = 0; j < y.length; j++) {
                double s = 0;
                for (int t = 0; t < k; t++) s += x[i][t] * y[j][t];
                o[i][j] = s;
            }
        }
        return o;
    }
}
