package io.sparklora.train;

import io.sparklora.model.ForwardContext;
import io.sparklora.model.TokenBatch;
import org.nd4j.linalg.api.rng.Random;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The sequences of one mixed-adapter training batch, added one adapter's run at a time (each adapter's blocks
 * consecutive, as {@link io.sparklora.model.TransformerLM#forwardBackwardMixed} needs), and the batch and context
 * they make.
 */
final class MixedBatch {
    private final List<int[]> blocks = new ArrayList<>();
    private final List<boolean[]> masks = new ArrayList<>();
    private final List<String> route = new ArrayList<>();

    /** Appends the blocks {@code indices} of {@code data} as adapter {@code name}'s sequences. */
    void add(String name, TokenBlocks data, int[] indices) {
        for (int i : indices) {
            blocks.add(data.block(i));
            masks.add(data.mask(i));
            route.add(name);
        }
    }

    boolean isEmpty() { return route.isEmpty(); }

    /** The next-token batch of every block added, in order. */
    TokenBatch batch() { return TokenBatch.shifted(blocks.toArray(new int[0][]), masks.toArray(new boolean[0][])); }

    /** The training context that routes each sequence to its adapter, dropout from {@code streams} (one per adapter added). */
    ForwardContext context(Map<String, Random> streams) {
        return ForwardContext.trainingMixed(route.toArray(new String[0]), streams);
    }
}
