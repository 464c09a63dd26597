package io.sparklora.model;

import org.nd4j.linalg.api.rng.Random;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What one forward pass needs besides its input: whether it trains (adapter dropout on), the random stream that
 * dropout draws from, and, for a mixed-adapter batch, which adapter each sequence uses. Passed explicitly so runs
 * are reproducible from a seed and no module reads global state.
 *
 * @param sequenceAdapters null: every active adapter applies to every row. Otherwise one name per sequence of the
 *                         batch ({@link TransformerLM#BASE_ONLY}: none); each {@link Linear} gives a sequence's rows
 *                         that adapter's contribution only, whichever adapters are active, and the base matmul runs
 *                         once for the whole batch.
 * @param adapterRandoms   for a mixed-adapter training batch: each adapter's own dropout stream, so an adapter draws
 *                         exactly the masks it would draw trained alone with that stream (its rows must then be one
 *                         run of consecutive sequences). Null otherwise.
 */
public record ForwardContext(boolean training, Random random, String[] sequenceAdapters, Map<String, Random> adapterRandoms) {
    public ForwardContext(boolean training, Random random) {
        this(training, random, null, null);
    }

    public ForwardContext(boolean training, Random random, String[] sequenceAdapters) {
        this(training, random, sequenceAdapters, null);
    }

    public ForwardContext {
        if (sequenceAdapters != null) {
            if (training && adapterRandoms == null) {
                throw new IllegalArgumentException("a mixed-adapter training batch needs each adapter's own dropout stream (adapterRandoms)");
            }
            sequenceAdapters = sequenceAdapters.clone();
        }
        if (adapterRandoms != null) {
            if (!training || sequenceAdapters == null) throw new IllegalArgumentException("adapterRandoms are for a mixed-adapter training batch only");
            adapterRandoms = Collections.unmodifiableMap(new LinkedHashMap<>(adapterRandoms));
        }
    }

    public static ForwardContext inference() { return new ForwardContext(false, null); }

    /** Inference where sequence b uses adapter {@code sequenceAdapters[b]} only ({@link TransformerLM#BASE_ONLY}: none). */
    public static ForwardContext inference(String[] sequenceAdapters) { return new ForwardContext(false, null, sequenceAdapters); }

    public static ForwardContext training(Random random) { return new ForwardContext(true, random); }

    /**
     * Training where sequence b's rows train adapter {@code sequenceAdapters[b]} only, with dropout drawn from
     * {@code adapterRandoms.get(name)}: one forward and backward serve several adapters over one frozen base.
     */
    public static ForwardContext trainingMixed(String[] sequenceAdapters, Map<String, Random> adapterRandoms) {
        return new ForwardContext(true, null, sequenceAdapters, adapterRandoms);
    }

    /** The context an adapter sees on its own rows of a mixed batch: plain, with its own stream when training. */
    public ForwardContext forAdapter(String adapterName) {
        if (adapterRandoms == null) return training ? new ForwardContext(true, random) : inference();
        return new ForwardContext(true, adapterRandoms.get(adapterName));
    }

    /** The context for the rows of one adapter only (all rows use {@code adapterName}), keeping its stream. */
    public ForwardContext onlyAdapter(String adapterName) {
        return new ForwardContext(training, random, new String[]{adapterName}, adapterRandoms);
    }

    /** A maximal run of consecutive sequences, [from, to), that name the same adapter in a mixed-adapter batch. */
    public record AdapterRun(String adapter, int from, int to) {}

    /** The mixed batch's sequences as maximal runs of one adapter each, in batch order (empty when not mixed). */
    public List<AdapterRun> adapterRuns() {
        List<AdapterRun> runs = new ArrayList<>();
        if (sequenceAdapters == null) return runs;
        for (int b = 0; b < sequenceAdapters.length; ) {
            int e = b + 1;
            while (e < sequenceAdapters.length && sequenceAdapters[e].equals(sequenceAdapters[b])) e++;
            runs.add(new AdapterRun(sequenceAdapters[b], b, e));
            b = e;
        }
        return runs;
    }

    /** Every dropout stream this pass draws from, in a fixed order: the shared one, then each adapter's. */
    List<Random> streams() {
        List<Random> s = new ArrayList<>();
        if (!training) return s;
        if (random != null) s.add(random);
        if (adapterRandoms != null) s.addAll(adapterRandoms.values());
        return s;
    }

    /** Draws one seed from each stream (the per-pass seeds from which each block's masks are drawn). */
    long[] drawSeeds() {
        List<Random> s = streams();
        long[] seeds = new long[s.size()];
        for (int i = 0; i < seeds.length; i++) seeds[i] = s.get(i).nextLong();
        return seeds;
    }

    /** Reseeds every stream for block {@code block}, so a recomputed block draws the same masks. */
    void seedBlock(long[] seeds, int block) {
        List<Random> s = streams();
        for (int i = 0; i < seeds.length; i++) s.get(i).setSeed(seeds[i] + block);
    }

    /** Leaves each stream where it would be without per-block reseeding, recomputation or not. */
    void resume(long[] seeds) {
        List<Random> s = streams();
        for (int i = 0; i < seeds.length; i++) s.get(i).setSeed(seeds[i] ^ 0x9E3779B97F4A7C15L);
    }
}
