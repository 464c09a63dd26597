package io.sparklora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethods;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.data.ShardManifest;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import io.sparklora.train.BatchOrder;
import io.sparklora.train.Evaluator;
import io.sparklora.train.Optimizers;
import io.sparklora.train.Trainer;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The LoRA-family comparison: every registered adapter method, and full fine-tuning, trained on the same
 * labelled task (the demo's SpamAssassin slice, on the base the demo pretrains on the Bible) with the same
 * steps, batch and seed, then scored on the same held-out mail. Not a test: a measurement run by hand,
 * {@code bench/run-variants.sh} runs every row in its own JVM (so each peak RSS belongs to one method) and
 * writes the table into {@code docs/VARIANTS.md}.
 *
 * <pre>
 * subcommands:
 *   methods                                the rows to run, one per line: every registered method (names
 *                                          starting with test_ skipped), then "full"
 *   row --method M|full|base [options]     trains one row and appends its JSON line to --out
 *       --run runs/demo --dataset adapt    the pipeline run holding base/ and shards/&lt;dataset&gt;/
 *       --steps 150 --batch 8 --seed 42    the budget, the same for every row
 *       --lr 1e-2 --lr-warmup 10 --schedule cosine --clip 1.0 --wd 0
 *       --r 8 --alpha 16 --targets c_attn,c_proj,c_fc --option key=value (repeatable: the method's own settings)
 *       --untimed 5                        first steps left out of the step-time median (they still train)
 *       --eval-batch 16 --work bench/out/variants (adapters and models are written under it)
 *       --gc step|none                     step: System.gc() after every step, outside the timed region (see row())
 *       --check-accuracy true              also score one example and label per forward, and fail if that disagrees
 *       --quiet-wait S                     recorded only: how long the script let the row wait for idle CPUs
 *       --out bench/out/variants-runs.jsonl
 *   activations --d 768 --r 8 --batch 4 --seq 256 --out FILE
 *                                          LoRA vs LoRA-FA activation bytes kept per adapted layer (JSON)
 *   report --runs FILE --activations FILE --doc docs/VARIANTS.md --json bench/out/variants.json --command TEXT
 *                                          writes the table between the doc's comparison markers
 * </pre>
 *
 * <p>A row: the base is loaded from {@code base/} (a Hugging Face checkpoint); an adapter is built with
 * {@link AttachedAdapter#attach(TransformerLM, String, AdapterConfig, long)} and trained with
 * {@link Trainer#forAdapter} (its method's optimizer groups and hooks); full fine-tuning trains every weight
 * with {@link Optimizers#forAll}, as the pipeline's full_finetune stage does. The steps run as
 * {@link Trainer#train} runs them (one {@link BatchOrder} seeded by the seed), each one timed. Then the adapter
 * is saved with {@link PeftAdapterFormat#save} (full fine-tuning: the model with {@link HfModelDirectory#save})
 * and the validation loss and label accuracy are computed in this process ({@link VariantsTask}).
 */
public final class VariantsBenchmark {
    static final ObjectMapper JSON = new ObjectMapper();
    /** The rows that are not adapter methods. */
    static final String FULL = "full", BASE = "base";

    private VariantsBenchmark() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) throw new IllegalArgumentException("usage: VariantsBenchmark methods|row|activations|report [options]");
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        switch (args[0]) {
            case "methods" -> methods().forEach(System.out::println);
            case "row" -> row(new Options(rest));
            case "activations" -> activations(new Options(rest));
            case "report" -> VariantsReport.write(new Options(rest));
            case "rank-dp-report" -> RankDpReport.write(new Options(rest));
            case "adalora-report" -> AdaLoraReport.write(new Options(rest));
            default -> throw new IllegalArgumentException("unknown subcommand " + args[0]);
        }
    }

    /** Every registered method except test ones, then full fine-tuning. */
    static List<String> methods() {
        List<String> l = new ArrayList<>();
        for (String n : AdapterMethods.names()) if (!n.startsWith("test_")) l.add(n);
        l.add(FULL);
        return l;
    }

    /** --key value options; --option may repeat. */
    static final class Options {
        final Map<String, String> values = new LinkedHashMap<>();
        final List<String> methodOptions = new ArrayList<>();

        Options(String[] args) {
            for (int i = 0; i < args.length; i++) {
                if (!args[i].startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("expected --key value at " + args[i]);
                String k = args[i].substring(2), v = args[++i];
                if (k.equals("option")) methodOptions.add(v);
                else values.put(k, v);
            }
        }

        String get(String k, String def) { return values.getOrDefault(k, def); }
        int getInt(String k, int def) { return Integer.parseInt(get(k, String.valueOf(def))); }
        long getLong(String k, long def) { return Long.parseLong(get(k, String.valueOf(def))); }
        double getDouble(String k, double def) { return Double.parseDouble(get(k, String.valueOf(def))); }

        String require(String k) {
            String v = values.get(k);
            if (v == null) throw new IllegalArgumentException("--" + k + " is required");
            return v;
        }
    }

    // ---- one row --------------------------------------------------------------------------------

    static void row(Options o) throws IOException {
        String method = o.require("method");
        String label = o.get("label", method);      // the row's name (one method can have several rows: ranks, DP settings)
        Path runDir = Path.of(o.get("run", "runs/demo"));
        int steps = o.getInt("steps", 150), batch = o.getInt("batch", 8), untimed = o.getInt("untimed", 5);
        int evalBatch = o.getInt("eval-batch", 16);
        long seed = o.getLong("seed", 42);
        double lr = o.getDouble("lr", 1e-2);
        TrainingOptions opts = new TrainingOptions(steps, batch, 1, lr, o.getDouble("wd", 0.0), o.getInt("lr-warmup", 10),
                o.get("schedule", "cosine"), 0.0, o.getDouble("clip", 1.0), seed);
        Path work = Path.of(o.get("work", "bench/out/variants"));
        Path outFile = Path.of(o.get("out", "bench/out/variants-runs.jsonl"));

        long t0 = System.nanoTime();
        VariantsTask task = VariantsTask.load(runDir, o.get("dataset", "adapt"));
        TransformerLM model = task.loadBase();
        // --quantization nf4: the same base held in NF4 (QLoRA), quantized here as the executors quantize it on load
        io.sparklora.quant.BaseQuantization quant = io.sparklora.quant.BaseQuantization.parse(o.get("quantization", "none"),
                !o.get("double-quant", "true").equals("false"), "--quantization");
        if (quant.nf4()) {
            if (method.equals(FULL)) throw new IllegalArgumentException("full fine-tuning trains every weight; it cannot run over an NF4 base");
            model = io.sparklora.quant.QuantizedCheckpoints.quantize(model, quant.doubleQuant());
        }
        ObjectNode r = JSON.createObjectNode();
        r.put("base_quantization", quant.label());
        r.put("base_bytes_held", model.baseBytesHeld());
        r.put("method", method);
        r.put("label", label);
        r.put("date", java.time.LocalDate.now().toString());
        r.put("load_average_at_start", TrainStepBenchmark.loadAverage());
        r.put("quiet_wait_seconds", o.getInt("quiet-wait", 0));     // how long the script let the row wait for idle CPUs
        r.put("base", task.baseDir.toString()).put("dataset", task.manifest.dataset());
        r.put("base_params", model.baseParameterCount());
        r.set("model", model.config().toJson());
        r.put("train_documents", task.manifest.documents(ShardManifest.TRAIN));
        r.put("train_blocks", task.train.size()).put("validation_blocks", task.validation.size()).put("examples", task.examples.size());
        r.put("seq_len", task.train.seqLen());
        System.out.printf(Locale.ROOT, "%s: base %s (%,d parameters), %d train blocks, %d validation blocks, %d labelled examples%n",
                method, task.baseDir, model.baseParameterCount(), task.train.size(), task.validation.size(), task.examples.size());

        AttachedAdapter adapter = null;
        Trainer trainer = null;
        long trainable = 0;
        if (method.equals(FULL)) {
            model.setBaseTrainable(true);
            List<Parameter> params = model.parameters().values().stream().toList();
            AdamW opt = Optimizers.forAll(params, opts);
            trainer = new Trainer(model, opt, opts);
            trainable = params.stream().filter(Parameter::trainable).mapToLong(Parameter::size).sum();
        } else if (!method.equals(BASE)) {
            AdapterConfig cfg = AdapterConfig.of(method, o.getInt("r", 8), o.getDouble("alpha", 16), List.of(o.get("targets", "c_attn,c_proj,c_fc").split(",")));
            Map<String, String> extra = new LinkedHashMap<>();
            for (String kv : o.methodOptions) {
                int eq = kv.indexOf('=');
                if (eq < 0) throw new IllegalArgumentException("--option wants key=value, got " + kv);
                extra.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
            // an option another method has (e.g. a shared knob) is left out for methods without it
            Map<String, String> own = new LinkedHashMap<>();
            extra.forEach((k, v) -> {
                if (AdapterMethods.get(method).optionDefaults().containsKey(k) || AdapterConfig.COMMON_OPTIONS.containsKey(k)) own.put(k, v);
            });
            boolean labelRows = "labels".equals(own.get(AdapterConfig.TRAINABLE_TOKENS));
            if (labelRows) own.remove(AdapterConfig.TRAINABLE_TOKENS);
            cfg = cfg.withOptions(own);
            if (labelRows) cfg = cfg.withTrainableTokens(task.labelRowIds());   // the demo's: label prompt and label tokens
            adapter = AttachedAdapter.attach(model, "default", cfg, seed);
            trainer = Trainer.forAdapter(adapter, opts);
            trainable = adapter.trainableParameterCount();
            ObjectNode c = r.putObject("config");
            c.put("r", cfg.r()).put("alpha", cfg.alpha()).put("dropout", cfg.dropout()).put("init", cfg.init()).put("bias", cfg.bias());
            ArrayNode t = c.putArray("targets");
            cfg.targetModules().forEach(t::add);
            ObjectNode mo = c.putObject("options");
            for (String k : adapter.method().optionDefaults().keySet()) mo.put(k, cfg.option(k));
            r.put("adapted_layers", adapter.layers().size());
            r.put("frozen_adapter_params", adapter.adapterTensors().stream().filter(p -> !p.trainable()).mapToLong(Parameter::size).sum());
        }
        r.put("trainable_params", trainable);

        // ---- DP training: the distributed trainer's rounds in this process, two partitions (see InProcessRounds)
        io.sparklora.privacy.DpSpec dp = o.values.containsKey("dp-mode")
                ? new io.sparklora.privacy.DpSpec(o.get("dp-mode", "example"), o.getDouble("dp-clip", 1.0), o.getDouble("dp-sigma", 1.0),
                        o.getDouble("dp-q", (double) batch / task.train.size()), o.getDouble("dp-delta", 1e-5), 0, seed)
                : io.sparklora.privacy.DpSpec.OFF;
        if (dp.on() && adapter != null) {
            io.sparklora.train.TrainSpec spec = new io.sparklora.train.TrainSpec(null, adapter.config(), Map.of(), steps, 1, "gradients", false,
                    opts, 1.0, 0, null, dp);
            TokenBlocks[] halves = task.train.splitEvery(2);
            TransformerLM workerModel = TransformerLM.fromWeights(model.config(), model.stateDict());
            AttachedAdapter worker = AttachedAdapter.attach(workerModel, "default", adapter.config(), seed);
            long tt = System.nanoTime();
            io.sparklora.train.DistributedTrainer.Result res = io.sparklora.train.DistributedTrainer.run(adapter, spec,
                    new org.apache.hadoop.conf.Configuration(), new io.sparklora.train.InProcessRounds(worker, List.of(halves), spec), halves.length,
                    io.sparklora.train.MetricsLog.inMemory(), label, System.out, null);
            ObjectNode tr = r.putObject("training");
            tr.put("steps", steps).put("expected_batch", dp.sampleRate() * task.train.size()).put("seed", seed).put("lr", lr)
                    .put("seconds", TrainStepBenchmark.round((System.nanoTime() - tt) / 1e9, 2)).put("final_loss_last10", res.finalLoss());
            res.privacy().toJson(r.putObject("dp"));
            trainer = null;
        }

        // ---- training, every step timed
        if (trainer != null) {
            ObjectNode tr = r.putObject("training");
            tr.put("steps", steps).put("batch", batch).put("seed", seed).put("lr", lr).put("lr_warmup", opts.warmupSteps())
                    .put("schedule", opts.schedule()).put("max_grad_norm", opts.maxGradNorm()).put("weight_decay", opts.weightDecay())
                    .put("untimed_steps", untimed);
            Runtime rt = Runtime.getRuntime();
            tr.put("heap_max_mib", rt.maxMemory() >> 20);
            ArrayNode groups = tr.putArray("optimizer_groups");
            for (ParamGroup g : trainer.optimizer().groups()) {
                groups.addObject().put("name", g.name()).put("tensors", g.params().size())
                        .put("params", g.params().stream().mapToLong(Parameter::size).sum()).put("peak_lr", g.peakLr(lr))
                        .put("weight_decay", g.weightDecay());
            }
            BatchOrder order = new BatchOrder(task.train.size(), opts.seed());
            double[] stepMs = new double[steps];
            ArrayNode losses = tr.putArray("loss");
            boolean gcEveryStep = o.get("gc", "step").equals("step");
            double gcMs = 0;
            long tt = System.nanoTime();
            long[] cpu0 = TrainStepBenchmark.procSelfStat();
            double lastLossSum = 0;
            int lastCount = 0;
            for (int s = 0; s < steps; s++) {
                long a = System.nanoTime();
                Trainer.StepStats st = trainer.step(task.train, order);
                stepMs[s] = (System.nanoTime() - a) / 1e6;
                if (gcEveryStep) {
                    // outside the timed step: ND4J frees a buffer the engine did not release only when the JVM
                    // collects its owner, so without this the peak RSS measures GC timing, not the method
                    long g = System.nanoTime();
                    System.gc();
                    gcMs += (System.nanoTime() - g) / 1e6;
                }
                losses.add(TrainStepBenchmark.round(st.loss(), 4));
                if (s >= steps - 10) {
                    lastLossSum += st.loss();
                    lastCount++;
                }
                if ((s + 1) % 25 == 0 || s + 1 == steps) {
                    System.out.printf(Locale.ROOT, "%s step %d/%d loss %.4f grad norm %.3f (%.0f ms)%n", method, s + 1, steps, st.loss(), st.gradNorm(), stepMs[s]);
                }
            }
            tr.put("seconds", TrainStepBenchmark.round((System.nanoTime() - tt) / 1e9, 2));
            long[] cpu1 = TrainStepBenchmark.procSelfStat();
            if (cpu0 != null && cpu1 != null) {
                // process CPU time over the training steps: about 2 x wall on 2 quiet cores (ND4J runs every op on both)
                tr.put("cpu_seconds", TrainStepBenchmark.round((cpu1[1] + cpu1[2] - cpu0[1] - cpu0[2]) / TrainStepBenchmark.CLOCK_TICKS, 2));
            }
            tr.put("final_loss_last10", TrainStepBenchmark.round(lastLossSum / lastCount, 4));
            double[] timed = Arrays.copyOfRange(stepMs, Math.min(untimed, steps - 1), steps);
            tr.put("gc", gcEveryStep ? "System.gc() after every step, not timed" : "none").put("gc_ms_total", TrainStepBenchmark.round(gcMs, 1));
            tr.put("median_step_ms", TrainStepBenchmark.round(median(timed), 1));
            tr.put("min_step_ms", TrainStepBenchmark.round(Arrays.stream(timed).min().orElse(0), 1));
            tr.put("tokens_per_step", (long) batch * task.train.seqLen());
            ArrayNode sm = tr.putArray("step_ms");
            for (double v : stepMs) sm.add(TrainStepBenchmark.round(v, 1));
        }
        r.put("peak_rss_after_training_bytes", TrainStepBenchmark.procStatusBytes("VmHWM"));
        if (adapter != null) {
            Map<String, Integer> ranks = adapter.method().ranksInUse(adapter);     // a method that allocates ranks (AdaLoRA)
            if (!ranks.isEmpty()) {
                ObjectNode fr = r.putObject("final_ranks");
                ranks.forEach(fr::put);
                r.put("final_rank_total", ranks.values().stream().mapToInt(Integer::intValue).sum());
            }
        }

        // ---- the file that carries the result
        Path dir = work.resolve(label);
        deleteTree(dir);
        if (adapter != null) {
            Path ad = dir.resolve("adapter");
            PeftAdapterFormat.save(adapter, ad, task.baseDir.toString());
            r.put("file", PeftAdapterFormat.WEIGHTS_FILE).put("file_bytes", Files.size(ad.resolve(PeftAdapterFormat.WEIGHTS_FILE)));
        } else if (method.equals(FULL)) {
            model.setBaseTrainable(false);
            Path md = dir.resolve("model");
            HfModelDirectory.save(model, md, DataType.FLOAT, null);
            long bytes;
            try (Stream<Path> s = Files.list(md)) {
                bytes = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).mapToLong(p -> {
                    try { return Files.size(p); } catch (IOException e) { throw new java.io.UncheckedIOException(e); }
                }).sum();
            }
            r.put("file", "model.safetensors").put("file_bytes", bytes);
        }

        // ---- scoring on the held-out mail
        long te = System.nanoTime();
        Evaluator.Result v = task.validationLoss(model, evalBatch);
        long tl = System.nanoTime();
        VariantsTask.Accuracy acc = task.accuracy(model);
        r.put("eval_loss_seconds", TrainStepBenchmark.round((tl - te) / 1e9, 2));
        r.put("eval_accuracy_seconds", TrainStepBenchmark.round((System.nanoTime() - tl) / 1e9, 2));
        if (o.get("check-accuracy", "false").equals("true")) {
            VariantsTask.Accuracy ref = task.accuracyOneByOne(model);
            if (ref.correct() != acc.correct() || !Arrays.equals(ref.predicted(), acc.predicted())) {
                throw new IllegalStateException("batched scoring disagrees with one-by-one scoring: " + acc + " vs " + ref);
            }
            System.out.println("batched label scoring matches one-by-one scoring");
        }
        r.put("validation_loss", TrainStepBenchmark.round(v.loss(), 4)).put("validation_perplexity", TrainStepBenchmark.round(v.perplexity(), 2))
                .put("validation_tokens", v.tokens());
        r.put("accuracy", TrainStepBenchmark.round(acc.accuracy(), 4)).put("correct", acc.correct()).put("examples_scored", acc.total());
        ObjectNode pred = r.putObject("predicted");
        ObjectNode truth = r.putObject("label_counts");
        int[] counts = task.labelCounts();
        for (int i = 0; i < task.labelNames.size(); i++) {
            pred.put(task.labelNames.get(i), acc.predicted()[i]);
            truth.put(task.labelNames.get(i), counts[i]);
        }
        if (adapter != null && o.values.containsKey("eval-ranks")) {
            // one adapter trained for several ranks (DyLoRA): the loss and accuracy of each truncation
            ObjectNode byRank = r.putObject("by_rank");
            for (String b : o.get("eval-ranks", "").split(",")) {
                int rank = Integer.parseInt(b.trim());
                if (!adapter.method().useRank(adapter, rank)) throw new IllegalArgumentException(method + " cannot be used at rank " + rank);
                Evaluator.Result vr = task.validationLoss(model, evalBatch);
                VariantsTask.Accuracy ar = task.accuracy(model);
                byRank.putObject(Integer.toString(rank)).put("validation_loss", TrainStepBenchmark.round(vr.loss(), 4))
                        .put("accuracy", TrainStepBenchmark.round(ar.accuracy(), 4));
                System.out.printf(Locale.ROOT, "%s at rank %d: validation loss %.4f, accuracy %.3f%n", label, rank, vr.loss(), ar.accuracy());
            }
            adapter.method().useRank(adapter, adapter.config().r());
        }
        r.put("eval_seconds", TrainStepBenchmark.round((System.nanoTime() - te) / 1e9, 2));
        r.put("peak_rss_bytes", TrainStepBenchmark.procStatusBytes("VmHWM"));
        r.put("seconds", TrainStepBenchmark.round((System.nanoTime() - t0) / 1e9, 2));
        r.put("load_average_at_end", TrainStepBenchmark.loadAverage());
        r.put("processors", Runtime.getRuntime().availableProcessors());
        r.put("java", System.getProperty("java.version"));
        System.out.printf(Locale.ROOT, "%s: %,d trainable, median step %.0f ms, validation loss %.4f (ppl %.2f), accuracy %.3f (%d/%d, predicted %s), peak RSS %.2f GiB%n",
                method, trainable, trainer == null ? 0 : r.path("training").path("median_step_ms").asDouble(), v.loss(), v.perplexity(),
                acc.accuracy(), acc.correct(), acc.total(), pred, r.get("peak_rss_bytes").asLong() / TrainStepBenchmark.GIB);
        append(outFile, JSON.writeValueAsString(r));
    }

    // ---- activation bytes -----------------------------------------------------------------------

    static void activations(Options o) throws IOException {
        int d = o.getInt("d", 768), r = o.getInt("r", 8), batch = o.getInt("batch", 4), seq = o.getInt("seq", 256);
        long seed = o.getLong("seed", 42);
        ObjectNode out = JSON.createObjectNode();
        out.put("d", d).put("r", r).put("batch", batch).put("seq", seq).put("tokens", (long) batch * seq).put("dtype", "float32");
        ArrayNode rows = out.putArray("rows");
        for (double p : new double[]{0.0, 0.05}) {
            for (String m : List.of("lora", "lora_fa")) {
                ActivationBytes.Kept k = ActivationBytes.measure(m, d, r, batch, seq, p, seed);
                rows.add(k.toJson());
                System.out.printf(Locale.ROOT, "%-8s dropout %.2f: %,d bytes kept (layer x %,d; adapter %,d; %s)%n", m, p, k.distinctBytes(),
                        k.layerInputBytes(), k.activationBytesKept(), String.join("; ", k.arrays()));
            }
        }
        String line = JSON.writerWithDefaultPrettyPrinter().writeValueAsString(out);
        Path f = Path.of(o.get("out", "bench/out/variants-activations.json"));
        if (f.getParent() != null) Files.createDirectories(f.getParent());
        Files.writeString(f, line + "\n");
    }

    // ---- helpers --------------------------------------------------------------------------------

    static double median(double[] v) {
        double[] c = v.clone();
        Arrays.sort(c);
        return c.length == 0 ? Double.NaN : c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2;
    }

    static void append(Path p, String line) throws IOException {
        if (p.getParent() != null) Files.createDirectories(p.getParent());
        Files.writeString(p, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted((a, b) -> b.getNameCount() - a.getNameCount()).toList()) Files.delete(p);
        }
    }
}
