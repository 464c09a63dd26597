package io.sparklora.model;

import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Every seeded ND4J random stream of the project comes from here. ND4J takes a seed of 0 to mean "seed from
 * the clock", so a user's {@code seed: 0} (or VeRA's default {@code projection_prng_key} of 0) would silently
 * give a different stream in every JVM; the seed is mixed (splitmix64) into one that is never 0.
 */
public final class Seeds {
    private Seeds() {}

    /** A reproducible stream for {@code seed}, the same in every JVM. */
    public static Random rng(long seed) {
        return Nd4j.getRandomFactory().getNewRandomInstance(mix(seed));
    }

    static long mix(long seed) {
        long z = seed + 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return z == 0 ? 1 : z;
    }
}
