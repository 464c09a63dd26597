package io.sparklora.spark.glora;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.TargetMatcher;
import io.sparklora.adapters.glora.GloraMethod;
import io.sparklora.adapters.glora.GloraStructure;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.ShardSource;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * The {@code glora_search} stage: the GLoRA paper's layer-wise structure search, as a small evolutionary search
 * whose candidates the executors evaluate in parallel (one Spark task per candidate, {@link CandidateTask}).
 *
 * <p>A candidate gives every targeted module a {@link GloraStructure}. Generation 0 is candidate 0, the structures
 * the configured adapter has (so the search never ends worse than the configuration on its own measure), and
 * {@code population - 1} random per-layer assignments. Each later generation keeps the best half
 * ({@code max(1, population / 2)}) of the previous one and fills up with mutations of them (one random layer's
 * structure with one term redrawn); survivors are not evaluated again. Each candidate trains {@code steps} steps
 * from the same initial tensors on the same blocks in the same order and is scored by its mean validation loss;
 * the lowest wins, ties going to the lower id. Everything random is drawn from {@code seed} on the driver, so a
 * seed gives the same candidates, losses and choice.
 */
public final class GloraSearchStage {
    private GloraSearchStage() {}

    /**
     * @param population               candidates per generation (at least 2)
     * @param generations              generations (1: the initial population only)
     * @param steps                    optimizer steps each candidate trains
     * @param sampleFraction           fraction of every training shard the candidates train on
     * @param validationSampleFraction fraction of every validation shard they are scored on
     * @param seed                     seeds the population, the mutations and the samples
     */
    public record Spec(int population, int generations, int steps, double sampleFraction, double validationSampleFraction, long seed) {
        public Spec {
            if (population < 2) throw new IllegalArgumentException("glora_search.population must be at least 2, got " + population);
            if (generations < 1) throw new IllegalArgumentException("glora_search.generations must be at least 1, got " + generations);
            if (steps < 1) throw new IllegalArgumentException("glora_search.steps must be positive, got " + steps);
            if (!(sampleFraction > 0 && sampleFraction <= 1)) {
                throw new IllegalArgumentException("glora_search.sample_fraction must be in (0, 1], got " + sampleFraction);
            }
            if (!(validationSampleFraction > 0 && validationSampleFraction <= 1)) {
                throw new IllegalArgumentException("glora_search.validation_sample_fraction must be in (0, 1], got " + validationSampleFraction);
            }
        }

        /** How many of a generation go on to the next. */
        public int survivors() { return Math.max(1, population / 2); }
    }

    /** Every candidate tried (in id order) and the best. */
    public record Result(Spec spec, List<String> modules, List<CandidateResult> candidates, CandidateResult best) {
        /** The chosen structure of every targeted module, in model order. */
        public Map<String, GloraStructure> chosen() { return best.structures(); }

        /** The adapter config with the chosen structures ({@link GloraMethod#withStructures}). */
        public AdapterConfig apply(AdapterConfig c) { return GloraMethod.withStructures(c, chosen()); }

        public ObjectNode toJson(ObjectNode o) {
            o.put("population", spec.population()).put("generations", spec.generations()).put("steps", spec.steps())
                    .put("sample_fraction", spec.sampleFraction()).put("validation_sample_fraction", spec.validationSampleFraction())
                    .put("seed", spec.seed()).put("validation_source", best.validationSource)
                    .put("train_blocks", best.trainBlocks).put("validation_blocks", best.validationBlocks)
                    .put("candidates_evaluated", candidates.size()).put("chosen_candidate", best.id)
                    .put("chosen_validation_loss", best.validationLoss)
                    .put("configured_validation_loss", candidates.get(0).validationLoss)
                    .put("layer_structures", best.layerStructures);
            structures(o.putObject("chosen"), best);
            ArrayNode a = o.putArray("candidates");
            for (CandidateResult c : candidates) {
                ObjectNode n = a.addObject().put("generation", c.generation).put("id", c.id);
                if (c.parent >= 0) n.put("parent", c.parent);
                n.put("validation_loss", c.validationLoss).put("train_loss", c.trainLoss).put("executor", c.executor)
                        .put("seconds", c.seconds);
                structures(n.putObject("structures"), c);
            }
            return o;
        }

        private static void structures(ObjectNode o, CandidateResult c) {
            c.structures().forEach((m, s) -> o.put(m, s.toString()));
        }
    }

