package io.sparklora.train;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code train.aggregate: stack}, FLoRA's stacking (Wang et al., 2024) for parameter-averaging rounds. Each round every
 * worker trains the adapter from a fresh start (B = 0, a newly drawn A) and sends its own factors, as under {@code svd}.
 * The driver keeps them: one <em>fold</em> per worker and round, its B scaled by the worker's share w_i/W of the target
 * tokens, so that the folds' products sum to exactly Σ_rounds Σ_i w_i·B_i·A_i / W, with no averaging of factors
 * (mean(B)·mean(A) ≠ mean(B·A)) and no rank cut. Every following round carries all folds so far; a worker merges the
 * ones its model has not merged yet into a private copy of the targeted weights ({@link AttachedAdapter#fold}: each
 * layer's own merge, into a copy-on-write copy of the shared base tensor), then trains a fresh adapter on top.
 *
 * <p>The cost is in what moves: round t carries t·P adapters' worth of factors (P workers), where {@code mean} and
 * {@code svd} carry one. At the end the sum of all folds becomes one exact LoRA adapter ({@link #exactAdapter}) of rank
 * r' = min(folds·r, the layer's full rank), in PEFT's layout: what a user loads or merges like any other.
 */
public final class StackedRounds {
    private StackedRounds() {}

    /** One fold per worker, in the order given: its factor pair tensors, B scaled by w_i / Σ w. */
    public static List<AdapterTensors> folds(List<PartitionFactors> workers, List<ExactAggregation.Pair> pairs) {
        double total = 0;
        for (PartitionFactors w : workers) total += w.weight();
        if (!(total > 0)) throw new IllegalStateException("train.aggregate: stack: the workers' weights sum to " + total);
        List<AdapterTensors> out = new ArrayList<>();
        for (PartitionFactors w : workers) {
            if (w.weight() == 0) continue;
            AdapterTensors f = new AdapterTensors();
            for (ExactAggregation.Pair p : pairs) {
                f.put(p.b(), w.factors().get(p.b()).muli(w.weight() / total));
                f.put(p.a(), w.factors().get(p.a()));
            }
            out.add(f);
        }
        return out;
    }

    /** Merges the folds {@code adapter}'s model has not merged yet ({@code folds} must extend what it merged before). */
    public static void foldInto(AttachedAdapter adapter, List<AdapterTensors> folds) {
        if (adapter.folded() > folds.size()) {
            throw new IllegalStateException("train.aggregate: stack: this model merged " + adapter.folded() + " folds, the round carries only "
                    + folds.size() + " (a worker model reused across runs?)");
        }
        for (int i = adapter.folded(); i < folds.size(); i++) adapter.fold(folds.get(i).toArrays());
    }

    /** The seed of the fresh adapter that round {@code round} (0-based) starts from: the run's own seed for round 0. */
    public static long freshSeed(long seed, int round) {
        return round == 0 ? seed : seed * 1_000_003L + 0x9E3779B97F4A7C15L * round;
    }

    /** The fresh start of round {@code round}: the factor pairs' tensors of {@link AttachedAdapter#freshValues}. */
    public static Map<String, INDArray> freshFactors(AttachedAdapter adapter, long seed, int round, List<ExactAggregation.Pair> pairs) {
        Map<String, INDArray> all = adapter.freshValues(freshSeed(seed, round));
        Map<String, INDArray> out = new LinkedHashMap<>();
        for (ExactAggregation.Pair p : pairs) {
            out.put(p.b(), all.get(p.b()));
            out.put(p.a(), all.get(p.a()));
        }
        return out;
    }

    /** Tensor bytes of the folds. */
    public static long bytes(List<AdapterTensors> folds) {
        long b = 0;
        for (AdapterTensors f : folds) b += f.bytes();
        return b;
    }

    /** The folds as checkpoint entries ({@code stack.NNNNNN.<tensor>}), to go with the optimizer state. */
    public static Map<String, INDArray> toCheckpoint(List<AdapterTensors> folds) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (int i = 0; i < folds.size(); i++) {
            String prefix = String.format(java.util.Locale.ROOT, "stack.%06d.", i);
            folds.get(i).toArrays().forEach((n, v) -> m.put(prefix + n, v));
        }
        return m;
    }

    /** The folds a checkpoint holds, in order. */
    public static List<AdapterTensors> fromCheckpoint(Map<String, INDArray> state) {
        TreeMap<Integer, AdapterTensors> byIndex = new TreeMap<>();
        state.forEach((k, v) -> {
            if (!k.startsWith("stack.")) return;
            int dot = k.indexOf('.', 6);
            byIndex.computeIfAbsent(Integer.parseInt(k.substring(6, dot)), i -> new AdapterTensors()).put(k.substring(dot + 1), v);
        });
        for (int i = 0; i < byIndex.size(); i++) {
            if (!byIndex.containsKey(i)) throw new IllegalStateException("train.aggregate: stack: the checkpoint lacks fold " + i);
        }
        return new ArrayList<>(byIndex.values());
    }

    /**
     * The sum of the folds, Σ_k s·B_k·A_k on every layer, as one plain LoRA adapter that replaces {@code adapter} on its
     * model (which is detached): rank r' = the largest layer's min(Σ fold ranks, out, in), alpha = r' (scale 1, so B
     * carries s), smaller layers padded with zeros. While Σ fold ranks ≤ min(out, in) the factors are the folds'
     * themselves, concatenated; beyond it the sum is re-factorised at full rank by {@link LowRank#truncate} (float64,
     * exact to rounding). Trainable token rows carry over. Nothing is cut: B'·A' = Σ_k B_k·A_k.
     */
    public static AttachedAdapter exactAdapter(AttachedAdapter adapter, List<AdapterTensors> folds, long seed) {
        if (folds.isEmpty()) return adapter;     // no round ran: the fresh adapter, ΔW = 0
        AdapterConfig c = adapter.config();
        String[] seg = c.adapterMethod().productFactors(c);
        // each fold with weight s and a total of 1: ExactAggregation.stack lays out [s·B_1 | s·B_2 | …] and [A_1; A_2; …]
        List<PartitionFactors> weighted = new ArrayList<>();
        for (int i = 0; i < folds.size(); i++) weighted.add(new PartitionFactors(i, c.scale(), folds.get(i)));
        Map<String, double[][][]> perLayer = new LinkedHashMap<>();   // module → {B' [out, k], A' [k, in]}
        int rank = 0;
        for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
            String bName = null, aName = null;
            for (Parameter p : e.getValue().parameters()) {
                if (p.name().contains("." + seg[0] + ".")) bName = p.name();
                if (p.name().contains("." + seg[1] + ".")) aName = p.name();
            }
            if (bName == null || aName == null) throw new IllegalStateException(e.getKey() + ": no " + seg[0] + "/" + seg[1] + " pair to stack");
            ExactAggregation.Stacked st = ExactAggregation.stack(weighted, new ExactAggregation.Pair(bName, aName), 1.0);
            double[][] b = st.b(), a = st.a();
            int full = Math.min(b.length, a[0].length);
            if (a.length > full) {
                LowRank.Truncated t = LowRank.truncate(b, a, full);
                b = t.b();
                a = t.a();
            }
            perLayer.put(e.getKey(), new double[][][]{b, a});
            rank = Math.max(rank, a.length);
        }
        rank = Math.max(rank, 1);
        INDArray tokenRows = adapter.tokenRows() == null ? null : adapter.tokenRows().rows().value().dup();
        io.sparklora.model.TransformerLM model = adapter.model();
        adapter.detach();
        AdapterConfig exact = new AdapterConfig("lora", rank, rank, c.dropout(), c.targetModules(), false, c.bias(), c.init(),
                new TreeMap<>(onlyTokenOption(c)));
        AttachedAdapter out = AttachedAdapter.attach(model, adapter.name(), exact, seed);
        for (Map.Entry<String, Adapter> e : out.layers().entrySet()) {
            double[][][] f = perLayer.get(e.getKey());
            for (Parameter p : e.getValue().parameters()) {
                if (p.name().contains(".lora_B.")) p.set(padded(f[0], (int) p.value().size(0), rank));
                if (p.name().contains(".lora_A.")) p.set(padded(f[1], rank, (int) p.value().size(1)));
            }
        }
        if (tokenRows != null) out.tokenRows().rows().set(tokenRows);
        return out;
    }

    private static Map<String, String> onlyTokenOption(AdapterConfig c) {
        Map<String, String> o = new TreeMap<>();
        String t = c.options().get(AdapterConfig.TRAINABLE_TOKENS);
        if (t != null) o.put(AdapterConfig.TRAINABLE_TOKENS, t);
        return o;
    }

    /** x into a float [r0, r1] array, zero beyond x (B gains zero columns, A zero rows). */
    private static INDArray padded(double[][] x, int r0, int r1) {
        float[] v = new float[r0 * r1];
        for (int i = 0; i < x.length && i < r0; i++) for (int j = 0; j < x[i].length && j < r1; j++) v[i * r1 + j] = (float) x[i][j];
        return Nd4j.create(v, new long[]{r0, r1}, 'c').castTo(DataType.FLOAT);
    }
}
