package io.sparklora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.Parameter;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.ExactAggregation;
import io.sparklora.train.PartitionFactors;
import io.sparklora.train.RoundWork;
import io.sparklora.train.Evaluator;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.OuterOptimizer;
import io.sparklora.train.RoundResult;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.StackedRounds;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.conf.Configuration;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Validation loss against bytes moved, for the ways a distributed train stage can synchronise: {@code sync: gradients}
 * (K = 1, exact data parallelism), {@code sync: parameters} with plain averaging every K local steps, the same with
 * DiLoCo's outer optimizer ({@code train.outer}: Nesterov momentum on the averaged change), and with exact aggregation
 * ({@code train.aggregate: svd}). Rows named {@code -fresh} start every round from fresh AdamW moments (svd must, so
 * {@code mean-fresh} is its like-for-like). Every row trains the same
 * adapter on the demo's labelled task with the same number of local steps per partition, so rows differ only in how
 * often and how the partitions' work is combined. The rounds run in this process, one partition after another
 * ({@link io.sparklora.train.InProcessRounds}' loop: the Spark stage's arithmetic without Spark), so the figures are the algorithm's, not the
 * cluster's; bytes are what the stage would move, counted from the round state and the results (down to every task
 * and up from every task).
 *
 * <pre>
 * java ... SyncModesBenchmark [--run runs/demo --dataset adapt --partitions 2 --steps 256 --ks 8,32,128
 *     --modes gradients,mean,diloco,mean-fresh,svd,stack
 *     --batch 8 --lr 3e-3 --warmup 5 --schedule cosine --clip 1.0 --r 8 --alpha 16 --targets c_attn,c_proj,c_fc
 *     --outer-lr 0.7 --outer-momentum 0.9 --eval-every 32 --seed 42 --out bench/out/sync-modes.json]
 * </pre>
 * {@code --run} is a pipeline run holding {@code base/} and {@code shards/<dataset>/} ({@code bin/spark-lora train
 * --config conf/demo.yaml --output runs/demo} makes it). {@code --steps} is the local steps per partition of every row,
 * {@code --eval-every} how many of them between two validation points. Rows of {@code mean} also measure, every round,
 * what plain averaging loses against the exact mean of the workers' B·A ({@link ExactAggregation}'s averaging gap,
 * computed here from each partition's own adapter); {@code svd} and {@code stack} rows get it from the factors the tasks
 * send. {@code stack} rows (FLoRA) also give the rank of the exact adapter they end with and its validation loss.
 */
public final class SyncModesBenchmark {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    private SyncModesBenchmark() {}

