package io.sparklora.adapters.vera;

import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * VeRA's one pair of frozen random matrices, shared by every adapted layer of a model: A [r, maxIn] and
 * B [maxOut, r], where maxIn and maxOut are the largest input and output sizes among the adapted layers.
 * A layer with fewer inputs or outputs uses the leading slice: A[:, :in], B[:out, :].
 *
 * <p>Made from {@code projection_prng_key} alone, so every executor builds the same pair without it ever
 * being broadcast. The distribution is PEFT's (kaiming-uniform with a = 0 on each: bound √(6 / fan_in),
 * fan_in = maxIn for A and r for B); the random stream is ND4J's, not torch's, so a pair drawn here differs
 * from one PEFT would draw from the same key. Saving with {@code save_projection: true} (the default) makes
 * the adapter file self-contained, and loading reads the saved pair.
 */
public final class VeraProjections {
    private final Parameter a;
    private final Parameter b;

    public VeraProjections(int r, int maxIn, int maxOut, long prngKey, DataType dtype) {
        Random rng = io.sparklora.model.Seeds.rng(prngKey);
        this.a = new Parameter("vera_A", uniform(rng, r, maxIn, Math.sqrt(6.0 / maxIn), dtype), false, "vera_A");
        this.b = new Parameter("vera_B", uniform(rng, maxOut, r, Math.sqrt(6.0 / r), dtype), false, "vera_B");
    }

    private static INDArray uniform(Random rng, int rows, int cols, double bound, DataType dtype) {
        return Nd4j.rand(rng, rows, cols).castTo(dtype).muli(2 * bound).subi(bound);
    }

    public Parameter a() { return a; }
    public Parameter b() { return b; }

    /** A[:, :in] [r, in]: the whole array when in is the largest, otherwise a copy of the slice. */
    INDArray aSlice(int in) {
        INDArray full = a.value();
        return in == full.columns() ? full : full.get(NDArrayIndex.all(), NDArrayIndex.interval(0, in)).dup('c');
    }

    /** B[:out, :] [out, r]. */
    INDArray bSlice(int out) {
        INDArray full = b.value();
        return out == full.rows() ? full : full.get(NDArrayIndex.interval(0, out), NDArrayIndex.all()).dup('c');
    }
}
