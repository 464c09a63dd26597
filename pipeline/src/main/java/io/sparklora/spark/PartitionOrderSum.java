package io.sparklora.spark;

import org.apache.spark.Partitioner;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.Function2;
import scala.Tuple2;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Sums one value per partition in partition order, whatever order the tasks finish in, so that a stage's floating-point
 * result is the same bit for bit on an idle and on a busy cluster.
 *
 * <p>Spark's {@code aggregate}/{@code treeAggregate} merge task results on the driver as the tasks finish (and a tree
 * level's shuffle fetches them in arrival order). Floating-point addition is not associative: with three or more
 * partitions, {@code (a + b) + c} and {@code (a + c) + b} differ in the last bits, and which one a run computes depended
 * on which task happened to finish first. Two runs of the same config on four partitions gave adapters that differed
 * in the low bits of 20 of their floats (ReproducibleUnderLoadTest).
 *
 * <p>Here the values are folded strictly as {@code ((v0 + v1) + v2) + …} within groups of {@code fanIn} consecutive
 * partitions, and the groups' sums again in group order, level by level, until at most {@code fanIn} remain; those are
 * collected (Spark returns collected partitions in partition order) and folded on the driver. With
 * {@code partitions ≤ fanIn} that is one job and the driver holds at most {@code fanIn} values at once, as many as
 * {@code treeAggregate} at depth 2 brings it from that many partitions.
 */
public final class PartitionOrderSum {
    /** Partitions folded together per level; 16 adapter-sized values on the driver at most. */
    public static final int DEFAULT_FAN_IN = 16;

    private PartitionOrderSum() {}

    /** {@link #sum(JavaRDD, Function2, int)} with {@link #DEFAULT_FAN_IN}. */
    public static <T> T sum(JavaRDD<T> onePerPartition, Function2<T, T, T> add) throws Exception {
        return sum(onePerPartition, add, DEFAULT_FAN_IN);
    }

    /**
     * The sum of the RDD's values in partition order.
     *
     * @param onePerPartition an RDD whose every partition holds exactly one value (a task's result)
     * @param add             the sum of two values; may reuse its first argument
     * @throws IllegalStateException if a partition holds no value or more than one
     */
    public static <T> T sum(JavaRDD<T> onePerPartition, Function2<T, T, T> add, int fanIn) throws Exception {
        if (fanIn < 2) throw new IllegalArgumentException("fanIn must be at least 2, got " + fanIn);
        JavaPairRDD<Integer, T> level = JavaPairRDD.fromJavaRDD(onePerPartition.mapPartitionsWithIndex(new Indexed<>(), false));
        int n = onePerPartition.getNumPartitions();
        while (n > fanIn) {
            int groups = (n + fanIn - 1) / fanIn;
            level = level.mapToPair(new ToGroup<>(fanIn)).groupByKey(new ByKey(groups)).mapValues(new FoldInOrder<>(add));
            n = groups;
        }
        List<Tuple2<Integer, T>> rest = new ArrayList<>(level.collect());
        rest.sort(Comparator.comparing(Tuple2::_1));
        if (rest.size() != n) throw new IllegalStateException("expected one value per partition, got " + rest.size() + " for " + n);
        return fold(rest.stream().map(Tuple2::_2).toList(), add);
    }

    /**
     * The sum of {@code values} (one per partition, in partition order) with exactly the association of
     * {@link #sum(JavaRDD, Function2, int)}: groups of {@code fanIn} consecutive values folded in order, level by level,
     * then the rest folded. A round session ({@code spark.train.RoundSession}) adds its tasks' results with it, so its
     * sum equals the Spark job's bit for bit.
     */
    public static <T> T inOrder(List<T> values, Function2<T, T, T> add, int fanIn) throws Exception {
        if (fanIn < 2) throw new IllegalArgumentException("fanIn must be at least 2, got " + fanIn);
        if (values.isEmpty()) throw new IllegalArgumentException("nothing to sum");
        List<T> level = values;
        while (level.size() > fanIn) {
            List<T> next = new ArrayList<>();
            for (int g = 0; g < level.size(); g += fanIn) next.add(fold(level.subList(g, Math.min(level.size(), g + fanIn)), add));
            level = next;
        }
        return fold(level, add);
    }

    /** ((v0 + v1) + v2) + … in list order. */
    private static <T> T fold(List<T> values, Function2<T, T, T> add) throws Exception {
        T acc = values.get(0);
        for (int i = 1; i < values.size(); i++) acc = add.call(acc, values.get(i));
        return acc;
    }

    /** Tags a partition's single value with the partition's index. */
    static final class Indexed<T> implements Function2<Integer, java.util.Iterator<T>, java.util.Iterator<Tuple2<Integer, T>>> {
        private static final long serialVersionUID = 1L;

        @Override
        public java.util.Iterator<Tuple2<Integer, T>> call(Integer index, java.util.Iterator<T> values) {
            if (!values.hasNext()) throw new IllegalStateException("partition " + index + " produced no value to sum");
            T v = values.next();
            if (values.hasNext()) throw new IllegalStateException("partition " + index + " produced more than one value to sum");
            return List.of(new Tuple2<>(index, v)).iterator();
        }
    }

    /** (index, value) → (group, (index, value)). */
    static final class ToGroup<T> implements org.apache.spark.api.java.function.PairFunction<Tuple2<Integer, T>, Integer, Tuple2<Integer, T>> {
        private static final long serialVersionUID = 1L;
        private final int fanIn;

        ToGroup(int fanIn) { this.fanIn = fanIn; }

        @Override
        public Tuple2<Integer, Tuple2<Integer, T>> call(Tuple2<Integer, T> t) {
            return new Tuple2<>(t._1() / fanIn, t);
        }
    }

    /** Folds a group's values in index order. */
    static final class FoldInOrder<T> implements org.apache.spark.api.java.function.Function<Iterable<Tuple2<Integer, T>>, T> {
        private static final long serialVersionUID = 1L;
        private final Function2<T, T, T> add;

        FoldInOrder(Function2<T, T, T> add) { this.add = add; }

        @Override
        public T call(Iterable<Tuple2<Integer, T>> group) throws Exception {
            List<Tuple2<Integer, T>> sorted = new ArrayList<>();
            group.forEach(sorted::add);
            sorted.sort(Comparator.comparing(Tuple2::_1));
            return fold(sorted.stream().map(Tuple2::_2).toList(), add);
        }
    }

    /** Group g goes to partition g, so the next level's partition index is the group's. */
    static final class ByKey extends Partitioner implements Serializable {
        private static final long serialVersionUID = 1L;
        private final int n;

        ByKey(int n) { this.n = n; }

        @Override public int numPartitions() { return n; }

        @Override public int getPartition(Object key) { return (Integer) key; }

        @Override public boolean equals(Object o) { return o instanceof ByKey b && b.n == n; }

        @Override public int hashCode() { return n; }
    }
}
