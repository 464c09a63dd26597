package io.sparklora.spark.drop;

import java.io.Serializable;
import java.util.Map;
import java.util.TreeMap;

/** Per adapted module: Σ‖B·A·x‖² over sampled tokens and the token count. Summed in partition order (PartitionOrderSum). */
public final class ImportanceSums implements Serializable {
    private static final long serialVersionUID = 1L;
    public final TreeMap<String, double[]> byModule = new TreeMap<>();   // module → {Σ‖delta‖², rows}

    public void add(String module, double sumSquares, long rows) {
        double[] d = byModule.computeIfAbsent(module, k -> new double[2]);
        d[0] += sumSquares;
        d[1] += rows;
    }

    public ImportanceSums add(ImportanceSums o) {
        for (Map.Entry<String, double[]> e : o.byModule.entrySet()) add(e.getKey(), e.getValue()[0], (long) e.getValue()[1]);
        return this;
    }

    /** Mean squared output norm per module. */
    public Map<String, Double> means() {
        Map<String, Double> m = new TreeMap<>();
        byModule.forEach((k, v) -> m.put(k, v[1] > 0 ? v[0] / v[1] : 0.0));
        return m;
    }
}
