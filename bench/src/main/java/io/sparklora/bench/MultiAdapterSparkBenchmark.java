package io.sparklora.bench;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.train.MultiTrainStage;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * N adapters trained on Spark local[P] in one job ({@link MultiTrainStage}, every round one Spark job for all of
 * them) against N train stages run one after another ({@link TrainStage}, a Spark job per adapter per round), side
 * by side in one JVM over one base saved as a Hugging Face checkpoint: LoRA r = 8 on {@code c_attn}, gradient sync,
 * random tokens, each adapter its own data and seed. Prints one JSON line per N: tokens/s of both and their ratio. A
 * throwaway run of both paths first warms the JIT. Whole stage runs are timed (their first round included), the same way for both.
 *
 * <p>Options: --layers 2 --d 128 --heads 4 --vocab 2048 --seq 128 --batch-per-task 4 --partitions 2 --rounds 20 --ns 1,2,4,8
 */
public final class MultiAdapterSparkBenchmark {
    private MultiAdapterSparkBenchmark() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = BenchArgs.parse(args);
        int layers = Integer.parseInt(a.getOrDefault("layers", "2")), d = Integer.parseInt(a.getOrDefault("d", "128"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "4")), vocab = Integer.parseInt(a.getOrDefault("vocab", "2048"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "128")), perTask = Integer.parseInt(a.getOrDefault("batch-per-task", "4"));
        int parts = Integer.parseInt(a.getOrDefault("partitions", "2")), rounds = Integer.parseInt(a.getOrDefault("rounds", "20"));
        ModelConfig cfg = ModelConfig.gpt2(vocab, d, layers, heads, Math.max(seq, 128));
        Path dir = Files.createTempDirectory("spark-lora-bench-base");
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 42), dir.resolve("m"), DataType.FLOAT, null);
        try (JavaSparkContext sc = SparkSetup.local(parts)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.resolve("m").toString());
            // warm-up: both paths, long enough for the JIT (a first N = 1 pair otherwise differs by up to 1.6x)
            for (MultiTrainStage.Job j : jobs(base, 2, parts, perTask, seq, vocab, rounds)) {
                TrainStage.run(sc, j.spec(), j.shards(), MetricsLog.inMemory(), "warm-up", quiet, null);
            }
            MultiTrainStage.run(sc, jobs(base, 2, parts, perTask, seq, vocab, rounds), quiet);
            for (String nText : a.getOrDefault("ns", "1,2,4,8").split(",")) {
                int n = Integer.parseInt(nText.trim());
                List<MultiTrainStage.Job> jobs = jobs(base, n, parts, perTask, seq, vocab, rounds);
                long t0 = System.nanoTime();
                for (MultiTrainStage.Job j : jobs) TrainStage.run(sc, j.spec(), j.shards(), MetricsLog.inMemory(), j.name(), quiet, null);
                double separate = (System.nanoTime() - t0) / 1e9;
                t0 = System.nanoTime();
                Map<String, MultiTrainStage.Outcome> out = MultiTrainStage.run(sc, jobs, quiet);
                double together = (System.nanoTime() - t0) / 1e9;
                for (MultiTrainStage.Outcome o : out.values()) if (!o.succeeded()) throw new IllegalStateException(o.error());
                long tokens = (long) n * rounds * parts * perTask * seq;
                System.out.printf(Locale.ROOT, "{\"model\":\"gpt2 L=%d d=%d V=%d\",\"adapters\":%d,\"partitions\":%d,\"batch_per_task\":%d,\"seq\":%d,"
                                + "\"rounds\":%d,\"separate_stages_tokens_per_s\":%.1f,\"one_job_tokens_per_s\":%.1f,\"one_job_over_separate\":%.3f,\"cpu\":\"%s\"}%n",
                        layers, d, vocab, n, parts, perTask, seq, rounds, tokens / separate, tokens / together, separate / together,
                        DistributedRoundBenchmark.cpuModel());
            }
        } finally {
            HadoopFiles.deleteLocalTree(dir);
        }
    }

    static List<MultiTrainStage.Job> jobs(BaseModelRef base, int n, int parts, int perTask, int seq, int vocab, int rounds) {
        List<MultiTrainStage.Job> jobs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            List<TokenBlocks> shards = new ArrayList<>();
            for (int p = 0; p < parts; p++) shards.add(MultiAdapterTrainBenchmark.randomBlocks(perTask * rounds, seq, vocab, 1000L * i + p));
            TrainingOptions o = new TrainingOptions(rounds, perTask, 1, 1e-4, 0.0, 0, "constant", 0.0, 1.0, 100 + i);
            TrainSpec spec = new TrainSpec(base, AdapterConfig.lora(8, 16, List.of("c_attn")), Map.of(), rounds, 1, "gradients", false, o, 1.0, 0, null);
            jobs.add(new MultiTrainStage.Job("a" + i, spec, new InMemoryShards(shards), MetricsLog.inMemory()));
        }
        return jobs;
    }
}
