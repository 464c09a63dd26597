package io.sparklora.model;

import org.nd4j.linalg.api.rng.Random;

/**
 * What one forward pass needs besides its input: whether it trains (adapter dropout on) and the
 * random stream that dropout draws from. Passed explicitly so runs are reproducible from a seed
 * and no module reads global state.
 */
public record ForwardContext(boolean training, Random random) {
    public static ForwardContext inference() { return new ForwardContext(false, null); }

    public static ForwardContext training(Random random) { return new ForwardContext(true, random); }
}
