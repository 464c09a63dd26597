package io.sparklora.adapters.dylora;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.TrainingHooks;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.model.Linear;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * DyLoRA ({@link DyLoraAdapter}): one LoRA of rank r_max = {@code r} trained so that every truncation to its first b
 * ranks, r_min ≤ b ≤ r_max, is itself a usable LoRA of rank b (scale alpha/b).
 *
 * <p>Training rule: each step trains the adapter truncated to a rank b drawn from {@code rank_distribution} over
 * [{@code r_min}, r]: {@code uniform} (the paper's), or {@code geometric:p} (P(b) ∝ (1 − p)^(b − r_min), favouring
 * small ranks). {@code dylora_update: slice} (default) is the paper's frozen rule: only row b of A and column b of B
 * get a gradient, the earlier slices are constants for that step; {@code all} trains all of the first b. LyCORIS's
 * DyLoRA is the frozen rule over blocks of {@code block_size} ranks (block size 1 here). Both rules stop only the
 * gradient: AdamW's momentum and decoupled weight decay still move the earlier slices, as in the reference code.
 *
 * <p>Who draws b: in one process, a step's b is a function of ({@code rank_seed}, step). On Spark the driver draws
 * it once per round, from ({@code rank_seed}, round) (with one step per round, the rank one-process training draws
 * for that step), in {@link TrainingHooks#beforeRound}, and it travels with the
 * adapter as the round state (one scalar); every task of the round trains at that rank, and resume continues the
 * same sequence. Inference, merge and export use the full rank unless a caller sets another
 * ({@link DyLoraAdapter#setEvalRank}: {@code evaluate}'s ranks, {@code export --to lora --rank b}).
 *
 * <p>PEFT has no DyLoRA: the adapter file is the full-rank LoRA ({@code peft_type: LORA}, r = r_max, scale
 * alpha/r_max), which PEFT loads as that; {@code export --to lora --rank b} writes the rank-b truncation as a plain
 * LoRA of rank b, exactly.
 */
public class DyLoraMethod extends LoraMethod {
    public static final String R_MIN = "r_min";
    public static final String DISTRIBUTION = "rank_distribution";
    public static final String UPDATE = "dylora_update";
    public static final String SEED = "rank_seed";
    /** The round-state key of the rank the driver drew. */
    public static final String RANK_KEY = "dylora.rank";

    @Override public String name() { return "dylora"; }

    /** A re-factorised B·A would lose the nested order of ranks that DyLoRA trains (its rank-b truncations). */
    @Override public String[] productFactors(AdapterConfig config) { return null; }

    @Override public String description() { return "DyLoRA: each step trains the rank-b truncation (b sampled), so every rank up to r works after one run"; }

    @Override
    public Map<String, String> optionDefaults() {
        Map<String, String> m = new LinkedHashMap<>(super.optionDefaults());
        m.put(R_MIN, "1");
        m.put(DISTRIBUTION, "uniform");
        m.put(UPDATE, "slice");
        m.put(SEED, "0");
        return m;
    }

    @Override
    public void validate(AdapterConfig c) {
        super.validate(c);
        if (c.rslora()) throw new IllegalArgumentException("adapter type 'dylora' scales by alpha/b at rank b; rslora does not apply");
        long rMin = c.longOption(R_MIN);
        if (rMin < 1 || rMin > c.r()) throw new IllegalArgumentException(R_MIN + " must be in [1, r = " + c.r() + "], got " + rMin);
        String u = c.option(UPDATE);
        if (!u.equals("slice") && !u.equals("all")) throw new IllegalArgumentException(UPDATE + " must be slice or all, got '" + u + "'");
        c.longOption(SEED);
        RankSampler.parse(c.option(DISTRIBUTION), (int) rMin, c.r());
    }

    @Override
    protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
        return new DyLoraAdapter(adapterName, layer, config, rng, config.option(UPDATE).equals("slice"), config.r());
    }

    @Override
    protected LoraAdapter sharedLayer(String adapterName, Linear layer, AdapterConfig config, LoraAdapter owner) {
        throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not dylora");
    }

    @Override public boolean supportsSharing() { return false; }

    /** Sets the rank every layer of {@code adapter} uses for inference, merge and export. */
    public static void setEvalRank(AttachedAdapter adapter, int b) {
        for (Adapter a : adapter.layers().values()) ((DyLoraAdapter) a).setEvalRank(b);
    }

    /** Any rank in [1, r] (ranks below r_min were trained only as parts of larger ones, but they are usable). */
    @Override
    public boolean useRank(AttachedAdapter adapter, int rank) {
        if (rank < 1 || rank > adapter.config().r()) return false;
        setEvalRank(adapter, rank);
        return true;
    }

    /** The ranks DyLoRA trained, [r_min, r] ({@code evaluate} reports each). */
    @Override
    public int[] ranks(AdapterConfig c) {
        int rMin = (int) c.longOption(R_MIN);
        int[] r = new int[c.r() - rMin + 1];
        for (int i = 0; i < r.length; i++) r[i] = rMin + i;
        return r;
    }

    @Override
    public TrainingHooks hooks(AttachedAdapter adapter) {
        AdapterConfig c = adapter.config();
        RankSampler sampler = RankSampler.parse(c.option(DISTRIBUTION), (int) c.longOption(R_MIN), c.r());
        long seed = c.longOption(SEED);
        List<DyLoraAdapter> layers = adapter.layers().values().stream().map(a -> (DyLoraAdapter) a).toList();
        return new TrainingHooks() {
            private boolean pinned;      // a rank fixed for the whole round (drawn on the driver, or received with the round)
            private int rank = c.r();

            private void set(int b) {
                rank = b;
                for (DyLoraAdapter l : layers) l.setTrainRank(b);
            }

            @Override
            public void beforeRound(int round, long firstStep) {
                set(sampler.draw(seed, round));
                pinned = true;
            }

            @Override
            public void beforeStep(long step) {
                if (!pinned) set(sampler.draw(seed, step));
            }

            @Override
            public Map<String, INDArray> roundState() {
                return Map.of(RANK_KEY, Nd4j.scalar(DataType.FLOAT, (float) rank).reshape(1));
            }

            @Override
            public void loadRoundState(Map<String, INDArray> state) {
                INDArray r = state.get(RANK_KEY);
                if (r == null) return;
                set(Math.round(r.getFloat(0)));
                pinned = true;
            }
        };
    }

    /** A distribution over [r_min, r_max], drawn statelessly from (seed, index). */
    public record RankSampler(int rMin, int rMax, double geometricP) {
        public static RankSampler parse(String spec, int rMin, int rMax) {
            String s = spec.trim().toLowerCase(Locale.ROOT);
            if (s.equals("uniform")) return new RankSampler(rMin, rMax, 0);
            if (s.startsWith("geometric:")) {
                double p;
                try {
                    p = Double.parseDouble(s.substring("geometric:".length()));
                } catch (NumberFormatException e) {
                    p = -1;
                }
                if (!(p > 0 && p < 1)) throw new IllegalArgumentException(DISTRIBUTION + " geometric:p needs p in (0, 1), got '" + spec + "'");
                return new RankSampler(rMin, rMax, p);
            }
            throw new IllegalArgumentException(DISTRIBUTION + " must be uniform or geometric:p, got '" + spec + "'");
        }

        /** The rank of step (one process) or round (Spark) {@code index}: the same index gives the same rank either way. */
        public int draw(long seed, long index) {
            long h = seed * 0x9E3779B97F4A7C15L ^ 0x44794C6F5241L ^ index * 0x94D049BB133111EBL;
            double u = new java.util.SplittableRandom(h ^ (h >>> 29)).nextDouble();
            int n = rMax - rMin + 1;
            if (geometricP == 0) return rMin + Math.min(n - 1, (int) (u * n));
            // inverse CDF of the geometric law truncated to n values
            double q = 1 - geometricP, total = 1 - Math.pow(q, n), acc = 0;
            for (int k = 0; k < n; k++) {
                acc += geometricP * Math.pow(q, k) / total;
                if (u < acc) return rMin + k;
            }
            return rMax;
        }
    }
}
