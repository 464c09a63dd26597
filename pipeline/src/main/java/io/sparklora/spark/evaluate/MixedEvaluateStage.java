package io.sparklora.spark.evaluate;

import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.spark.FailFast;
import io.sparklora.spark.PartitionOrderSum;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.AdapterTensors;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Several adapters evaluated in one pass over one base: every task attaches all of them to one model and scores the
 * validation rows of every adapter's own dataset twice, once with that adapter and once with the base alone
 * ({@link MixedEvalTask}); a batch holds rows of several adapters and of the base, each row getting only its own
 * adapter's contribution, unmerged. Each adapter's figures are those {@link EvaluateStage} gives its "adapted" and
 * "base" targets on the same data, to fp32 rounding of the shared matmuls.
 *
 * <p>Only the adapters' tensors move: one broadcast of all of them. Adapters that change a base tensor (trained
 * biases, trainable token rows) would reach every row and are refused.
 */
public final class MixedEvaluateStage {
    private MixedEvaluateStage() {}

    /** Sums keys: an adapter's rows with its adapter, and the same rows with the base alone. */
    static String adaptedKey(String job) { return job + "/adapted"; }

    static String baseKey(String job) { return job + "/base"; }

    /** One adapter's figures: with the adapter, with the base alone on the same rows, and the held-out examples per label. */
    public record JobFigures(EvaluateStage.Figures adapted, EvaluateStage.Figures base, long[] examplesPerLabel) {
        /** Accuracy of always answering the most frequent held-out label, or NaN without examples. */
        public double majorityClassAccuracy() { return new EvaluateStage.Result(Map.of(), examplesPerLabel).majorityClassAccuracy(); }
    }

    /**
     * @param tensors each job's trained tensors, named as the adapter attached under the job's name names them
     * @param batchSize rows per forward pass (validation blocks; labelled examples, each as many rows as there are labels)
     */
    public static Map<String, JobFigures> run(JavaSparkContext sc, BaseModelRef base, List<EvalJob> jobs, Map<String, AdapterTensors> tensors,
                                              int batchSize) {
        if (jobs.isEmpty()) throw new IllegalArgumentException("evaluate: no adapters to evaluate");
        for (EvalJob j : jobs) {
            if (!tensors.containsKey(j.name())) throw new IllegalArgumentException("evaluate: no trained tensors for adapter '" + j.name() + "'");
            if (!j.config().bias().equals("none") || !j.config().option(io.sparklora.adapters.AdapterConfig.TRAINABLE_TOKENS).isEmpty()) {
                throw new IllegalArgumentException("evaluate: adapter '" + j.name() + "' trains base tensors (bias or trainable tokens), which would"
                        + " reach every row of a mixed batch");
            }
        }
        int parts = 0;
        for (EvalJob j : jobs) {
            parts = Math.max(parts, Math.max(j.blocks() == null ? 0 : j.blocks().partitions(), j.examples() == null ? 0 : j.examples().partitions()));
        }
        if (parts == 0) throw new IllegalArgumentException("evaluate: no validation data in any adapter's dataset");
        Broadcast<LinkedHashMap<String, AdapterTensors>> b = sc.broadcast(new LinkedHashMap<>(tensors));
        FailFast.install(sc.sc());
        EvalSums sums;
        try {
            sums = PartitionOrderSum.sum(sc.parallelize(IntStream.range(0, parts).boxed().toList(), parts)
                    .mapPartitionsWithIndex(new MixedEvalTask(base, jobs, b, batchSize, new SerializableConfiguration(sc.hadoopConfiguration())), false),
                    new EvalSumsAdd());
        } catch (Exception e) {
            throw FailFast.translate(sc.sc(), e);
        } finally {
            b.destroy();
        }
        Map<String, JobFigures> out = new LinkedHashMap<>();
        for (EvalJob j : jobs) {
            out.put(j.name(), new JobFigures(figures(sums.of(adaptedKey(j.name()))), figures(sums.of(baseKey(j.name()))),
                    sums.perLabelOf.getOrDefault(j.name(), new long[0])));
        }
        return out;
    }

    /** Mean NLL, perplexity and accuracies from one target's sums, as {@link EvaluateStage} computes them. */
    static EvaluateStage.Figures figures(double[] s) {
        double tokens = s[EvalSums.TOKENS], n = s[EvalSums.EXAMPLES];
        double loss = tokens > 0 ? s[EvalSums.NLL] / tokens : Double.NaN;
        return new EvaluateStage.Figures(loss, Math.exp(loss), (long) tokens, n > 0 ? s[EvalSums.CORRECT] / n : Double.NaN,
                n > 0 ? s[EvalSums.CORRECT_NORM] / n : Double.NaN, (long) n);
    }
}
