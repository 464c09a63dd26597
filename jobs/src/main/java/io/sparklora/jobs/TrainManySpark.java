package io.sparklora.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.data.ShardManifest;
import io.sparklora.model.ModelConfig;
import io.sparklora.spark.ArrowShards;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.ShardSource;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.spark.train.MultiTrainStage;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code spark-lora train-many} without {@code --local}: the jobs trained together in one Spark job
 * ({@link MultiTrainStage}). A job's {@code data:} files are read and tokenized on the driver and split into
 * {@code --partitions} shards that travel with the stage; its {@code shards:} name a tokenize stage's output, whose
 * Arrow shards the executors read. Each adapter is written to {@code OUT/<name>/} (adapter/ in PEFT layout,
 * metrics.jsonl, checkpoints/ with --checkpoint-every, summary.json), and {@code OUT/summary.json} lists them all.
 */
final class TrainManySpark {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainManySpark() {}

    /** @param modelUri the base's Hugging Face directory, any Hadoop URI; @param out the output directory, any Hadoop URI */
    static int run(Args a, String modelUri, String out, List<TrainManyCommand.JobSpec> specs) throws Exception {
        String sync = a.get("sync");
        int k = a.getInt("local-steps");
        if (!sync.equals("gradients") && !sync.equals("parameters")) throw new Args.UsageException("--sync: gradients or parameters, got '" + sync + "'");
        if (sync.equals("gradients") && k != 1) throw new Args.UsageException("--local-steps " + k + " needs --sync parameters (gradient sync takes one step per round)");
        int partitions = a.getInt("partitions");
        if (partitions < 1) throw new Args.UsageException("--partitions must be at least 1");
        String master = a.has("master") ? a.get("master") : System.getProperty("spark.master") != null ? null : "local[*]";
        try (JavaSparkContext sc = SparkSetup.context("spark-lora train-many (" + specs.size() + " adapters)", master, Map.of())) {
            Configuration conf = sc.hadoopConfiguration();
            // a URI as given; a local path made absolute (it is recorded in each adapter as its base)
            String modelDir = HadoopFiles.isUri(modelUri) ? modelUri : Path.of(modelUri).toAbsolutePath().toString();
            BaseModelRef base = BaseModelRef.of(conf, modelDir);
            ModelConfig mc = io.sparklora.spark.BaseModelCache.model(base, conf).config();
            int seq = Math.min(a.getInt("seq"), mc.maxPositions());
            List<MultiTrainStage.Job> jobs = new ArrayList<>();
            Map<String, String> failedEarly = new LinkedHashMap<>();
            String tokenizerUri = HadoopFiles.resolve(modelDir, "tokenizer.json");
            for (TrainManyCommand.JobSpec s : specs) {
                try {
                    AdapterConfig cfg = AdapterSpecs.parse(s.adapter(), mc.architecture());
                    if (s.options().steps() % k != 0) {
                        throw new IllegalArgumentException("its " + s.options().steps() + " steps are not a whole number of rounds of " + k + " local steps");
                    }
                    ShardSource shards;
                    if (s.data() != null) {
                        // the executor-wide tokenizer cache serves the driver too (not closed here: the cache owns it)
                        TextTokenizer tok = TokenizerCache.load(conf, tokenizerUri);
                        TokenBlocks all = LocalRun.blocks(s.data(), tok, seq, LocalRun.chatTemplate(a, tokenizerUri));
                        shards = new InMemoryShards(split(all, partitions));
                    } else {
                        ShardManifest m = ShardManifest.read(conf, s.shards());
                        m.checkTokenizer(TokenizerCache.load(conf, tokenizerUri).fingerprint());
                        if (m.seqLen() != seq) {
                            throw new IllegalArgumentException(s.shards() + " holds blocks of " + m.seqLen() + " tokens; this run trains on " + seq + " (--seq)");
                        }
                        shards = new ArrowShards(s.shards(), m, ShardManifest.TRAIN);
                    }
                    String dir = HadoopFiles.resolve(out, s.name());
                    TrainSpec spec = new TrainSpec(base, cfg, Map.of(), s.options().steps() / k, k, sync, sync.equals("parameters"), s.options(), 1.0,
                            a.getInt("checkpoint-every"), dir);
                    jobs.add(new MultiTrainStage.Job(s.name(), spec, shards, new MetricsLog(conf, HadoopFiles.resolve(dir, "metrics.jsonl"))));
                } catch (RuntimeException | java.io.IOException e) {
                    failedEarly.put(s.name(), "adapter '" + s.name() + "': " + e.getMessage());
                }
            }
            long t0 = System.nanoTime();
            Map<String, MultiTrainStage.Outcome> outcomes = jobs.isEmpty() ? Map.of() : MultiTrainStage.run(sc, jobs, System.out);
            double seconds = (System.nanoTime() - t0) / 1e9;
            ObjectNode summary = JSON.createObjectNode();
            ArrayNode list = summary.putArray("adapters");
            List<String> failures = new ArrayList<>(failedEarly.values());
            for (TrainManyCommand.JobSpec s : specs) {
                ObjectNode e = list.addObject().put("name", s.name());
                MultiTrainStage.Outcome o = outcomes.get(s.name());
                if (o == null || !o.succeeded()) {
                    String why = o == null ? failedEarly.get(s.name()) : o.error();
                    e.put("status", "failed").put("error", why);
                    if (o != null) failures.add(why);
                    continue;
                }
                String dir = HadoopFiles.resolve(out, s.name());
                ObjectNode r = o.result().toJson(e.put("status", "trained"));
                r.put("method", o.result().adapter().config().method()).put("adapter", HadoopFiles.resolve(dir, "adapter"));
                HadoopFiles.writeString(conf, HadoopFiles.resolve(dir, "summary.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(r));
            }
            summary.put("seconds", seconds).put("sync", sync).put("local_steps", k);
            HadoopFiles.writeString(conf, HadoopFiles.resolve(out, "summary.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(summary));
            return TrainManyCommand.exitStatus(failures, specs.size());
        }
    }

    /** Blocks dealt round-robin into n shards (the demo's small corpora; big ones come as a tokenize stage's shards). */
    static List<TokenBlocks> split(TokenBlocks all, int n) {
        if (all.size() == 0) throw new IllegalArgumentException("its data holds no blocks");
        List<TokenBlocks> shards = new ArrayList<>();
        for (int i = 0; i < n; i++) shards.add(new TokenBlocks(all.seqLen()));
        for (int b = 0; b < all.size(); b++) shards.get(b % n).add(all.block(b), all.mask(b));
        return shards;
    }
}
