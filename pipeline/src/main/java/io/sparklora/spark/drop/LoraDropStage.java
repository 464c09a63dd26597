package io.sparklora.spark.drop;

import io.sparklora.spark.ShardSource;
import io.sparklora.spark.train.TrainStage;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * The {@code lora-drop} stage (LoRA-drop): train every adapter briefly on a sample, score each adapted
 * layer by the mean squared norm of its adapter's output ‖B·A·x‖² over that sample (computed on the
 * executors, summed on the driver), normalise the scores to sum to one, keep the most important layers
 * until their cumulative importance reaches the threshold, let the remaining layers of each kind share
 * one adapter, and train that reduced set.
 */
public final class LoraDropStage {
    private LoraDropStage() {}

    /**
     * @param sampleFraction fraction of each shard used for the brief training and the scoring
     * @param warmupRounds   rounds of the brief training of all adapters
     * @param threshold      cumulative normalised importance to keep (0.9 keeps layers up to 90%)
     * @param rounds         rounds of training the reduced set
     */
    public record Spec(double sampleFraction, int warmupRounds, double threshold, int rounds) {
        public Spec {
            if (!(threshold > 0 && threshold <= 1)) throw new IllegalArgumentException("lora_drop.threshold must be in (0, 1], got " + threshold);
        }
    }

    /** The selection and the reduced adapter. */
    public record Result(Map<String, Double> importance, List<String> kept, Map<String, String> shareGroups,
                         long trainableFull, long trainableReduced, DistributedTrainer.Result reduced) {
        public double paramReduction() { return 1.0 - (double) trainableReduced / trainableFull; }

        public ObjectNode toJson(ObjectNode o) {
            ObjectNode imp = o.putObject("importance");
            importance.forEach(imp::put);
            var k = o.putArray("kept");
            kept.forEach(k::add);
            var s = o.putArray("shared");
            shareGroups.keySet().forEach(s::add);
            return o.put("trainable_params_full", trainableFull).put("trainable_params_reduced", trainableReduced)
                    .put("param_reduction", paramReduction());
        }
    }

    public static Result run(JavaSparkContext sc, TrainSpec full, Spec drop, ShardSource shards, MetricsLog metrics,
                             PrintStream console, String outputUri) throws IOException {
        // 1. all adapters, briefly, on a sample
        TrainSpec warm = new TrainSpec(full.base(), full.adapter(), Map.of(), drop.warmupRounds(), full.localSteps(), full.sync(),
                full.averageOptimizerState(), withSteps(full, drop.warmupRounds()), drop.sampleFraction(), 0, null).withOuter(full.outer()).withAggregate(full.aggregate());
        DistributedTrainer.Result warmed = TrainStage.run(sc, warm, shards, metrics, "lora_drop.warmup", console, null);

        // 2. importance of each adapted layer, on the executors
        Broadcast<AdapterTensors> b = sc.broadcast(AdapterTensors.ofValues(warmed.adapter().stateTensors()));
        ImportanceSumsAdd add = new ImportanceSumsAdd();
        io.sparklora.spark.FailFast.install(sc.sc());
        ImportanceSums sums;
        try {
            sums = io.sparklora.spark.PartitionOrderSum.sum(sc.parallelize(IntStream.range(0, shards.partitions()).boxed().toList(), shards.partitions())
                    .mapPartitionsWithIndex(new ImportanceTask(warm, shards, b, Math.max(1, full.options().batchSize()),
                            new SerializableConfiguration(sc.hadoopConfiguration())), false), add);
        } catch (Exception e) {
            throw io.sparklora.spark.FailFast.translate(sc.sc(), e);
        }
        b.destroy();
        Map<String, Double> importance = normalise(sums.means());

        // 3. keep the most important until the threshold; the rest of each layer kind share one adapter
        List<String> kept = select(importance, drop.threshold());
        Map<String, String> share = shareGroups(importance.keySet(), kept);
        console.printf(Locale.ROOT, "lora-drop: keeping %d of %d adapted layers (cumulative importance >= %.2f); %d share%n",
                kept.size(), importance.size(), drop.threshold(), share.size());

        // 4. train the reduced set on all the data
        TrainSpec reducedSpec = new TrainSpec(full.base(), full.adapter(), share, drop.rounds(), full.localSteps(), full.sync(),
                full.averageOptimizerState(), withSteps(full, drop.rounds()), 1.0, full.checkpointEvery(), outputUri).withOuter(full.outer()).withAggregate(full.aggregate());
        DistributedTrainer.Result reduced = TrainStage.run(sc, reducedSpec, shards, metrics, "lora_drop.train", console, null);
        return new Result(importance, kept, share, warmed.trainableParams(), reduced.trainableParams(), reduced);
    }

    private static io.sparklora.train.TrainingOptions withSteps(TrainSpec s, int rounds) {
        var o = s.options();
        int steps = rounds * s.localSteps();
        return o.withSteps(steps).withWarmup(Math.min(o.warmupSteps(), steps / 2), o.schedule());
    }

    /** Scores divided by their sum, in descending order of importance (ties by name). */
    static Map<String, Double> normalise(Map<String, Double> raw) {
        double total = raw.values().stream().mapToDouble(Double::doubleValue).sum();
        List<Map.Entry<String, Double>> e = new ArrayList<>(raw.entrySet());
        e.sort((x, y) -> y.getValue().equals(x.getValue()) ? x.getKey().compareTo(y.getKey()) : Double.compare(y.getValue(), x.getValue()));
        Map<String, Double> out = new LinkedHashMap<>();
        for (var x : e) out.put(x.getKey(), total > 0 ? x.getValue() / total : 1.0 / raw.size());
        return out;
    }

    /** The most important modules until their cumulative share reaches {@code threshold} (at least one). */
    static List<String> select(Map<String, Double> normalisedDescending, double threshold) {
        List<String> kept = new ArrayList<>();
        double cum = 0;
        for (var e : normalisedDescending.entrySet()) {
            if (!kept.isEmpty() && cum >= threshold - 1e-12) break;
            kept.add(e.getKey());
            cum += e.getValue();
        }
        return kept;
    }

    /**
     * The dropped modules grouped by kind (the module name without its layer index, e.g. {@code attn.c_attn}),
     * so that layers of the same shape share one adapter.
     */
    static Map<String, String> shareGroups(Iterable<String> all, List<String> kept) {
        Map<String, String> g = new TreeMap<>();
        for (String m : all) if (!kept.contains(m)) g.put(m, "shared:" + m.replaceAll("\\.\\d+\\.", ".*."));
        return g;
    }

    /** Where the reduced adapter goes. */
    public static String adapterUri(String outputUri) { return HadoopFiles.resolve(outputUri, "adapter"); }
}
