package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.model.Linear;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.MultiAdapterTrainer;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import io.sparklora.util.AtomicFiles;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code spark-lora train-many --local}: trains several adapters over one base in one process, one batch and one
 * base forward/backward per step for all of them ({@link MultiAdapterTrainer}). The jobs file names each adapter's
 * data and method; every other setting defaults to the command line's. Each adapter gets its own directory under
 * {@code --out} (adapter/ in PEFT layout, metrics.jsonl, summary.json), and {@code summary.json} at the top lists
 * them all. A job that fails (bad data, a refused config, a diverging loss) fails alone: the others are written, and
 * the exit status is 1.
 */
final class TrainManyCommand {
    static final Args.Spec SPEC = new Args.Spec("train-many",
            "Trains several adapters over one base together, their sequences sharing each step's batch: in one Spark job, or with --local in this process.",
            Args.Option.flag("local", "train in this process without Spark"),
            Args.Option.value("master", "URL", "spark-submit's master, else local[*]", "Spark master (without --local)"),
            Args.Option.value("partitions", "N", "2", "without --local: shards per job whose data: files the driver reads (tasks per round)"),
            Args.Option.value("sync", "MODE", "gradients", "without --local: gradients (exact data parallelism) or parameters (K local steps, averaged)"),
            Args.Option.value("local-steps", "K", "1", "without --local: optimizer steps per task per round with --sync parameters"),
            Args.Option.value("checkpoint-every", "N", "0", "without --local: rounds between each adapter's checkpoints (0: none)"),
            Args.Option.required("model", "DIR", "Hugging Face base model directory"),
            Args.Option.required("jobs", "FILE", "YAML: jobs: [{name, data or shards, adapter, and optionally steps, batch, accum, lr, weight_decay, warmup, schedule, clip, seed}]"),
            Args.Option.required("out", "DIR", "output directory: one directory per adapter, and summary.json"),
            LocalRun.CHAT_TEMPLATE,
            Args.Option.value("steps", "N", "100", "optimizer steps (a job's own steps: wins)"),
            Args.Option.value("batch", "N", "4", "blocks per micro-batch, per adapter"),
            Args.Option.value("accum", "N", "1", "micro-batches accumulated per step"),
            Args.Option.value("seq", "N", "256", "tokens per block, the same for every job (capped at the model's n_positions)"),
            Args.Option.value("lr", "X", "2e-4", "peak learning rate"),
            Args.Option.value("weight-decay", "X", "0", "AdamW weight decay"),
            Args.Option.value("warmup", "N", "min(10, steps/10)", "warmup steps"),
            Args.Option.value("schedule", "NAME", "cosine", "learning-rate schedule after warmup: cosine, linear or constant"),
            Args.Option.value("clip", "X", "1.0", "gradient norm clip"),
            Args.Option.value("seed", "N", "42", "seed of each adapter's initialisation, data order and dropout"),
            Args.Option.value("eval-every-k", "K", "10", "every K-th block of each job's data is held out for its evaluation"),
            Args.Option.value("threads", "N", "every core", "with --local: engine threads (libnd4j and OpenBLAS); small models run faster on 1 (docs/BENCHMARKS.md, \"Threads per task\")"));
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(io.sparklora.util.SafeYaml.factory());
    static final Set<String> JOB_KEYS = Set.of("name", "data", "shards", "adapter", "steps", "batch", "accum", "lr", "weight_decay", "warmup",
            "schedule", "clip", "seed");

    private TrainManyCommand() {}

    /**
     * One entry of the jobs file, its settings resolved against the command line's. Its data is either {@code data}
     * (files the driver reads and tokenizes) or {@code shards} (a tokenize stage's Arrow shards, read by the executors).
     */
    record JobSpec(String name, String data, String shards, String adapter, TrainingOptions options) {}

