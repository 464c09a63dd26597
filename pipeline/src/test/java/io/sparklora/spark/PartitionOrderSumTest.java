package io.sparklora.spark;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function2;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Iterator;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Task results are added in partition order, not in the order the tasks finish: the tasks here finish in reverse
 * order, and the values are chosen so that every order of addition gives a different double.
 */
class PartitionOrderSumTest {
    static JavaSparkContext sc;

    @BeforeAll
    static void start() { sc = SparkSetup.local(4); }

    @AfterAll
    static void stop() { sc.stop(); }

    /** Partition i's value; large and small magnitudes mixed, so that addition order shows in the result. */
    static double value(int i) {
        return (i % 2 == 0 ? 1e16 : -1e16) * (1 + i / 7.0) + Math.PI * (i + 1);
    }

    /** One value per partition; partition i sleeps longer the smaller i is, so the last partition finishes first. */
    record SlowFirst(int partitions) implements Function2<Integer, Iterator<Integer>, Iterator<double[]>> {
        @Override
        public Iterator<double[]> call(Integer i, Iterator<Integer> ignored) throws Exception {
            Thread.sleep(40L * (partitions - i));
            return List.of(new double[]{value(i)}).iterator();
        }
    }

    record Add() implements Function2<double[], double[], double[]> {
        @Override
        public double[] call(double[] a, double[] b) {
            a[0] += b[0];
            return a;
        }
    }

    static JavaRDD<double[]> values(int n) {
        return sc.parallelize(IntStream.range(0, n).boxed().toList(), n).mapPartitionsWithIndex(new SlowFirst(n), false);
    }

    @Test
    void sumsInPartitionOrderWhateverOrderTheTasksFinishIn() throws Exception {
        double expected = 0;
        for (int i = 0; i < 8; i++) expected = i == 0 ? value(0) : expected + value(i);
        double reversed = value(7);
        for (int i = 6; i >= 0; i--) reversed += value(i);
        assertNotEquals(expected, reversed, "the test values must be order-sensitive");
        for (int run = 0; run < 3; run++) {
            assertEquals(expected, PartitionOrderSum.sum(values(8), new Add())[0], 0.0, "run " + run);
        }
    }

    @Test
    void aTreeOfLevelsFoldsConsecutiveGroupsInOrder() throws Exception {
        double[] v = new double[8];
        for (int i = 0; i < 8; i++) v[i] = value(i);
        // fan-in 2: ((v0+v1)+(v2+v3)) + ((v4+v5)+(v6+v7))
        double expected = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        assertEquals(expected, PartitionOrderSum.sum(values(8), new Add(), 2)[0], 0.0);
        // fan-in 3 over 7: (v0+v1+v2), (v3+v4+v5), (v6), folded in order on the driver
        double seven = ((v[0] + v[1]) + v[2] + ((v[3] + v[4]) + v[5])) + v[6];
        assertEquals(seven, PartitionOrderSum.sum(values(7), new Add(), 3)[0], 0.0);
    }

    @Test
    void aPartitionWithoutExactlyOneValueIsRefused() {
        JavaRDD<double[]> two = sc.parallelize(List.of(new double[]{1}, new double[]{2}, new double[]{3}), 2);
        Exception e = assertThrows(Exception.class, () -> PartitionOrderSum.sum(two, new Add()));
        String all = e.toString() + (e.getCause() == null ? "" : e.getCause().toString());
        assertTrue(all.contains("more than one value to sum"), all);
        assertThrows(IllegalArgumentException.class, () -> PartitionOrderSum.sum(values(2), new Add(), 1));
    }
}
