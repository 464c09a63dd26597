package io.sparklora.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.ParameterReport;
import io.sparklora.adapters.PeftAdapterFormat;
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

/**
 * {@code spark-lora train --local}: fine-tunes an adapter on one machine and writes it in PEFT layout,
 * with {@code metrics.jsonl} (one line per step) and {@code summary.json} beside it.
 */
final class TrainLocalCommand {
    static final Args.Spec SPEC = new Args.Spec("train --local",
            "Fine-tunes an adapter in this process and writes it in PEFT layout with metrics.jsonl and summary.json.",
            Args.Option.flag("local", "train in this process without Spark (without it: the pipeline's train stage)"),
            Args.Option.required("model", "DIR", "Hugging Face base model directory"),
            Args.Option.required("data", "FILES", "comma-separated text files or directories (every file inside)"),
            LocalRun.CHAT_TEMPLATE,
            Args.Option.required("adapter", "SPEC", "adapter_config.json path, or type=lora,r=8,alpha=16,targets=c_attn"),
            Args.Option.required("out", "DIR", "output directory: adapter/, metrics.jsonl, summary.json"),
            Args.Option.value("steps", "N", "100", "optimizer steps"),
            Args.Option.value("batch", "N", "4", "blocks per micro-batch"),
            Args.Option.value("accum", "N", "1", "micro-batches accumulated per step"),
            Args.Option.value("seq", "N", "256", "tokens per block (capped at the model's n_positions)"),
            Args.Option.value("lr", "X", "2e-4", "peak learning rate"),
            Args.Option.value("weight-decay", "X", "0", "AdamW weight decay"),
            Args.Option.value("warmup", "N", "min(10, steps/10)", "warmup steps"),
            Args.Option.value("schedule", "NAME", "cosine", "learning-rate schedule after warmup: cosine, linear or constant"),
            Args.Option.value("clip", "X", "1.0", "gradient norm clip"),
            Args.Option.value("seed", "N", "42", "seed of the adapter's initialisation and the data order"),
            Args.Option.value("eval-every-k", "K", "10", "every K-th block is held out for evaluation"),
            Args.Option.flag("activation-checkpointing", "recompute activations in the backward pass (less memory, more time)"),
            Args.Option.flag("half-activations", "hold saved activations in bfloat16 between forward and backward (less memory, gradients within 2% of fp32's)"),
            Args.Option.value("quantization", "TYPE", "none", "how the frozen base is held: none, or nf4 (QLoRA; a 4-bit checkpoint is nf4 anyway)"),
            Args.Option.flag("no-double-quant", "with --quantization nf4: fp32 block scales (4.5 bits per weight) instead of 8-bit ones"),
            Args.Option.value("optimizer-state", "WHERE", "memory", "AdamW's moments: memory, or mapped (memory-mapped files the OS can page out)"),
            Args.Option.value("spill-dir", "DIR", "java.io.tmpdir", "with --optimizer-state mapped: where the moment files go (local disk)"),
            Args.Option.value("threads", "N", "every core", "engine threads (libnd4j and OpenBLAS); small models run faster on 1 (docs/BENCHMARKS.md, \"Threads per task\")"));
    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainLocalCommand() {}

    static int run(String[] argv) throws Exception {
        Args a = SPEC.parse(argv);
        if (!a.flag("local")) throw new Args.UsageException("train: distributed training is the Spark pipeline's; pass --local to train in this process");
        Path modelDir = Path.of(a.require("model"));
        Path out = Path.of(a.require("out"));
        if (a.has("threads")) io.sparklora.model.EngineThreads.set(a.getInt("threads"));
        TransformerLM model = io.sparklora.quant.QuantizedCheckpoints.load(modelDir, io.sparklora.quant.BaseQuantization.parse(
                a.get("quantization"), !a.flag("no-double-quant"), "train --quantization"));
        model.setActivationCheckpointing(a.flag("activation-checkpointing"));
        model.setHalfActivations(a.flag("half-activations"));
        AdapterConfig cfg = AdapterSpecs.parse(a.require("adapter"), model.config().architecture());
        int steps = a.getInt("steps");
        int warmup = a.has("warmup") ? a.getInt("warmup") : Math.min(10, steps / 10);
        TrainingOptions opts = new TrainingOptions(steps, a.getInt("batch"), a.getInt("accum"), a.getDouble("lr"),
                a.getDouble("weight-decay"), warmup, a.get("schedule"), 0.0, a.getDouble("clip"), a.getInt("seed"));
        int seq = Math.min(a.getInt("seq"), model.config().maxPositions());
        TokenBlocks train, held;
        try (TextTokenizer tok = TextTokenizer.fromModelDir(modelDir)) {
            TokenBlocks all = LocalRun.blocks(a.require("data"), tok, seq, LocalRun.chatTemplate(a, modelDir));
            int k = a.getInt("eval-every-k");
            TokenBlocks[] split = all.size() >= k ? all.splitEvery(k) : new TokenBlocks[]{all, all};
            train = split[0];
            held = split[1];
        }
        AttachedAdapter adapter = AttachedAdapter.attach(model, "default", cfg, opts.seed());
        ParameterReport report = adapter.report();
        System.out.println(report);
        System.out.printf("data: %d training blocks, %d held-out blocks of %d tokens%n", train.size(), held.size(), seq);
        Evaluator.Result before = Evaluator.evaluate(model, held, opts.batchSize());
        io.sparklora.train.Optimizers.StateStorage storage = io.sparklora.train.Optimizers.StateStorage.parse(a.get("optimizer-state"),
                a.has("spill-dir") ? a.get("spill-dir") : null, "train --optimizer-state");
        io.sparklora.optim.AdamW optimizer = io.sparklora.train.Optimizers.forAdapter(adapter, opts, storage);
        Trainer trainer = new Trainer(model, optimizer, adapter.hooks(), opts);
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
        optimizer.close();       // mapped moment files are deleted here
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
