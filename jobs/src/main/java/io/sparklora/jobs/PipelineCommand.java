package io.sparklora.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.data.LocalCorpus;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import io.sparklora.tokenize.ByteLevelBpeTrainer;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.ProgressLine;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import io.sparklora.util.AtomicFiles;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code spark-lora pipeline}: the end-to-end demo on the corpora shipped in {@code datasets-manifests/demo}
 * (SpamAssassin, CC0), in one process. It learns a tokenizer, pretrains a small GPT-2-shaped base on spam,
 * adapts it to ham with LoRA, and compares base, adapted and merged perplexity on held-out ham.
 * The distributed Spark stages replace the training and evaluation steps as they land.
 */
final class PipelineCommand {
    static final String USAGE = "pipeline [--data-dir datasets-manifests/demo] [--out runs/demo] [--base-steps 150 --lora-steps 150 --seq 128]";
    private static final ObjectMapper JSON = new ObjectMapper();

    private PipelineCommand() {}

    static int run(String[] argv) throws Exception {
        Args a = new Args("pipeline", argv, Set.of("data-dir", "out", "base-steps", "lora-steps", "seq", "seed"), Set.of());
        Path dataDir = Path.of(a.get("data-dir", "datasets-manifests/demo"));
        Path out = Path.of(a.get("out", "runs/demo"));
        int seq = a.getInt("seq", 128);
        long seed = a.getInt("seed", 42);
        Path source = dataDir.resolve("spam-assassin-spam.jsonl"), target = dataDir.resolve("spam-assassin-ham.jsonl");
        for (Path p : List.of(source, target)) {
            if (!Files.isRegularFile(p)) throw new Args.UsageException("pipeline: demo corpus " + p + " not found (run from the repository root or pass --data-dir)");
        }
        Files.createDirectories(out);
        long t0 = System.nanoTime();
        ObjectNode report = JSON.createObjectNode();

        // 1. tokenizer learned from both corpora
        Path tokDir = out.resolve("tokenizer");
        Files.createDirectories(tokDir);
        ByteLevelBpeTrainer.train(texts(List.of(source, target)), 2048, tokDir.resolve("tokenizer.json"));
        TokenBlocks spam, hamTrain, hamHeld;
        try (TextTokenizer tok = TextTokenizer.fromFile(tokDir.resolve("tokenizer.json"))) {
            spam = LocalCorpus.read(List.of(source), tok, seq);
            TokenBlocks[] split = LocalCorpus.read(List.of(target), tok, seq).splitEvery(5);
            hamTrain = split[0];
            hamHeld = split[1];
            stage(report, "tokenize", t0).put("vocab_size", tok.vocabSize()).put("spam_blocks", spam.size())
                    .put("ham_train_blocks", hamTrain.size()).put("ham_heldout_blocks", hamHeld.size());
        }

        // 2. base model pretrained on spam (full training of every weight)
        long t1 = System.nanoTime();
        ModelConfig cfg = ModelConfig.gpt2(2048, 128, 2, 4, seq);
        TransformerLM model = TransformerLM.randomInit(cfg, seed);
        int baseSteps = a.getInt("base-steps", 150), loraSteps = a.getInt("lora-steps", 150);
        TrainingOptions baseOpts = TrainingOptions.defaults(baseSteps).withLr(3e-3).withBatch(8, 1)
                .withWarmup(Math.min(10, baseSteps / 10), "cosine").withSeed(seed);
        train("pretrain", model, model.parameters().values().stream().toList(), spam, baseOpts);
        Path baseDir = out.resolve("base");
        HfModelDirectory.save(model, baseDir, DataType.FLOAT, tokDir);
        stage(report, "pretrain_base", t1).put("params", model.baseParameterCount());

        // 3. LoRA on ham
        long t2 = System.nanoTime();
        Evaluator.Result base = Evaluator.evaluate(model, hamHeld, 8);
        AdapterConfig lora = AdapterConfig.lora(8, 16, List.of("c_attn", "c_proj", "c_fc"));
        AttachedAdapter adapter = AttachedAdapter.attach(model, "default", lora, seed);
        TrainingOptions loraOpts = TrainingOptions.defaults(loraSteps).withLr(3e-3).withBatch(8, 1)
                .withWarmup(Math.min(10, loraSteps / 10), "cosine").withSeed(seed);
        double tps = train("lora", model, adapter.trainableParameters(), hamTrain, loraOpts);
        PeftAdapterFormat.save(adapter, out.resolve("adapter"), baseDir.toAbsolutePath().toString());
        stage(report, "train_lora", t2).put("trainable_params", adapter.report().trainable())
                .put("total_params", adapter.report().all()).put("tokens_per_second", tps);

        // 4. evaluate base, adapted and merged on held-out ham
        long t3 = System.nanoTime();
        Evaluator.Result adapted = Evaluator.evaluate(model, hamHeld, 8);
        adapter.merge();
        Evaluator.Result merged = Evaluator.evaluate(model, hamHeld, 8);
        ObjectNode eval = stage(report, "evaluate", t3);
        for (var e : List.of(List.of("base", base), List.of("adapted", adapted), List.of("merged", merged))) {
            Evaluator.Result r = (Evaluator.Result) e.get(1);
            eval.putObject((String) e.get(0)).put("loss", r.loss()).put("perplexity", r.perplexity()).put("tokens", r.tokens());
        }
        report.put("seconds", (System.nanoTime() - t0) / 1e9);
        AtomicFiles.writeString(out.resolve("report.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(report));
        System.out.printf(Locale.ROOT, "held-out ham perplexity: base %.2f | adapted %.2f | merged %.2f%n",
                base.perplexity(), adapted.perplexity(), merged.perplexity());
        System.out.println("report: " + out.resolve("report.json"));
        return 0;
    }

    private static ObjectNode stage(ObjectNode report, String name, long startNanos) {
        return report.putObject(name).put("status", "done").put("seconds", (System.nanoTime() - startNanos) / 1e9);
    }

    /** Trains the given parameters; returns tokens per second. */
    private static double train(String label, TransformerLM model, List<io.sparklora.model.Parameter> params, TokenBlocks data, TrainingOptions opts) {
        AdamW opt = new AdamW(ParamGroup.byTag(params, opts.weightDecay()), opts.lr());
        ProgressLine progress = new ProgressLine(System.out, label + " step", opts.steps(), 5.0);
        long[] tokens = {0};
        long start = System.nanoTime();
        new Trainer(model, opt, opts).train(data, s -> {
            tokens[0] += s.tokens();
            progress.update(s.step(), s.loss(), tokens[0]);
        });
        return tokens[0] / ((System.nanoTime() - start) / 1e9);
    }

    private static List<String> texts(List<Path> jsonl) throws IOException {
        List<String> t = new ArrayList<>();
        for (Path p : jsonl) {
            for (String line : Files.readAllLines(p)) {
                if (!line.isBlank()) t.add(JSON.readTree(line).path("text").asText());
            }
        }
        return t;
    }
}
