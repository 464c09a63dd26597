package io.sparklora.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Reading the PyTorch reference scripts' {@code expected.json} and comparing the engine's arrays to it. */
public final class ReferenceJson {
    private ReferenceJson() {}

    public static int[][] ints(JsonNode n) {
        int[][] out = new int[n.size()][];
        for (int i = 0; i < n.size(); i++) {
            out[i] = new int[n.get(i).size()];
            for (int j = 0; j < out[i].length; j++) out[i][j] = n.get(i).get(j).asInt();
        }
        return out;
    }

    /** A 2-D JSON array, or a 3-D one [B][T][V] flattened to [B·T][V] rows (the engine's logits layout). */
    public static double[][] rows(JsonNode n) {
        List<double[]> out = new ArrayList<>();
        if (n.get(0).get(0).isArray()) {
            for (JsonNode seq : n) for (JsonNode row : seq) out.add(doubles(row));
        } else {
            for (JsonNode row : n) out.add(doubles(row));
        }
        return out.toArray(new double[0][]);
    }

    public static double[] doubles(JsonNode row) {
        double[] d = new double[row.size()];
        for (int i = 0; i < d.length; i++) d[i] = row.get(i).asDouble();
        return d;
    }

    /** Max |actual − want| for a 2-D array, or a vector compared as one row; NaN fails every "&lt; tol" check, a shape mismatch fails. */
    public static double maxAbsDiff(INDArray actual, double[][] want) {
        INDArray a = actual.rank() == 1 ? actual.reshape(1, actual.length()) : actual;
        assertEquals(2, a.rank());
        assertEquals(want.length, a.size(0));
        double max = 0;
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i].length, a.size(1));
            for (int j = 0; j < want[i].length; j++) {
                double d = Math.abs(a.getDouble(i, j) - want[i][j]);
                if (Double.isNaN(d)) return Double.POSITIVE_INFINITY;
                max = Math.max(max, d);
            }
        }
        return max;
    }
}
