package io.sparklora.train;

import java.util.Random;

/**
 * The order in which blocks are visited: a fresh seeded permutation per epoch, so a run is
 * reproducible from its seed and a resumed run can find its place from (epoch, position).
 */
public final class BatchOrder {
    private final int size;
    private final long seed;
    private int epoch = -1;
    private int position;
    private int[] perm;

    public BatchOrder(int size, long seed) {
        if (size <= 0) throw new IllegalArgumentException("no training blocks: the data set is empty");
        this.size = size;
        this.seed = seed;
        nextEpoch();
    }

    /**
     * The order of a run that has already consumed {@code consumed} blocks: a distributed task uses it to
     * find its place from the round number alone, so no per-partition cursor has to survive between rounds.
     */
    public static BatchOrder at(int size, long seed, long consumed) {
        BatchOrder o = new BatchOrder(size, seed);
        long epochs = consumed / size;
        if (epochs > 0) {
            o.epoch = (int) epochs - 1;
            o.nextEpoch();
        }
        o.position = (int) (consumed % size);
        return o;
    }

    private void nextEpoch() {
        epoch++;
        position = 0;
        perm = new int[size];
        for (int i = 0; i < size; i++) perm[i] = i;
        Random r = new Random(seed * 1_000_003L + epoch);
        for (int i = size - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
    }

    /** The next {@code n} block indices, wrapping into a new epoch when needed. */
    public int[] next(int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            if (position == size) nextEpoch();
            out[i] = perm[position++];
        }
        return out;
    }

    public int epoch() { return epoch; }
    public int position() { return position; }
}
