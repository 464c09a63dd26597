package io.sparklora.bench;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.train.TrainStage;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.ParamGroup;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * What distributing costs: the same LoRA training step (the same total batch) run (a) in one process and
 * (b) as rounds of the Spark train stage with gradient averaging over P partitions on local[P], side by
 * side in one JVM. Prints tokens/s of both, their ratio, the seconds per round spent outside the
 * model's compute, and the bytes moved per round against the model's size.
 *
 * <p>Usage: java ... DistributedRoundBenchmark [--layers 12 --d 768 --heads 12 --vocab 50257 --seq 256
 * --batch-per-task 2 --partitions 2 --rounds 5 --warmup 2]
 */
public final class DistributedRoundBenchmark {
    public static void main(String[] args) throws Exception {
        Map<String, String> a = new java.util.HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) a.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        int layers = Integer.parseInt(a.getOrDefault("layers", "12")), d = Integer.parseInt(a.getOrDefault("d", "768"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "12")), vocab = Integer.parseInt(a.getOrDefault("vocab", "50257"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "256")), perTask = Integer.parseInt(a.getOrDefault("batch-per-task", "2"));
        int parts = Integer.parseInt(a.getOrDefault("partitions", "2")), rounds = Integer.parseInt(a.getOrDefault("rounds", "5"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "2"));
        ModelConfig cfg = ModelConfig.gpt2(vocab, d, layers, heads, 1024);
        AdapterConfig lora = AdapterConfig.lora(8, 16, List.of("c_attn"));
        int total = warmup + rounds;

        Path dir = Files.createTempDirectory("spark-lora-bench-base");
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 42), dir.resolve("m"), DataType.FLOAT, null);
        Random r = new Random(1);
        List<TokenBlocks> shards = new ArrayList<>();
        for (int p = 0; p < parts; p++) {
            TokenBlocks b = new TokenBlocks(seq);
            for (int i = 0; i < perTask * total; i++) {
                int[] t = new int[seq + 1];
                boolean[] m = new boolean[seq + 1];
                for (int j = 0; j <= seq; j++) {
                    t[j] = r.nextInt(vocab);
                    m[j] = true;
                }
                b.add(t, m);
            }
            shards.add(b);
        }
        long tokensPerStep = (long) parts * perTask * seq;

        try (JavaSparkContext sc = SparkSetup.local(parts)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.resolve("m").toString());

            // (a) one process: the union batch each step
            TransformerLM model = BaseModelCache.model(base, sc.hadoopConfiguration());
            AttachedAdapter ad = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, lora, 42);
            List<Parameter> params = ad.trainableParameters();
            AdamW opt = new AdamW(ParamGroup.byTag(params, 0.0), 1e-4);
            var rng = Nd4j.getRandomFactory().getNewRandomInstance(1);
            double oneSeconds = 0;
            for (int s = 0; s < total; s++) {
                int[][] rows = new int[parts * perTask][];
                boolean[][] masks = new boolean[parts * perTask][];
                for (int p = 0, k = 0; p < parts; p++) {
                    for (int i = 0; i < perTask; i++, k++) {
                        rows[k] = shards.get(p).block(s * perTask + i);
                        masks[k] = shards.get(p).mask(s * perTask + i);
                    }
                }
                long t0 = System.nanoTime();
                model.forwardBackward(TokenBatch.shifted(rows, masks), ForwardContext.training(rng), 1.0);
                GradClipping.clip(params, 1.0);
                opt.step();
                opt.zeroGrad();
                System.gc();
                if (s >= warmup) oneSeconds += (System.nanoTime() - t0) / 1e9;
            }

            // (b) Spark rounds, gradient averaging
            TrainingOptions o = new TrainingOptions(total, perTask, 1, 1e-4, 0.0, 0, "constant", 0.0, 1.0, 42);
            TrainSpec spec = new TrainSpec(base, lora, Map.of(), total, 1, "gradients", false, o, 1.0, 0, null);
            long[] last = {System.nanoTime()};
            double[] spark = {0};
            DistributedTrainer.Result res = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "bench",
                    new PrintStream(java.io.OutputStream.nullOutputStream()), (done, rr) -> {
                        long now = System.nanoTime();
                        if (done > warmup) spark[0] += (now - last[0]) / 1e9;
                        last[0] = now;
                    });
            double oneTps = rounds * tokensPerStep / oneSeconds, sparkTps = rounds * tokensPerStep / spark[0];
            System.out.printf(Locale.ROOT, "{\"model\":\"gpt2 L=%d d=%d V=%d\",\"tokens_per_step\":%d,\"partitions\":%d,\"timed_steps\":%d,"
                            + "\"one_process_tokens_per_s\":%.1f,\"spark_tokens_per_s\":%.1f,\"spark_over_one_process\":%.3f,"
                            + "\"overhead_s_per_round\":%.3f,\"bytes_broadcast_per_round\":%d,\"bytes_reduced_per_round\":%d,\"model_bytes\":%d}%n",
                    layers, d, vocab, tokensPerStep, parts, rounds, oneTps, sparkTps, sparkTps / oneTps,
                    (spark[0] - oneSeconds) / rounds, res.bytesBroadcastPerRound(), res.bytesReducedPerRound(), res.modelBytes());
        } finally {
            HadoopFiles.deleteLocalTree(dir);
        }
    }
}
