package io.sparklora.spark.evaluate;

import io.sparklora.spark.ShardSource;

import io.sparklora.train.AdapterTensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * The {@code evaluate} stage: perplexity on the validation shards and label accuracy on the labelled
 * validation examples, computed on the executors for several models side by side, summed on the driver.
 */
public final class EvaluateStage {
    private EvaluateStage() {}

    /**
     * One target's figures: mean NLL and perplexity over the validation blocks' targets (under the label
     * objective those are the label tokens only), and label accuracy by total ({@code accuracy}) and
     * per-byte ({@code accuracy_norm}, lm-eval's acc_norm) log-likelihood.
     */
    public record Figures(double loss, double perplexity, long tokens, double accuracy, double accuracyNorm, long examples) {
        public ObjectNode toJson(ObjectNode o) {
            o.put("loss", loss).put("perplexity", perplexity).put("tokens", tokens);
            if (examples > 0) o.put("accuracy", accuracy).put("accuracy_norm", accuracyNorm).put("examples", examples);
            return o;
        }
    }

    /** Every target's figures, and the validation examples per label (empty without labels). */
    public record Result(Map<String, Figures> figures, long[] examplesPerLabel) {
        public Figures get(String target) { return figures.get(target); }

        /** Accuracy of always answering the most frequent validation label, or NaN without examples. */
        public double majorityClassAccuracy() {
            long total = 0, most = 0;
            for (long n : examplesPerLabel) {
                total += n;
                most = Math.max(most, n);
            }
            return total == 0 ? Double.NaN : (double) most / total;
        }
    }

    public static Result run(JavaSparkContext sc, List<EvalTarget> targets, AdapterConfig adapterConfig,
                                           Map<String, String> shareGroups, AdapterTensors adapter, ShardSource blocks,
                                           ExampleSource examples, int batchSize) {
        int parts = Math.max(blocks == null ? 0 : blocks.partitions(), examples == null ? 0 : examples.partitions());
        if (parts == 0) throw new IllegalArgumentException("evaluate: no validation data");
        Broadcast<AdapterTensors> b = sc.broadcast(adapter == null ? new AdapterTensors() : adapter);
        EvalSumsAdd add = new EvalSumsAdd();
        io.sparklora.spark.FailFast.install(sc.sc());
        EvalSums sums;
        try {
            sums = io.sparklora.spark.PartitionOrderSum.sum(sc.parallelize(IntStream.range(0, parts).boxed().toList(), parts)
                    .mapPartitionsWithIndex(new EvalTask(targets, adapterConfig, shareGroups, b, blocks, examples, batchSize,
                            new SerializableConfiguration(sc.hadoopConfiguration())), false), add);
        } catch (Exception e) {
            throw io.sparklora.spark.FailFast.translate(sc.sc(), e);
        }
        b.destroy();
        io.sparklora.util.FaultPoints.reach("evaluate.scored", parts);
        Map<String, Figures> out = new LinkedHashMap<>();
        for (EvalTarget t : targets) {
            double[] s = sums.of(t.name());
            double tokens = s[EvalSums.TOKENS], n = s[EvalSums.EXAMPLES];
            double loss = tokens > 0 ? s[EvalSums.NLL] / tokens : Double.NaN;
            out.put(t.name(), new Figures(loss, Math.exp(loss), (long) tokens, n > 0 ? s[EvalSums.CORRECT] / n : Double.NaN,
                    n > 0 ? s[EvalSums.CORRECT_NORM] / n : Double.NaN, (long) n));
        }
        return new Result(out, sums.perLabel);
    }
}
