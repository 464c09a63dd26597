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

/**
 * What distributing costs: the same LoRA training step (the same total batch) run (a) in one process and
 * (b) as rounds of the Spark train stage with gradient averaging over P partitions on local[P], side by
 * side in one JVM. Prints tokens/s of both, their ratio, the seconds per round spent outside the
 * model's compute, and the bytes moved per round against the model's size.
 *
 * <p>Usage: java ... DistributedRoundBenchmark [--layers 12 --d 768 --heads 12 --vocab 50257 --seq 256
 * --batch-per-task 2 --partitions 2 --rounds 5 --warmup 2 --inline-max-bytes N --sync gradients|parameters --local-steps K
 * --rounds-via session|jobs]
 *
 * <p>{@code --rounds-via} chooses how the rounds reach the tasks: {@code session} (the default, as in the product: one
 * barrier stage of long-lived tasks for the whole run, {@code spark.train.RoundSession}, when the cluster allows it) or
 * {@code jobs} (one Spark job per round). The JSON's {@code rounds_via} says which ran; its {@code round_ms} breaks a
 * round down by Spark's job and task metrics only for {@code jobs}.
 *
 * <p>{@code --sync parameters --local-steps K} runs each round as K local steps per task followed by parameter
 * averaging (one Spark job per K steps); the one-process side then runs K steps per round of the union batch, so both
 * sides process the same tokens. Its figures compare throughput only: K local steps with averaging are not the same
 * training as K steps on the union batch.
 *
 * <p>{@code --inline-max-bytes} sets the largest round state sent inside the task instead of as a broadcast
 * (default {@link TrainStage#inlineMaxBytes()}; 0 always broadcasts); the JSON's {@code round_state} says which
 * path the rounds took.
 */
public final class DistributedRoundBenchmark {
    /**
     * Where a round's time goes, from Spark's own task metrics: per round, the job's wall time from submission to end,
     * and summed over its tasks the time to deserialise the task, to run it, to serialise its result, and the
     * scheduler's delay (launch to result, less the task's own time). What is left of the round outside the job is
     * the driver's: the broadcast, the optimizer step, the sum, the metrics line.
     */
    static final class RoundBreakdown extends org.apache.spark.scheduler.SparkListener {
        final java.util.Map<Integer, Long> jobStart = new java.util.concurrent.ConcurrentHashMap<>();
        double jobs, jobSeconds, deserialize, run, resultSer, schedulerDelay, gcTime, tasks;

        synchronized void reset() {
            jobs = jobSeconds = deserialize = run = resultSer = schedulerDelay = gcTime = tasks = 0;
        }

        @Override public void onJobStart(org.apache.spark.scheduler.SparkListenerJobStart e) { jobStart.put(e.jobId(), e.time()); }

        @Override public synchronized void onJobEnd(org.apache.spark.scheduler.SparkListenerJobEnd e) {
            Long t = jobStart.remove(e.jobId());
            if (t != null) {
                jobs++;
                jobSeconds += (e.time() - t) / 1e3;
            }
        }

        @Override public synchronized void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd e) {
            var m = e.taskMetrics();
            if (m == null) return;
            tasks++;
            deserialize += m.executorDeserializeTime() / 1e3;
            run += m.executorRunTime() / 1e3;
            resultSer += m.resultSerializationTime() / 1e3;
            gcTime += m.jvmGCTime() / 1e3;
            long span = e.taskInfo().finishTime() - e.taskInfo().launchTime();
            schedulerDelay += Math.max(0, span - m.executorDeserializeTime() - m.executorRunTime() - m.resultSerializationTime()) / 1e3;
        }

