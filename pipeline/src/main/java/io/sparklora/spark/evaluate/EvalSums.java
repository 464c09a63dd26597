package io.sparklora.spark.evaluate;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Per evaluation target: Σ token NLL, target tokens, correct (by total label log-likelihood), correct by
 * length-normalised log-likelihood, and labelled examples; plus the validation examples per label (the same
 * for every target; kept once, for the majority-class baseline). Summed in partition order (PartitionOrderSum).
 */
public final class EvalSums implements Serializable {
    private static final long serialVersionUID = 1L;
    public static final int NLL = 0, TOKENS = 1, CORRECT = 2, CORRECT_NORM = 3, EXAMPLES = 4, FIELDS = 5;
    public final LinkedHashMap<String, double[]> byTarget = new LinkedHashMap<>();   // name → the FIELDS above
    public long[] perLabel = new long[0];
    /** Validation examples per label of each dataset, when one pass evaluates several ({@link MixedEvaluateStage}). */
    public final LinkedHashMap<String, long[]> perLabelOf = new LinkedHashMap<>();

    public double[] of(String target) { return byTarget.computeIfAbsent(target, k -> new double[FIELDS]); }

    /** Counts one validation example of label {@code label}. */
    public void countLabel(int label) {
        if (label >= perLabel.length) perLabel = java.util.Arrays.copyOf(perLabel, label + 1);
        perLabel[label]++;
    }

    /** Counts one validation example of label {@code label} of {@code dataset}. */
    public void countLabel(String dataset, int label) {
        long[] c = perLabelOf.getOrDefault(dataset, new long[0]);
        if (label >= c.length) c = java.util.Arrays.copyOf(c, label + 1);
        c[label]++;
        perLabelOf.put(dataset, c);
    }

    public EvalSums add(EvalSums o) {
        for (Map.Entry<String, long[]> e : o.perLabelOf.entrySet()) {
            long[] mine = perLabelOf.getOrDefault(e.getKey(), new long[0]), theirs = e.getValue();
            if (theirs.length > mine.length) mine = java.util.Arrays.copyOf(mine, theirs.length);
            for (int l = 0; l < theirs.length; l++) mine[l] += theirs[l];
            perLabelOf.put(e.getKey(), mine);
        }
        for (Map.Entry<String, double[]> e : o.byTarget.entrySet()) {
            double[] d = of(e.getKey());
            for (int i = 0; i < FIELDS; i++) d[i] += e.getValue()[i];
        }
        for (int l = 0; l < o.perLabel.length; l++) {
            if (l >= perLabel.length) perLabel = java.util.Arrays.copyOf(perLabel, l + 1);
            perLabel[l] += o.perLabel[l];
        }
        return this;
    }
}
