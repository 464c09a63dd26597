package io.sparklora.model;

import org.nd4j.linalg.api.rng.Random;

/**
 * What one forward pass needs besides its input: whether it trains (adapter dropout on), the random stream that
 * dropout draws from, and, for a mixed-adapter inference batch, which adapter each sequence uses. Passed explicitly
 * so runs are reproducible from a seed and no module reads global state.
 *
 * @param sequenceAdapters null: every active adapter applies to every row. Otherwise one name per sequence of the
 *                         batch ({@link TransformerLM#BASE_ONLY}: none); each {@link Linear} gives a sequence's rows
 *                         that adapter's contribution only, whichever adapters are active, and the base matmul runs
 *                         once for the whole batch. Inference only.
 */
public record ForwardContext(boolean training, Random random, String[] sequenceAdapters) {
    public ForwardContext(boolean training, Random random) {
        this(training, random, null);
    }

    public ForwardContext {
        if (sequenceAdapters != null) {
            if (training) throw new IllegalArgumentException("a mixed-adapter batch (one adapter per sequence) is for inference only");
            sequenceAdapters = sequenceAdapters.clone();
        }
    }

    public static ForwardContext inference() { return new ForwardContext(false, null); }

    /** Inference where sequence b uses adapter {@code sequenceAdapters[b]} only ({@link TransformerLM#BASE_ONLY}: none). */
    public static ForwardContext inference(String[] sequenceAdapters) { return new ForwardContext(false, null, sequenceAdapters); }

    public static ForwardContext training(Random random) { return new ForwardContext(true, random); }
}