    /** One row: a sync mode, K, the outer optimizer, how adapters combine, and whether moments are averaged. */
    record Row(String label, String sync, int k, OuterOptimizer.Spec outer, String aggregate, boolean averageMoments) {}

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("expected --key value pairs, got " + args[i]);
            o.put(args[i].substring(2), args[i + 1]);
        }
        Path run = Path.of(o.getOrDefault("run", "runs/demo"));
        VariantsTask task = VariantsTask.load(run, o.getOrDefault("dataset", "adapt"));
        int partitions = Integer.parseInt(o.getOrDefault("partitions", "2"));
        int steps = Integer.parseInt(o.getOrDefault("steps", "256"));
        int evalEvery = Integer.parseInt(o.getOrDefault("eval-every", "32"));
        long seed = Long.parseLong(o.getOrDefault("seed", "42"));
        double outerLr = Double.parseDouble(o.getOrDefault("outer-lr", "0.7")), outerMomentum = Double.parseDouble(o.getOrDefault("outer-momentum", "0.9"));
        TrainingOptions opts = new TrainingOptions(steps, Integer.parseInt(o.getOrDefault("batch", "8")), 1,
                Double.parseDouble(o.getOrDefault("lr", "3e-3")), 0.0, Integer.parseInt(o.getOrDefault("warmup", "5")),
                o.getOrDefault("schedule", "cosine"), 0.0, Double.parseDouble(o.getOrDefault("clip", "1.0")), seed);
        AdapterConfig adapter = AdapterConfig.lora(Integer.parseInt(o.getOrDefault("r", "8")), Double.parseDouble(o.getOrDefault("alpha", "16")),
                List.of(o.getOrDefault("targets", "c_attn,c_proj,c_fc").split(","))).withTrainableTokens(task.labelRowIds());

        // the train blocks dealt round-robin into the partitions, as shards of one size
        List<TokenBlocks> shards = new ArrayList<>();
        for (int p = 0; p < partitions; p++) shards.add(new TokenBlocks(task.train.seqLen()));
        for (int i = 0; i < task.train.size(); i++) shards.get(i % partitions).add(task.train.block(i), task.train.mask(i));

        List<String> modes = List.of(o.getOrDefault("modes", "gradients,mean,diloco,mean-fresh,svd").split(","));
        List<Row> rows = new ArrayList<>();
        OuterOptimizer.Spec none = OuterOptimizer.Spec.NONE, diloco = new OuterOptimizer.Spec("sgd", outerLr, outerMomentum, true);
        if (modes.contains("gradients")) rows.add(new Row("gradients K=1", "gradients", 1, none, "mean", false));
        for (String ks : o.getOrDefault("ks", "8,32,128").split(",")) {
            int k = Integer.parseInt(ks.trim());
            if (modes.contains("mean")) rows.add(new Row("averaging K=" + k, "parameters", k, none, "mean", true));
            if (modes.contains("diloco")) rows.add(new Row("DiLoCo K=" + k, "parameters", k, diloco, "mean", true));
            if (modes.contains("mean-fresh")) rows.add(new Row("averaging, fresh moments K=" + k, "parameters", k, none, "mean", false));
            if (modes.contains("svd")) rows.add(new Row("svd, fresh moments K=" + k, "parameters", k, none, "svd", false));
            if (modes.contains("stack")) rows.add(new Row("stack (FLoRA) K=" + k, "parameters", k, none, "stack", false));
        }

        ObjectMapper json = new ObjectMapper();
        ObjectNode report = json.createObjectNode();
        report.put("run", run.toString()).put("partitions", partitions).put("local_steps_per_partition", steps).put("batch_per_task", opts.batchSize())
                .put("lr", opts.lr()).put("schedule", opts.schedule()).put("train_blocks", task.train.size())
                .put("validation_blocks", task.validation.size()).put("cpu", cpuModel());
        double baseLoss = Evaluator.evaluate(task.loadBase(), task.validation, 16).loss();
        report.put("base_validation_loss", baseLoss);
        System.out.printf(Locale.ROOT, "base validation loss %.4f; %d partitions, %d local steps each, %d train blocks%n", baseLoss, partitions, steps,
                task.train.size());
        ArrayNode out = report.putArray("rows");
        for (Row row : rows) {
            if (steps % row.k() != 0) throw new IllegalArgumentException("--steps " + steps + " is not a multiple of K=" + row.k());
            int rounds = steps / row.k();
            // moments are averaged too (the demo's average_optimizer_state: true), except under gradient sync, which has none
            TrainSpec spec = new TrainSpec(new BaseModelRef(run.resolve("base").toUri().toString(), "bench"), adapter, Map.of(), rounds, row.k(),
                    row.sync(), row.averageMoments(), opts, 1.0, 0, null).withOuter(row.outer()).withAggregate(row.aggregate());
            AttachedAdapter driver = AttachedAdapter.attach(task.loadBase(), TrainSpec.ADAPTER_NAME, adapter, seed);
            AttachedAdapter worker = AttachedAdapter.attach(task.loadBase(), TrainSpec.ADAPTER_NAME, adapter, seed);
            long[] moved = new long[1], foldsSent = new long[1];
            List<Double> gaps = new ArrayList<>();
            List<ExactAggregation.Pair> pairs = ExactAggregation.pairs(worker.trainableParameters(), new String[]{"lora_B", "lora_A"});
            boolean measureGap = row.sync().equals("parameters") && row.aggregate().equals("mean");
            DistributedTrainer.RoundExecutor counting = st -> {
                // InProcessRounds' loop, keeping each partition's own adapter to measure what averaging loses
                RoundResult sum = new RoundResult();
                List<PartitionFactors> own = new ArrayList<>();
                for (int p = 0; p < shards.size(); p++) {
                    RoundResult r = RoundWork.run(worker, shards.get(p), st, spec, p);
                    if (measureGap && r.weight > 0) {
                        own.add(new PartitionFactors(p, r.weight, new AdapterTensors().addScaled(r.payload, 1.0 / r.weight)));
                    }
                    if (!r.factors.isEmpty()) own.addAll(r.factors);
                    sum.add(r);
                }
                if (!own.isEmpty()) gaps.add(ExactAggregation.svd(own, pairs, adapter.r(), new AdapterTensors()).averagingGap());
                // down to every task, up from every task; stack's folds go down once each (spark.train.FoldBroadcasts)
                moved[0] += (long) partitions * (st.bytes() - foldsSent[0] + sum.bytes());
                foldsSent[0] = StackedRounds.bytes(st.folds());
                return sum;
            };
            ObjectNode line = out.addObject();
            line.put("label", row.label()).put("sync", row.sync()).put("k", row.k()).put("rounds", rounds).put("outer", row.outer().toString())
                    .put("aggregate", row.aggregate()).put("average_optimizer_state", row.averageMoments());
            ArrayNode curve = line.putArray("curve");
            // stack rows: the driver's adapter restarts every round, so the validation points use a model that merges
            // every round's folds as they come (base + Σ folds, its own adapter at B = 0, the driver's averaged token rows)
            AttachedAdapter folded = row.aggregate().equals("stack") ? AttachedAdapter.attach(task.loadBase(), TrainSpec.ADAPTER_NAME, adapter, seed) : null;
            long t0 = System.nanoTime();
            DistributedTrainer.RoundListener listener = (done, res) -> {
                long localSteps = (long) done * row.k();
                if (folded != null) {
                    StackedRounds.folds(res.factors, pairs).forEach(f -> folded.fold(f.toArrays()));
                    // what is averaged rather than folded (the label token rows) comes from the driver
                    java.util.Set<String> pairNames = new java.util.HashSet<>();
                    for (ExactAggregation.Pair p : pairs) { pairNames.add(p.b()); pairNames.add(p.a()); }
                    List<Parameter> rest = driver.trainableParameters().stream().filter(q -> !pairNames.contains(q.name())).toList();
                    AdapterTensors.ofValues(rest).copyInto(folded.trainableParameters().stream().filter(q -> !pairNames.contains(q.name())).toList());
                }
                if (localSteps % evalEvery == 0 || done == rounds) {
                    double loss = Evaluator.evaluate(folded != null ? folded.model() : driver.model(), task.validation, 16).loss();
                    curve.addObject().put("local_steps", localSteps).put("bytes_moved", moved[0]).put("validation_loss", loss);
                }
            };
            MetricsLog metrics = MetricsLog.inMemory();
            DistributedTrainer.Result result = DistributedTrainer.run(driver, spec, new Configuration(), counting, partitions, metrics, "train", QUIET, listener);
            if (folded != null) {
                // the exact adapter the run ends with gives the folded model's loss (a check), at the rank it needed
                line.put("exported_rank", result.adapter().config().r())
                        .put("exported_adapter_validation_loss", Evaluator.evaluate(result.adapter().model(), task.validation, 16).loss());
            }
            // svd rows: what the rank-r cut lost each round, as the driver logged it
            double[] cut = metrics.lines().stream().filter(l -> l.has("truncation_gap")).mapToDouble(l -> l.get("truncation_gap").asDouble()).toArray();
            var last = curve.get(curve.size() - 1);
            line.put("validation_loss", last.get("validation_loss").asDouble()).put("bytes_moved", moved[0])
                    .put("seconds", (System.nanoTime() - t0) / 1e9);
            if (!gaps.isEmpty()) {
                line.put("averaging_gap_mean", gaps.stream().mapToDouble(Double::doubleValue).average().orElse(0))
                        .put("averaging_gap_last", gaps.get(gaps.size() - 1));
                gaps.forEach(line.putArray("averaging_gaps")::add);
            }
            if (cut.length > 0) {
                line.put("truncation_gap_mean", java.util.Arrays.stream(cut).average().orElse(0)).put("truncation_gap_last", cut[cut.length - 1]);
                java.util.Arrays.stream(cut).forEach(line.putArray("truncation_gaps")::add);
            }
            System.out.printf(Locale.ROOT, "%-32s %4d rounds  validation loss %.4f  moved %,d bytes%s  (%.0f s)%n", row.label(), rounds,
                    last.get("validation_loss").asDouble(), moved[0],
                    gaps.isEmpty() ? "" : String.format(Locale.ROOT, "  averaging gap mean %.4f last %.4f", line.get("averaging_gap_mean").asDouble(),
                            line.get("averaging_gap_last").asDouble()), (System.nanoTime() - t0) / 1e9);
        }
        Path file = Path.of(o.getOrDefault("out", "bench/out/sync-modes.json"));
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(tmp, json.writerWithDefaultPrettyPrinter().writeValueAsString(report), StandardCharsets.UTF_8);
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        System.out.println("wrote " + file);
    }

    static String cpuModel() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) if (l.startsWith("model name")) return l.substring(l.indexOf(':') + 1).trim();
        } catch (java.io.IOException ignored) {
        }
        return System.getProperty("os.arch");
    }
}
