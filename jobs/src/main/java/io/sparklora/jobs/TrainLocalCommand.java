package io.sparklora.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.ParameterReport;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.ProgressLine;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import io.sparklora.util.AtomicFiles;

import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/**
 * {@code spark-lora train --local}: fine-tunes an adapter on one machine and writes it in PEFT layout,
 * with {@code metrics.jsonl} (one line per step) and {@code summary.json} beside it.
 */
final class TrainLocalCommand {
    static final String USAGE = "train --local --model DIR --data FILES --adapter SPEC --out DIR [--steps 100 --batch 4 --accum 1 "
            + "--seq 256 --lr 2e-4 --weight-decay 0 --warmup 10 --schedule cosine --clip 1.0 --seed 42 --eval-every-k 10 "
            + "--activation-checkpointing]";
    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainLocalCommand() {}

    static int run(String[] argv) throws Exception {
        Args a = new Args("train", argv, Set.of("model", "data", "adapter", "out", "steps", "batch", "accum", "seq", "lr",
                "weight-decay", "warmup", "schedule", "clip", "seed", "eval-every-k"), Set.of("local", "activation-checkpointing"));
        if (!a.flag("local")) throw new Args.UsageException("train: distributed training is the Spark pipeline's; pass --local to train in this process");
        Path modelDir = Path.of(a.require("model"));
        Path out = Path.of(a.require("out"));
        TransformerLM model = HfModelDirectory.load(modelDir);
        model.setActivationCheckpointing(a.flag("activation-checkpointing"));
        AdapterConfig cfg = AdapterSpecs.parse(a.require("adapter"), model.config().architecture());
        int steps = a.getInt("steps", 100);
        TrainingOptions opts = new TrainingOptions(steps, a.getInt("batch", 4), a.getInt("accum", 1), a.getDouble("lr", 2e-4),
                a.getDouble("weight-decay", 0.0), a.getInt("warmup", Math.min(10, steps / 10)), a.get("schedule", "cosine"), 0.0,
                a.getDouble("clip", 1.0), a.getInt("seed", 42));
        int seq = Math.min(a.getInt("seq", 256), model.config().maxPositions());
        TokenBlocks train, held;
        try (TextTokenizer tok = TextTokenizer.fromModelDir(modelDir)) {
            TokenBlocks all = LocalRun.blocks(a.require("data"), tok, seq);
            int k = a.getInt("eval-every-k", 10);
            TokenBlocks[] split = all.size() >= k ? all.splitEvery(k) : new TokenBlocks[]{all, all};
            train = split[0];
            held = split[1];
        }
        AttachedAdapter adapter = AttachedAdapter.attach(model, "default", cfg, opts.seed());
        ParameterReport report = adapter.report();
        System.out.println(report);
        System.out.printf("data: %d training blocks, %d held-out blocks of %d tokens%n", train.size(), held.size(), seq);
        Evaluator.Result before = Evaluator.evaluate(model, held, opts.batchSize());
        Trainer trainer = Trainer.forAdapter(adapter, opts);
        ProgressLine progress = new ProgressLine(System.out, "step", steps, 5.0);
        Files.createDirectories(out);
        long[] tokens = {0};
        long t0 = System.nanoTime();
        Path metricsTmp = out.resolve("metrics.jsonl.tmp");
        try (BufferedWriter metrics = Files.newBufferedWriter(metricsTmp, StandardCharsets.UTF_8)) {
            trainer.train(train, s -> {
                tokens[0] += s.tokens();
                progress.update(s.step(), s.loss(), tokens[0]);
                ObjectNode line = JSON.createObjectNode();
                line.put("step", s.step()).put("loss", s.loss()).put("grad_norm", s.gradNorm()).put("lr", opts.lr() * s.lrFactor())
                        .put("tokens", tokens[0]).put("seconds", (System.nanoTime() - t0) / 1e9);
                try {
                    metrics.write(line.toString());
                    metrics.newLine();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
        }
        Files.move(metricsTmp, out.resolve("metrics.jsonl"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        double seconds = (System.nanoTime() - t0) / 1e9;
        Evaluator.Result after = Evaluator.evaluate(model, held, opts.batchSize());
        PeftAdapterFormat.save(adapter, out.resolve("adapter"), modelDir.toAbsolutePath().toString());
        ObjectNode summary = JSON.createObjectNode();
        summary.put("trainable_params", report.trainable()).put("total_params", report.all()).put("steps", steps)
                .put("tokens_per_second", tokens[0] / seconds).put("seconds", seconds)
                .put("eval_loss_before", before.loss()).put("eval_perplexity_before", before.perplexity())
                .put("eval_loss_after", after.loss()).put("eval_perplexity_after", after.perplexity());
        AtomicFiles.writeString(out.resolve("summary.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(summary));
        System.out.printf("held-out perplexity %.3f -> %.3f; adapter written to %s%n", before.perplexity(), after.perplexity(), out.resolve("adapter"));
        return 0;
    }
}
