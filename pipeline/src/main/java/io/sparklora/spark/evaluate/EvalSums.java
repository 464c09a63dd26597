package io.sparklora.spark.evaluate;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/** Per evaluation target: Σ token NLL, target tokens, correct and total labelled examples. Summed by treeAggregate. */
public final class EvalSums implements Serializable {
    private static final long serialVersionUID = 1L;
    public final LinkedHashMap<String, double[]> byTarget = new LinkedHashMap<>();   // name → {nll, tokens, correct, examples}

    public double[] of(String target) { return byTarget.computeIfAbsent(target, k -> new double[4]); }

    public EvalSums add(EvalSums o) {
        for (Map.Entry<String, double[]> e : o.byTarget.entrySet()) {
            double[] d = of(e.getKey());
            for (int i = 0; i < 4; i++) d[i] += e.getValue()[i];
        }
        return this;
    }
}
