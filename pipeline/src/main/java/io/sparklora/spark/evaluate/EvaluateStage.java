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

    /** One target's figures. */
    public record Figures(double loss, double perplexity, long tokens, double accuracy, long examples) {
        public ObjectNode toJson(ObjectNode o) {
            o.put("loss", loss).put("perplexity", perplexity).put("tokens", tokens);
            if (examples > 0) o.put("accuracy", accuracy).put("examples", examples);
            return o;
        }
    }

    public static Map<String, Figures> run(JavaSparkContext sc, List<EvalTarget> targets, AdapterConfig adapterConfig,
                                           Map<String, String> shareGroups, AdapterTensors adapter, ShardSource blocks,
                                           ExampleSource examples, int batchSize) {
        int parts = Math.max(blocks == null ? 0 : blocks.partitions(), examples == null ? 0 : examples.partitions());
        if (parts == 0) throw new IllegalArgumentException("evaluate: no validation data");
        Broadcast<AdapterTensors> b = sc.broadcast(adapter == null ? new AdapterTensors() : adapter);
        EvalSumsAdd add = new EvalSumsAdd();
        EvalSums sums = sc.parallelize(IntStream.range(0, parts).boxed().toList(), parts)
                .mapPartitionsWithIndex(new EvalTask(targets, adapterConfig, shareGroups, b, blocks, examples, batchSize,
                        new SerializableConfiguration(sc.hadoopConfiguration())), false)
                .treeAggregate(new EvalSums(), add, add, 2);
        b.destroy();
        Map<String, Figures> out = new LinkedHashMap<>();
        for (EvalTarget t : targets) {
            double[] s = sums.of(t.name());
            double loss = s[1] > 0 ? s[0] / s[1] : Double.NaN;
            out.put(t.name(), new Figures(loss, Math.exp(loss), (long) s[1], s[3] > 0 ? s[2] / s[3] : Double.NaN, (long) s[3]));
        }
        return out;
    }
}
