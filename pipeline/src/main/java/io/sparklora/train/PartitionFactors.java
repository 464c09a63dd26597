package io.sparklora.train;

import java.io.Serializable;

/**
 * One task's trained low-rank factors, unweighted, with its weight (target tokens), for {@code train.aggregate: svd}:
 * the driver needs each worker's B_i and A_i, not their sums, to form Σ w_i·B_i·A_i exactly. (A class, not a record:
 * Spark's Kryo cannot build records.)
 */
public final class PartitionFactors implements Serializable {
    private static final long serialVersionUID = 1L;
    private final int partition;
    private final double weight;
    private final AdapterTensors factors;

    public PartitionFactors(int partition, double weight, AdapterTensors factors) {
        this.partition = partition;
        this.weight = weight;
        this.factors = factors;
    }

    public int partition() { return partition; }
    public double weight() { return weight; }
    public AdapterTensors factors() { return factors; }
}