    /**
     * Runs the search for {@code adapter} (type glora) on {@code base}.
     *
     * @param options       the run's training options: batch size, lr, schedule, clipping and the seed of the initial
     *                      tensors and of the batch order; the candidates take {@link #candidateOptions} of them
     * @param validation    the validation shards (null or empty: held-out training blocks, {@link CandidateTask#data})
     * @param evalBatchSize blocks per forward pass when scoring
     */
    public static Result run(JavaSparkContext sc, BaseModelRef base, AdapterConfig adapter, TrainingOptions options, Spec spec,
                             ShardSource train, ShardSource validation, int evalBatchSize, PrintStream console) {
        if (!adapter.method().equals("glora")) {
            throw new IllegalArgumentException("glora_search searches GLoRA's per-layer structures; the adapter is of type '"
                    + adapter.method() + "' (set adapter.type: glora or glora_search.enabled: false)");
        }
        List<String> modules = TargetMatcher.select(BaseModelCache.model(base, sc.hadoopConfiguration()).linears().keySet(), adapter.targetModules());
        if (modules.isEmpty()) throw new IllegalArgumentException("glora_search: adapter.targets " + adapter.targetModules() + " match no layer");
        TrainingOptions o = candidateOptions(options, spec.steps());
        SerializableConfiguration conf = new SerializableConfiguration(sc.hadoopConfiguration());
        Random rng = new Random(spec.seed());
        Set<String> seen = new HashSet<>();
        List<CandidateResult> all = new ArrayList<>();
        List<CandidateResult> population = List.of();
        int nextId = 0;
        for (int g = 0; g < spec.generations(); g++) {
            List<Candidate> fresh = new ArrayList<>();
            List<CandidateResult> survivors = g == 0 ? List.of() : ranked(population).subList(0, spec.survivors());
            if (g == 0) {
                fresh.add(candidate(g, nextId++, -1, GloraMethod.structures(adapter, modules), seen));
                while (fresh.size() < spec.population()) fresh.add(candidate(g, nextId++, -1, distinct(seen, () -> random(modules, rng)), seen));
            } else {
                for (int j = 0; fresh.size() < spec.population() - survivors.size(); j++) {
                    CandidateResult parent = survivors.get(j % survivors.size());
                    Map<String, GloraStructure> ps = parent.structures();
                    fresh.add(candidate(g, nextId++, parent.id, distinct(seen, () -> mutate(ps, modules, rng)), seen));
                }
            }
            List<CandidateResult> evaluated = evaluate(sc, fresh, new CandidateTask(fresh, base, adapter, o, train, validation,
                    spec.sampleFraction(), spec.validationSampleFraction(), spec.seed(), evalBatchSize, conf));
            all.addAll(evaluated);
            List<CandidateResult> next = new ArrayList<>(survivors);
            next.addAll(evaluated);
            population = next;
            CandidateResult best = ranked(all).get(0);
            console.printf(Locale.ROOT, "glora_search: generation %d: %d candidate(s) evaluated; best so far #%d, validation loss %.4f (configured %.4f)%n",
                    g, evaluated.size(), best.id, best.validationLoss, all.get(0).validationLoss);
        }
        return new Result(spec, modules, all, ranked(all).get(0));
    }

    /** The candidates' training options: the run's, for {@code steps} steps, warm-up at most half of them. */
    public static TrainingOptions candidateOptions(TrainingOptions o, int steps) {
        return o.withSteps(steps).withWarmup(Math.min(o.warmupSteps(), steps / 2), o.schedule());
    }

    /** Lowest validation loss first (non-finite last), ties by id. */
    static List<CandidateResult> ranked(List<CandidateResult> rs) {
        List<CandidateResult> l = new ArrayList<>(rs);
        l.sort(Comparator.comparingDouble(CandidateResult::rankLoss).thenComparingInt(r -> r.id));
        return l;
    }

    /** One task per candidate, results in id order. */
    private static List<CandidateResult> evaluate(JavaSparkContext sc, List<Candidate> cs, CandidateTask task) {
        io.sparklora.spark.FailFast.install(sc.sc());
        List<CandidateResult> rs;
        try {
            rs = new ArrayList<>(sc.parallelize(IntStream.range(0, cs.size()).boxed().toList(), cs.size())
                    .mapPartitionsWithIndex(task, false).collect());
        } catch (Exception e) {
            throw io.sparklora.spark.FailFast.translate(sc.sc(), e);
        }
        if (rs.size() != cs.size()) throw new IllegalStateException("glora_search: " + cs.size() + " candidates but " + rs.size() + " results");
        rs.sort(Comparator.comparingInt(r -> r.id));
        return rs;
    }

    private static Candidate candidate(int generation, int id, int parent, Map<String, GloraStructure> structures, Set<String> seen) {
        String s = GloraStructure.formatLayers(structures);
        seen.add(s);
        return new Candidate(generation, id, parent, s);
    }

    /** A draw not tried before (after 1000 tries, whatever the last draw was: the search space is then nearly spent). */
    private static Map<String, GloraStructure> distinct(Set<String> seen, java.util.function.Supplier<Map<String, GloraStructure>> draw) {
        Map<String, GloraStructure> m = draw.get();
        for (int i = 0; i < 1000 && seen.contains(GloraStructure.formatLayers(m)); i++) m = draw.get();
        return m;
    }

    /** Every module's structure drawn uniformly from the search space. */
    static Map<String, GloraStructure> random(List<String> modules, Random rng) {
        Map<String, GloraStructure> m = new LinkedHashMap<>();
        for (String module : modules) m.put(module, GloraStructure.random(rng));
        return m;
    }

    /** {@code parent} with one random layer's structure mutated ({@link GloraStructure#mutate}). */
    static Map<String, GloraStructure> mutate(Map<String, GloraStructure> parent, List<String> modules, Random rng) {
        Map<String, GloraStructure> m = new LinkedHashMap<>(parent);
        String module = modules.get(rng.nextInt(modules.size()));
        m.put(module, m.get(module).mutate(rng));
        return m;
    }
}
