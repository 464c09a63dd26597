package io.sparklora.adapters.lokr;

/**
 * How LoKr splits a dimension into two factors, m·n = dimension with m ≤ n: PEFT's {@code factorization()}
 * (PEFT's LoKr layer, itself taken from an older LyCORIS). With {@code factor} > 0 dividing the dimension, the
 * split is (factor, dimension/factor), ordered; otherwise it walks up the divisors m = 2, 3, … while m + n does
 * not exceed 1 + dimension and m does not exceed the factor (−1: no bound), keeping the last pair it accepted.
 *
 * <p>LyCORIS's current version takes the factor branch only when dimension ≥ factor², so for a factor above the
 * square root the two differ: 12 with factor 6 is (2, 6) here and (3, 4) in LyCORIS. spark-lora writes PEFT's
 * layout, so it uses PEFT's rule; {@code FactorizationTest} pins the cases where they differ.
 */
public final class Factorization {
    private Factorization() {}

    /** {m, n}, m·n = dimension, m ≤ n. */
    public static int[] split(int dimension, int factor) {
        if (dimension <= 0) throw new IllegalArgumentException("cannot factorise dimension " + dimension);
        if (factor > 0 && dimension % factor == 0) {
            int m = factor, n = dimension / factor;
            return m > n ? new int[]{n, m} : new int[]{m, n};
        }
        if (factor < 0) factor = dimension;
        int m = 1, n = dimension;
        int length = m + n;                       // PEFT never updates it: the bound stays 1 + dimension
        while (m < n) {
            int newM = m + 1;
            while (dimension % newM != 0) newM++;
            int newN = dimension / newM;
            if (newM + newN > length || newM > factor) break;
            m = newM;
            n = newN;
        }
        return m > n ? new int[]{n, m} : new int[]{m, n};
    }
}