        synchronized String json(int rounds, double roundSeconds) {
            double per = 1000.0 / rounds;
            return String.format(Locale.ROOT, "{\"round\":%.1f,\"job\":%.1f,\"driver_outside_job\":%.1f,\"jobs\":%.0f,\"tasks\":%.0f,"
                            + "\"task_deserialize_sum\":%.1f,\"task_run_sum\":%.1f,\"task_result_serialize_sum\":%.1f,\"task_gc_sum\":%.1f,"
                            + "\"scheduler_delay_sum\":%.1f}",
                    roundSeconds * per, jobSeconds * per, (roundSeconds - jobSeconds) * per, jobs, tasks, deserialize * per, run * per,
                    resultSer * per, gcTime * per, schedulerDelay * per);
        }
    }

    /**
     * Seconds of the timed steps of one process training the union of every partition's batch per step, with
     * {@code threads} engine threads (untimed warm-up steps first).
     */
    private static double oneProcessSeconds(BaseModelRef base, JavaSparkContext sc, AdapterConfig lora, List<TokenBlocks> shards,
                                            int perTask, int total, int warmup, int threads) {
        io.sparklora.model.EngineThreads.set(threads);
        TransformerLM model = BaseModelCache.model(base, sc.hadoopConfiguration());
        AttachedAdapter ad = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, lora, 42);
        List<Parameter> params = ad.trainableParameters();
        AdamW opt = new AdamW(ParamGroup.byTag(params, 0.0), 1e-4);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(1);
        int parts = shards.size();
        double seconds = 0;
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
            if (s >= warmup) seconds += (System.nanoTime() - t0) / 1e9;
        }
        return seconds;
    }

    static String cpuModel() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) if (l.startsWith("model name")) return l.substring(l.indexOf(':') + 1).strip();
        } catch (java.io.IOException e) {
            // not Linux
        }
        return System.getProperty("os.arch");
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = BenchArgs.parse(args);
        int layers = Integer.parseInt(a.getOrDefault("layers", "12")), d = Integer.parseInt(a.getOrDefault("d", "768"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "12")), vocab = Integer.parseInt(a.getOrDefault("vocab", "50257"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "256")), perTask = Integer.parseInt(a.getOrDefault("batch-per-task", "2"));
        int parts = Integer.parseInt(a.getOrDefault("partitions", "2")), rounds = Integer.parseInt(a.getOrDefault("rounds", "5"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "2"));
        String sync = a.getOrDefault("sync", "gradients");
        int k = Integer.parseInt(a.getOrDefault("local-steps", "1"));
        if (!sync.equals("gradients") && !sync.equals("parameters")) throw new IllegalArgumentException("--sync must be gradients or parameters, got " + sync);
        if (sync.equals("gradients") && k != 1) throw new IllegalArgumentException("--local-steps needs --sync parameters");
        String via = a.getOrDefault("rounds-via", "session");
        TrainStage.Rounds roundsVia = switch (via) {
            case "session" -> TrainStage.Rounds.SESSION;
            case "jobs" -> TrainStage.Rounds.JOBS;
            default -> throw new IllegalArgumentException("--rounds-via must be session or jobs, got " + via);
        };
        long inlineMax = a.containsKey("inline-max-bytes") ? Long.parseLong(a.get("inline-max-bytes")) : TrainStage.inlineMaxBytes();
        ModelConfig cfg = ModelConfig.gpt2(vocab, d, layers, heads, 1024);
        AdapterConfig lora = AdapterConfig.lora(8, 16, List.of("c_attn"));
        int total = warmup + rounds;

        Path dir = Files.createTempDirectory("spark-lora-bench-base");
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 42), dir.resolve("m"), DataType.FLOAT, null);
        List<TokenBlocks> shards = new ArrayList<>();
        for (int p = 0; p < parts; p++) shards.add(MultiAdapterTrainBenchmark.randomBlocks(perTask * total * k, seq, vocab, 1 + p));
        long tokensPerRound = (long) parts * perTask * seq * k;

        try (JavaSparkContext sc = SparkSetup.local(parts)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.resolve("m").toString());

            // (a) one process: the union batch each step, with 1 engine thread and with one per partition
            double one1 = oneProcessSeconds(base, sc, lora, shards, perTask, total * k, warmup * k, 1);
            double oneP = parts == 1 ? one1 : oneProcessSeconds(base, sc, lora, shards, perTask, total * k, warmup * k, parts);
            double oneSeconds = Math.min(one1, oneP);
            io.sparklora.model.EngineThreads.set(1);      // what every task sets (spark.task.cpus = 1)
            RoundBreakdown breakdown = new RoundBreakdown();
            sc.sc().addSparkListener(breakdown);

            // (b) Spark rounds, gradient averaging
            TrainingOptions o = new TrainingOptions(total, perTask, 1, 1e-4, 0.0, 0, "constant", 0.0, 1.0, 42);
            TrainSpec spec = new TrainSpec(base, lora, Map.of(), total, k, sync, false, o, 1.0, 0, null);
            long[] last = {System.nanoTime()};
            double[] spark = {0};
            java.io.ByteArrayOutputStream console = new java.io.ByteArrayOutputStream();
            DistributedTrainer.Result res = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "bench",
                    new PrintStream(console, true, java.nio.charset.StandardCharsets.UTF_8), (done, rr) -> {
                        long now = System.nanoTime();
                        if (done > warmup) spark[0] += (now - last[0]) / 1e9;
                        if (done == warmup) breakdown.reset();
                        last[0] = now;
                    }, inlineMax, roundsVia);
            boolean sessionRan = console.toString(java.nio.charset.StandardCharsets.UTF_8).contains("rounds run over a round session");
            if (roundsVia == TrainStage.Rounds.SESSION && !sessionRan) System.err.print(console.toString(java.nio.charset.StandardCharsets.UTF_8));
            sc.sc().listenerBus().waitUntilEmpty();
            double oneTps = rounds * tokensPerRound / oneSeconds, sparkTps = rounds * tokensPerRound / spark[0];
            double one1Tps = rounds * tokensPerRound / one1, onePTps = rounds * tokensPerRound / oneP;
            System.out.printf(Locale.ROOT, "{\"model\":\"gpt2 L=%d d=%d V=%d\",\"tokens_per_round\":%d,\"partitions\":%d,\"timed_steps\":%d,"
                            + "\"one_process_tokens_per_s\":%.1f,\"spark_tokens_per_s\":%.1f,\"spark_over_one_process\":%.3f,"
                            + "\"overhead_s_per_round\":%.3f,\"bytes_broadcast_per_round\":%d,\"bytes_reduced_per_round\":%d,\"model_bytes\":%d,"
                            + "\"one_process_tokens_per_s_1_thread\":%.1f,\"one_process_tokens_per_s_%d_threads\":%.1f,\"cpu\":\"%s\","
                            + "\"round_state\":\"%s\",\"inline_max_bytes\":%d,\"sync\":\"%s\",\"local_steps\":%d,\"rounds_via\":\"%s\",\"round_ms\":%s}%n",
                    layers, d, vocab, tokensPerRound, parts, rounds, oneTps, sparkTps, sparkTps / oneTps,
                    (spark[0] - oneSeconds) / rounds, res.bytesBroadcastPerRound(), res.bytesReducedPerRound(), res.modelBytes(),
                    one1Tps, parts, onePTps, cpuModel(),
                    res.bytesBroadcastPerRound() <= inlineMax ? "inline" : "broadcast", inlineMax, sync, k, sessionRan ? "session" : "jobs",
                    sessionRan ? String.format(Locale.ROOT, "{\"round\":%.1f}", spark[0] * 1000.0 / rounds) : breakdown.json(rounds, spark[0]));
        } finally {
            HadoopFiles.deleteLocalTree(dir);
        }
    }
}