    static int run(String[] argv) throws Exception {
        Args a = SPEC.parse(argv);
        Path modelDir = Path.of(a.require("model"));
        Path out = Path.of(a.require("out"));
        List<JobSpec> specs = readJobs(Path.of(a.require("jobs")), a);
        if (!a.flag("local")) return TrainManySpark.run(a, a.require("model"), a.require("out"), specs);
        for (JobSpec s : specs) {
            if (s.data() == null) throw new IllegalArgumentException("adapter '" + s.name() + "': shards are read by Spark executors; drop --local, or give data:");
        }
        if (a.has("threads")) io.sparklora.model.EngineThreads.set(a.getInt("threads"));
        TransformerLM model = io.sparklora.quant.QuantizedCheckpoints.load(modelDir, io.sparklora.quant.BaseQuantization.parse("none", true, "train-many"));
        int seq = Math.min(a.getInt("seq"), model.config().maxPositions());
        List<MultiAdapterTrainer.Job> jobs = new ArrayList<>();
        Map<String, TokenBlocks> held = new HashMap<>();
        Map<String, String> failedEarly = new LinkedHashMap<>();
        try (TextTokenizer tok = TextTokenizer.fromModelDir(modelDir)) {
            var chat = LocalRun.chatTemplate(a, modelDir);
            for (JobSpec s : specs) {
                // a job whose data or adapter cannot be read fails alone, as one whose data is bad does in training
                try {
                    AdapterConfig cfg = AdapterSpecs.parse(s.adapter(), model.config().architecture());
                    TokenBlocks all = LocalRun.blocks(s.data(), tok, seq, chat);
                    int k = a.getInt("eval-every-k");
                    TokenBlocks[] split = all.size() >= k ? all.splitEvery(k) : new TokenBlocks[]{all, all};
                    held.put(s.name(), split[1]);
                    jobs.add(new MultiAdapterTrainer.Job(s.name(), cfg, s.options(), split[0]));
                } catch (RuntimeException | IOException e) {
                    failedEarly.put(s.name(), "adapter '" + s.name() + "': " + e.getMessage());
                }
            }
        }
        Map<String, Double> before = new HashMap<>();
        for (MultiAdapterTrainer.Job j : jobs) {
            if (held.get(j.name()).size() > 0) before.put(j.name(), Evaluator.evaluate(model, held.get(j.name()), j.options().batchSize()).loss());
        }
        Files.createDirectories(out);
        Map<String, BufferedWriter> metrics = new LinkedHashMap<>();
        Map<String, long[]> tokens = new HashMap<>();
        long t0 = System.nanoTime();
        Map<String, MultiAdapterTrainer.Outcome> outcomes;
        try {
            for (MultiAdapterTrainer.Job j : jobs) {
                Files.createDirectories(out.resolve(j.name()));
                metrics.put(j.name(), Files.newBufferedWriter(out.resolve(j.name()).resolve("metrics.jsonl.tmp"), StandardCharsets.UTF_8));
                tokens.put(j.name(), new long[1]);
            }
            outcomes = jobs.isEmpty() ? Map.of() : new MultiAdapterTrainer(model, jobs).train((name, s) -> {
                long[] tk = tokens.get(name);
                tk[0] += s.tokens();
                ObjectNode line = JSON.createObjectNode().put("adapter", name).put("step", s.step()).put("loss", s.loss())
                        .put("grad_norm", s.gradNorm()).put("lr_factor", s.lrFactor()).put("tokens", tk[0])
                        .put("seconds", (System.nanoTime() - t0) / 1e9);
                try {
                    metrics.get(name).write(line.toString());
                    metrics.get(name).newLine();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                if (s.step() % 10 == 0 || s.step() == 1) System.out.printf("%s step %d  loss %.4f%n", name, s.step(), s.loss());
            });
        } finally {
            for (BufferedWriter w : metrics.values()) w.close();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        ObjectNode summary = JSON.createObjectNode();
        ArrayNode list = summary.putArray("adapters");
        List<String> failures = new ArrayList<>(failedEarly.values());
        long allTokens = 0;
        for (JobSpec s : specs) {
            ObjectNode e = list.addObject().put("name", s.name());
            MultiAdapterTrainer.Outcome o = outcomes.get(s.name());
            Path dir = out.resolve(s.name());
            if (o == null || !o.succeeded()) {
                String why = o == null ? failedEarly.get(s.name()) : o.error();
                e.put("status", "failed").put("error", why);
                if (o != null) failures.add(why);
                Files.deleteIfExists(dir.resolve("metrics.jsonl.tmp"));
                try {
                    Files.deleteIfExists(dir);       // only when this run's metrics file was all it held
                } catch (java.nio.file.DirectoryNotEmptyException keep) {
                    // an earlier run's files: left as they were
                }
                continue;
            }
            Files.move(dir.resolve("metrics.jsonl.tmp"), dir.resolve("metrics.jsonl"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            for (Linear l : model.allLinears()) l.setActive(List.of(s.name()));
            TokenBlocks h = held.get(s.name());
            Double after = h.size() > 0 ? Evaluator.evaluate(model, h, s.options().batchSize()).loss() : null;
            PeftAdapterFormat.save(o.adapter(), dir.resolve("adapter"), modelDir.toAbsolutePath().toString());
            allTokens += tokens.get(s.name())[0];
            e.put("status", "trained").put("steps", o.steps().size()).put("final_loss", o.finalLoss())
                    .put("trainable_params", o.adapter().trainableParameterCount()).put("method", o.adapter().config().method())
                    .put("tokens", tokens.get(s.name())[0]);
            if (before.containsKey(s.name())) e.put("eval_loss_before", before.get(s.name()));
            if (after != null) e.put("eval_loss_after", after);
            AtomicFiles.writeString(dir.resolve("summary.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(e));
            System.out.printf("%s: %d steps, loss %.4f%s; adapter written to %s%n", s.name(), o.steps().size(), o.finalLoss(),
                    after == null ? "" : String.format(java.util.Locale.ROOT, ", held-out loss %.4f -> %.4f", before.get(s.name()), after),
                    dir.resolve("adapter"));
        }
        summary.put("seconds", seconds).put("tokens_per_second", allTokens / seconds);
        AtomicFiles.writeString(out.resolve("summary.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(summary));
        return exitStatus(failures, specs.size());
    }

    /** 0 when no job failed; otherwise 1, after naming each failure on stderr (both forms of the command end here). */
    static int exitStatus(List<String> failures, int jobs) {
        if (failures.isEmpty()) return 0;
        System.err.println("spark-lora train-many: " + failures.size() + " of " + jobs + " adapters failed; the others are written:");
        for (String f : failures) System.err.println("  " + io.sparklora.util.Redaction.userInfo(f));
        return 1;
    }

    /** The jobs file: every job needs name, data and adapter; unknown keys are errors that name the job and the key. */
    static List<JobSpec> readJobs(Path file, Args a) throws IOException {
        JsonNode root;
        try {
            root = io.sparklora.util.SafeYaml.readTree(YAML, Files.readAllBytes(file));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": not readable YAML: " + e.getMessage());
        }
        if (root == null || !root.path("jobs").isArray() || root.path("jobs").isEmpty()) {
            throw new IllegalArgumentException(file + ": needs a non-empty list under 'jobs:'");
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!k.equals("jobs")) throw new IllegalArgumentException(file + ": unknown key '" + k + "' (known: jobs)");
        }
        List<JobSpec> specs = new ArrayList<>();
        Set<String> names = new java.util.HashSet<>();
        int i = 0;
        for (JsonNode j : root.path("jobs")) {
            String where = file + ": jobs[" + i++ + "]";
            if (!j.isObject()) throw new IllegalArgumentException(where + ": each job is a mapping with name, data and adapter");
            for (Iterator<String> it = j.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!JOB_KEYS.contains(k)) throw new IllegalArgumentException(where + ": unknown key '" + k + "' (known: " + new java.util.TreeSet<>(JOB_KEYS) + ")");
            }
            for (String k : List.of("name", "adapter")) {
                if (!j.path(k).isTextual() || j.path(k).asText().isBlank()) throw new IllegalArgumentException(where + ": '" + k + "' is required (a string)");
            }
            if (j.has("data") == j.has("shards")) throw new IllegalArgumentException(where + ": give one of 'data' (files) and 'shards' (a tokenize stage's output)");
            String source = j.has("data") ? "data" : "shards";
            if (!j.path(source).isTextual() || j.path(source).asText().isBlank()) throw new IllegalArgumentException(where + ": '" + source + "' must be a string");
            String name = j.path("name").asText();
            if (!names.add(name)) throw new IllegalArgumentException(where + ": a second job named '" + name + "'");
            int steps = intOf(j, "steps", a.getInt("steps"), where);
            int warmup = intOf(j, "warmup", a.has("warmup") ? a.getInt("warmup") : Math.min(10, steps / 10), where);
            TrainingOptions o;
            try {
                MultiAdapterTrainer.Job.checkName(name);
                o = new TrainingOptions(steps, intOf(j, "batch", a.getInt("batch"), where), intOf(j, "accum", a.getInt("accum"), where),
                    doubleOf(j, "lr", a.getDouble("lr"), where), doubleOf(j, "weight_decay", a.getDouble("weight-decay"), where), warmup,
                    j.has("schedule") ? j.get("schedule").asText() : a.get("schedule"), 0.0, doubleOf(j, "clip", a.getDouble("clip"), where),
                    intOf(j, "seed", a.getInt("seed"), where));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage());
            }
            specs.add(new JobSpec(name, j.has("data") ? j.get("data").asText() : null, j.has("shards") ? j.get("shards").asText() : null,
                    j.path("adapter").asText(), o));
        }
        return specs;
    }

    private static int intOf(JsonNode j, String key, int dflt, String where) {
        if (!j.has(key)) return dflt;
        if (!j.get(key).canConvertToInt() || !j.get(key).isIntegralNumber()) throw new IllegalArgumentException(where + ": '" + key + "' must be an integer, got " + j.get(key));
        return j.get(key).asInt();
    }

    private static double doubleOf(JsonNode j, String key, double dflt, String where) {
        if (!j.has(key)) return dflt;
        if (!j.get(key).isNumber()) throw new IllegalArgumentException(where + ": '" + key + "' must be a number, got " + j.get(key));
        return j.get(key).asDouble();
    }
}
