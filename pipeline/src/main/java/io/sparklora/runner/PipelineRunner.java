package io.sparklora.runner;

import io.sparklora.spark.ArrowShards;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.StageErrors;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.spark.drop.LoraDropStage;
import io.sparklora.spark.glora.GloraSearchStage;
import io.sparklora.spark.evaluate.ArrowExamples;
import io.sparklora.spark.evaluate.EvalTarget;
import io.sparklora.spark.evaluate.EvaluateStage;
import io.sparklora.spark.tokenize.TokenizeSpec;
import io.sparklora.spark.tokenize.TokenizeStage;
import io.sparklora.spark.train.MultiTrainStage;
import io.sparklora.spark.train.TrainStage;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TrainCheckpoint;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.adapters.glora.GloraMethod;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.CorpusReader;
import io.sparklora.data.DatasetManifest;
import io.sparklora.data.ShardManifest;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import io.sparklora.report.ReportHtml;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.tokenize.ByteLevelBpeTrainer;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Generator;
import io.sparklora.train.ProgressLine;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import io.sparklora.util.Redaction;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Runs a pipeline config's stages in order: tokenizer → tokenize → pretrain → glora_search → train → lora_drop →
 * full_finetune → evaluate, then writes {@code report.json} and {@code report.html}.
 *
 * <p>Each stage records its result in {@code <out>/stages/<stage>/result.json} followed by a
 * {@code _SUCCESS} marker; a rerun skips every stage that has both, so a scheduler can retry a failed run
 * and only the unfinished work is done again. Stages read what earlier stages wrote from storage, never
 * from memory, which is what makes skipping safe.
 *
 * <p>With {@code jobs:} ({@link PipelineConfig.JobSection}) train trains every job in one {@link MultiTrainStage}
 * (adapters to {@code adapters/<name>/}, each job's checkpoints, metrics and result under {@code jobs/<name>/}) and
 * evaluate scores them all in one mixed-adapter pass. A job that fails (its dataset, its training) fails alone: the
 * stage records why under {@code failed_jobs}, is marked {@code partial} and not complete, the others go on, and the
 * run fails at its end naming every failed job; a rerun trains only the jobs without their own {@code _SUCCESS}.
 *
 * <p>Nothing it prints or writes carries a secret of the Spark or Hadoop configuration, or a URI's user-info: the
 * console lines, result.json, report.json and report.html pass through {@link Redaction}.
 */
public final class PipelineRunner {
    public static final List<String> STAGES = List.of("tokenizer", "tokenize", "pretrain", "glora_search", "train", "lora_drop",
            "full_finetune", "evaluate");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final JavaSparkContext sc;
    private final PipelineConfig cfg;
    private final Configuration conf;
    private final String out;
    private final PrintStream console;
    private final MetricsLog metrics;
    private final ObjectNode report = JSON.createObjectNode();
    private final Redaction redaction;
    /** With jobs: the jobs that failed so far and why, in the order they failed (the run fails at its end if any did). */
    private final Map<String, String> failedJobs = new LinkedHashMap<>();
    /** A stage's result field naming the jobs it could not do (jobs: only); such a stage is partial, not complete. */
    static final String FAILED_JOBS = "failed_jobs";

    public PipelineRunner(JavaSparkContext sc, PipelineConfig cfg, PrintStream console) {
        this.sc = sc;
        this.cfg = cfg;
        this.conf = sc.hadoopConfiguration();
        this.out = HadoopFiles.path(cfg.output).toString();
        this.redaction = Redaction.of(sc.getConf(), conf);
        this.console = redaction.wrap(console);
        this.metrics = new MetricsLog(conf, uri("metrics.jsonl"));
    }

    private String uri(String child) { return HadoopFiles.resolve(out, child); }
    private String stageDir(String stage) { return uri("stages/" + stage); }

    /** Runs the selected stages (all when {@code only} is empty) and returns the report. */
    public ObjectNode run(Set<String> only) throws IOException {
        for (String s : only) if (!STAGES.contains(s)) throw new IllegalArgumentException("unknown stage '" + s + "'; stages: " + STAGES);
        try (OutputLock lock = OutputLock.acquire(conf, out, console)) {
            return runLocked(only);
        }
    }

    private ObjectNode runLocked(Set<String> only) throws IOException {
        long t0 = System.nanoTime();
        report.put("name", cfg.name).put("output", out);
        report.putObject("spark").put("master", sc.master()).put("default_parallelism", sc.defaultParallelism());
        if (HadoopFiles.exists(conf, uri("report.json"))) {
            // keep earlier stages' figures when only some stages run now
            JsonNode old = JSON.readTree(HadoopFiles.readString(conf, uri("report.json")));
            old.fields().forEachRemaining(e -> { if (!report.has(e.getKey())) report.set(e.getKey(), e.getValue()); });
        }
        Exception failure = null;
        try {
            for (String s : STAGES) {
                if (!only.isEmpty() && !only.contains(s)) continue;
                if (!enabled(s)) continue;
                runStage(s);
            }
            if (!failedJobs.isEmpty()) {
                report.put("status", "partial").put("error", failedJobs.size() + " of " + cfg.jobs.size() + " jobs failed: "
                        + String.join("; ", failedJobs.values()));
                throw new StageFailedException("jobs", new IllegalStateException(failedJobs.size() + " of " + cfg.jobs.size()
                        + " jobs failed (the others are trained, evaluated and reported; a rerun retries the failed ones): "
                        + String.join("; ", failedJobs.values())), redaction);
            }
        } catch (IOException | RuntimeException e) {
            failure = e;
            throw e;
        } finally {
            report.put("seconds", (System.nanoTime() - t0) / 1e9);
            try {
                writeReport();
            } catch (IOException | RuntimeException e) {
                // a full disk fails the report too: the stage's own error is the one to report
                if (failure == null) throw e;
                failure.addSuppressed(e);
            }
        }
        return report;
    }

    private boolean enabled(String stage) {
        return switch (stage) {
            case "pretrain" -> cfg.base.path == null;
            case "glora_search" -> cfg.gloraSearch.enabled;
            case "lora_drop" -> cfg.loraDrop.enabled;
            case "full_finetune" -> cfg.fullFinetune.enabled;
            default -> true;
        };
    }

    private static String reportKey(String stage) { return stage.equals("evaluate") ? "eval" : stage; }

    private void runStage(String stage) throws IOException {
        String dir = stageDir(stage);
        String resultUri = HadoopFiles.resolve(dir, "result.json");
        if (HadoopFiles.isComplete(conf, dir) && HadoopFiles.exists(conf, resultUri)) {
            ObjectNode r = (ObjectNode) JSON.readTree(HadoopFiles.readString(conf, resultUri));
            r.put("status", "skipped");
            report.set(reportKey(stage), r);
            console.printf(Locale.ROOT, "[%s] already complete in %s: skipped%n", stage, dir);
            return;
        }
        console.printf(Locale.ROOT, "[%s] running%n", stage);
        long t = System.nanoTime();
        ObjectNode r = JSON.createObjectNode();
        try {
            switch (stage) {
                case "tokenizer" -> tokenizer(r);
                case "tokenize" -> tokenize(r);
                case "pretrain" -> pretrain(r);
                case "glora_search" -> gloraSearch(r);
                case "train" -> { if (cfg.hasJobs()) trainJobs(r); else train(r); }
                case "lora_drop" -> loraDrop(r);
                case "full_finetune" -> fullFinetune(r);
                case "evaluate" -> { if (cfg.hasJobs()) evaluateJobs(r); else evaluate(r); }
                default -> throw new IllegalStateException(stage);
            }
        } catch (Exception e) {
            Throwable o = StageErrors.original(e);
            ObjectNode failed = JSON.createObjectNode().put("status", "failed").put("seconds", (System.nanoTime() - t) / 1e9)
                    .put("error", String.valueOf(o.getMessage()));
            report.set(reportKey(stage), failed);
            throw new StageFailedException(stage, o, redaction);
        }
        // some jobs failed (jobs: only): the stage's figures are written, but it is not marked complete, so that a rerun
        // does it again for them; the run goes on with the other jobs and fails at the end
        boolean partial = r.path(FAILED_JOBS).size() > 0;
        ObjectNode full = JSON.createObjectNode().put("status", partial ? "partial" : "done").put("seconds", (System.nanoTime() - t) / 1e9);
        full.setAll(r);
        if (partial) r.path(FAILED_JOBS).fields().forEachRemaining(e -> failedJobs.putIfAbsent(e.getKey(), e.getValue().asText()));
        try {
            HadoopFiles.writeString(conf, resultUri, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(redaction.scrub(full)));
            if (!partial) HadoopFiles.markSuccess(conf, dir);
        } catch (IOException e) {
            // not marked complete: a rerun does the stage again
            report.set(reportKey(stage), JSON.createObjectNode().put("status", "failed").put("error", redaction.scrub(String.valueOf(e.getMessage()))));
            throw new StageFailedException(stage, e);
        }
        report.set(reportKey(stage), full);
        writeReport();
        console.printf(Locale.ROOT, "[%s] %s in %.1f s%n", stage, partial ? "partly done (" + r.path(FAILED_JOBS).size() + " job(s) failed)" : "done",
                full.path("seconds").asDouble());
    }

    /** A stage failed; the message is the original error's, with the stage named. */
    public static final class StageFailedException extends RuntimeException {
        public StageFailedException(String stage, Throwable cause) {
            this(stage, cause, Redaction.none());
        }

        /**
         * The message with {@code redaction}'s secrets and any URI user-info replaced; where the cause chain quotes one,
         * the cause is a scrubbed copy ({@link Redaction#scrub(Throwable)}), so a logged stack trace cannot leak it.
         */
        StageFailedException(String stage, Throwable cause, Redaction redaction) {
            super(stage + ": " + redaction.scrub(String.valueOf(cause.getMessage())), redaction.scrub(cause));
        }
    }

    // ---- stages ---------------------------------------------------------------------------------

    /** The tokenizer: the configured one, else the given base model's, else one this run learns. */
    private String tokenizerUri() {
        if (cfg.tokenizer.path == null && cfg.base.path != null) return HadoopFiles.resolve(cfg.base.path, "tokenizer.json");
        if (cfg.tokenizer.path == null) return uri("tokenizer/tokenizer.json");
        return cfg.tokenizer.path.endsWith(".json") ? HadoopFiles.path(cfg.tokenizer.path).toString()
                : HadoopFiles.resolve(cfg.tokenizer.path, "tokenizer.json");
    }

    private void tokenizer(ObjectNode r) throws IOException {
        if (cfg.tokenizer.path == null && cfg.base.path == null) {
            // learn a byte-level BPE on the driver from every dataset the run uses
            List<String> texts = new java.util.ArrayList<>();
            for (String ds : datasets().values()) {
                try (var s = CorpusReader.trainingTexts(conf, DatasetManifest.read(conf, ds), cfg.data.maxLineBytes)) {
                    s.forEach(texts::add);
                }
            }
            Path local = Files.createTempDirectory("spark-lora-tok-");
            try {
                ByteLevelBpeTrainer.train(texts, cfg.tokenizer.vocabSize, local.resolve("tokenizer.json"));
                byte[] bytes = Files.readAllBytes(local.resolve("tokenizer.json"));
                HadoopFiles.write(conf, tokenizerUri(), o -> o.write(bytes));
            } finally {
                HadoopFiles.deleteLocalTree(local);
            }
            r.put("learned_from_documents", texts.size());
        }
        TextTokenizer tok = TokenizerCache.load(conf, tokenizerUri());
        r.put("path", tokenizerUri()).put("fingerprint", tok.fingerprint()).put("vocab_size", tok.vocabSize());
    }

    /**
     * Every dataset the run tokenizes, by the key its shards are stored under ({@code shards/<key>}): {@code adapt}
     * (unless jobs: leaves it unused), {@code pretrain} when the base is pretrained here, and each job's dataset that
     * differs from adapt by manifest or objective, once ({@code job-<first job using it>}).
     */
    private Map<String, String> datasets() {
        Map<String, String> d = new LinkedHashMap<>();
        if (adaptUsed()) d.put("adapt", cfg.datasets.adapt);
        if (cfg.base.path == null && cfg.datasets.pretrain != null) d.put("pretrain", cfg.datasets.pretrain);
        if (cfg.hasJobs()) for (PipelineConfig.JobSection j : cfg.jobs) d.putIfAbsent(dataKey(j), j.dataset(cfg));
        return d;
    }

    private boolean adaptUsed() {
        return !cfg.hasJobs() || cfg.fullFinetune.enabled || cfg.jobs.stream().anyMatch(j -> dataKey(j).equals("adapt"));
    }

    /** The shards key of a job's dataset: adapt when it is datasets.adapt with data.objective, else that of the first job with its dataset and objective. */
    private String dataKey(PipelineConfig.JobSection job) {
        if (job.dataset(cfg).equals(cfg.datasets.adapt) && job.objective(cfg) == cfg.data.objective()) return "adapt";
        for (PipelineConfig.JobSection j : cfg.jobs) {
            if (j.dataset(cfg).equals(job.dataset(cfg)) && j.objective(cfg) == job.objective(cfg)) return "job-" + j.name;
        }
        throw new IllegalStateException(job.name);
    }

    /** What the dataset under {@code key} trains on. */
    private io.sparklora.data.TrainingObjective objective(String key) {
        if (key.equals("adapt")) return cfg.data.objective();
        if (key.equals("pretrain")) return io.sparklora.data.TrainingObjective.LANGUAGE_MODEL;
        for (PipelineConfig.JobSection j : cfg.jobs) if (key.equals("job-" + j.name)) return j.objective(cfg);
        throw new IllegalStateException(key);
    }

    private String shardsUri(String key) { return uri("shards/" + key); }

    private void tokenize(ObjectNode r) throws IOException {
        long rows = 0, tokens = 0;
        ObjectNode failedJobs = JSON.createObjectNode();
        for (var e : datasets().entrySet()) {
            TokenizeSpec spec = new TokenizeSpec(e.getValue(), tokenizerUri(), cfg.data.seqLen, cfg.data.validationFraction,
                    cfg.data.partitions, shardsUri(e.getKey()), cfg.data.maxLineBytes, cfg.data.seed, objective(e.getKey()));
            ShardManifest m;
            try {
                m = TokenizeStage.run(sc, spec);
            } catch (IOException | RuntimeException ex) {
                // with jobs, a dataset only jobs use fails those jobs alone; pretrain's, or adapt's for full_finetune, fails the run
                List<String> users = cfg.hasJobs() ? cfg.jobs.stream().filter(j -> dataKey(j).equals(e.getKey())).map(j -> j.name).toList() : List.of();
                if (users.isEmpty() || e.getKey().equals("pretrain") || (e.getKey().equals("adapt") && cfg.fullFinetune.enabled)) throw ex;
                String why = "dataset " + e.getValue() + " could not be tokenized: " + StageErrors.original(ex).getMessage();
                r.putObject(e.getKey()).put("dataset", e.getValue()).put("status", "failed").put("error", why);
                for (String u : users) failedJobs.put(u, "job '" + u + "': " + why);
                console.printf(Locale.ROOT, "tokenize: %s; job(s) %s will fail, the others go on%n", why, users);
                continue;
            }
            ObjectNode d = r.putObject(e.getKey());
            d.put("dataset", m.dataset()).put("train_rows", m.rows(ShardManifest.TRAIN)).put("validation_rows", m.rows(ShardManifest.VALIDATION))
                    .put("train_documents", m.documents(ShardManifest.TRAIN)).put("validation_documents", m.documents(ShardManifest.VALIDATION))
                    .put("labels", m.labels().size()).put("objective", m.objective()).put("shards", m.split(ShardManifest.TRAIN).size()).put("uri", shardsUri(e.getKey()));
            rows += m.rows(ShardManifest.TRAIN) + m.rows(ShardManifest.VALIDATION);
            for (String split : m.splits().keySet()) for (var s : m.split(split)) tokens += s.tokens();
        }
        r.put("rows", rows).put("tokens", tokens).put("seq_len", cfg.data.seqLen).put("partitions", cfg.data.partitions);
        if (!failedJobs.isEmpty()) r.set(FAILED_JOBS, failedJobs);
    }

    private ShardManifest manifest(String key) throws IOException {
        ShardManifest m = ShardManifest.read(conf, shardsUri(key));
        m.checkTokenizer(TokenizerCache.load(conf, tokenizerUri()).fingerprint());
        return m;
    }

    /** The base as the adapter stages hold it: full precision, or NF4 when base.quantization says so (QLoRA). */
    private BaseModelRef baseRef() throws IOException {
        return BaseModelRef.of(conf, baseUri()).withQuantization(cfg.baseQuantization());
    }

    private String baseUri() { return cfg.base.path != null ? HadoopFiles.path(cfg.base.path).toString() : uri("base"); }

    private void pretrain(ObjectNode r) throws IOException {
        ShardManifest m = manifest("pretrain");
        TokenBlocks data = ArrowShardReader.readSplit(conf, shardsUri("pretrain"), m, ShardManifest.TRAIN);
        var p = cfg.base.pretrain;
        ModelConfig mc = ModelConfig.gpt2(m.vocabSize(), p.dModel, p.layers, p.heads, cfg.data.seqLen);
        TransformerLM model = TransformerLM.randomInit(mc, cfg.train.seed);
        TrainingOptions o = TrainingOptions.defaults(p.steps).withLr(p.lr).withBatch(p.batchSize, 1)
                .withWarmup(Math.min(10, p.steps / 10), "cosine").withSeed(cfg.train.seed);
        double loss = fullTraining("pretrain", model, data, o);
        saveModel(model, baseUri());
        r.put("params", model.baseParameterCount()).put("steps", p.steps).put("final_loss", loss).put("path", baseUri())
                .put("blocks", data.size());
    }

    /** CPU threads of the driver's one-process stages: {@code engine.threads}, else what a Spark task gets. */
    private int driverThreads() {
        if (cfg.engine.threads != null) return cfg.engine.threads;
        return Math.max(1, Integer.parseInt(sc.getConf().get("spark.task.cpus", "1").strip()));
    }

    /** One-process training of every weight (pretraining a small base, or the full fine-tuning baseline). */
    private double fullTraining(String stage, TransformerLM model, TokenBlocks data, TrainingOptions o) {
        return fullTraining(stage, model, data, o, io.sparklora.train.Optimizers.StateStorage.MEMORY);
    }

    private double fullTraining(String stage, TransformerLM model, TokenBlocks data, TrainingOptions o,
                                io.sparklora.train.Optimizers.StateStorage storage) {
        model.setBaseTrainable(true);
        List<Parameter> params = model.parameters().values().stream().toList();
        try (AdamW opt = io.sparklora.train.Optimizers.forAll(params, o, storage)) {
            return fullTraining(stage, model, data, o, opt);
        }
    }

    private double fullTraining(String stage, TransformerLM model, TokenBlocks data, TrainingOptions o, AdamW opt) {
        io.sparklora.model.EngineThreads.set(driverThreads());
        ProgressLine progress = new ProgressLine(console, stage + " step", o.steps(), 5.0);
        metrics.removeIf(l -> l.path("stage").asText().equals(stage));
        long[] tokens = {0};
        double[] last = {Double.NaN};
        long t0 = System.nanoTime();
        new Trainer(model, opt, o).train(data, s -> {
            tokens[0] += s.tokens();
            last[0] = s.loss();
            progress.update(s.step(), s.loss(), tokens[0]);
            if (s.step() % 5 == 0 || s.step() == o.steps()) {
                metrics.append(metrics.line(stage).put("step", s.step()).put("loss", s.loss()).put("lr_factor", s.lrFactor())
                        .put("elapsed_s", (System.nanoTime() - t0) / 1e9));
            }
        });
        model.setBaseTrainable(false);
        return last[0];
    }

    /**
     * Saves a model of this run as a Hugging Face directory: its config.json as loaded (or generated, for a
     * base pretrained here), the base's companion files (generation config, chat template, ...) and the run's
     * tokenizer.
     */
    private void saveModel(TransformerLM model, String target) throws IOException {
        Path companions = java.nio.file.Files.createTempDirectory("spark-lora-companions-");
        try {
            String base = baseUri();
            if (!base.equals(target)) HfModelDirectory.fetchCompanions(conf, base, companions);
            java.nio.file.Files.copy(localTokenizerPath(), companions.resolve("tokenizer.json"),
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            HadoopFiles.writeDirectoryFromLocal(conf, target, local -> HfModelDirectory.save(model, local, DataType.FLOAT, companions));
        } finally {
            HadoopFiles.deleteLocalTree(companions);
        }
    }

    private AdapterConfig resolvedAdapter;
    private String searchedStructures;

    /**
     * The adapter config that train and evaluate use: the configured one ({@link #configuredAdapter}) with, when
     * {@code glora_search} is enabled, the per-layer structures the search chose (read from its result.json, so a
     * rerun that skips the search uses the same choice).
     */
    private AdapterConfig adapterConfig() {
        AdapterConfig c = configuredAdapter();
        if (!cfg.gloraSearch.enabled) return c;
        if (searchedStructures == null) {
            String dir = stageDir("glora_search"), result = HadoopFiles.resolve(dir, "result.json");
            try {
                if (!HadoopFiles.isComplete(conf, dir) || !HadoopFiles.exists(conf, result)) {
                    throw new IllegalStateException("glora_search is enabled but has not completed in " + dir
                            + ": run it first (the pipeline runs it before train)");
                }
                JsonNode r = JSON.readTree(HadoopFiles.readString(conf, result));
                if (!r.path("layer_structures").isTextual()) throw new IllegalStateException(result + " has no layer_structures");
                searchedStructures = r.get("layer_structures").asText();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e.getMessage(), e);
            }
        }
        return c.withOption(GloraMethod.LAYER_STRUCTURES, searchedStructures);
    }

    /**
     * The adapter config as configured; {@code trainable_token_indices: labels} becomes the ids of the adapt
     * dataset's label prompt and label tokens (read from its shard manifest, so every stage resolves it alike).
     */
    private AdapterConfig configuredAdapter() {
        if (resolvedAdapter != null) return resolvedAdapter;
        AdapterConfig c = cfg.adapterConfig();
        if (c.option(AdapterConfig.TRAINABLE_TOKENS).equals("labels")) {
            try {
                ShardManifest m = manifest("adapt");
                if (!m.labelled()) {
                    throw new IllegalArgumentException("adapter.trainable_token_indices is 'labels' but dataset '" + m.dataset() + "' has no labels");
                }
                java.util.LinkedHashSet<Integer> ids = new java.util.LinkedHashSet<>();
                for (int id : TokenizerCache.load(conf, tokenizerUri()).encode(m.labelPrompt())) ids.add(id);
                for (ShardManifest.Label l : m.labels()) for (int id : l.ids()) ids.add(id);
                c = c.withTrainableTokens(ids.stream().mapToInt(Integer::intValue).toArray());
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e.getMessage(), e);
            }
        }
        resolvedAdapter = c;
        return c;
    }

    private TrainSpec trainSpec(BaseModelRef base) { return trainSpec(base, adapterConfig()); }

    private TrainSpec trainSpec(BaseModelRef base, AdapterConfig adapter) {
        var t = cfg.train;
        TrainingOptions o = new TrainingOptions(t.rounds * t.localSteps, t.batchSize, t.gradAccumulation, t.lr, t.weightDecay,
                t.warmup, t.schedule, 0.0, t.maxGradNorm, t.seed);
        var dp = t.dp.spec();
        // under DP the optimizer's moments are not averaged: they would leave the executors unclipped and un-noised
        return new TrainSpec(base, adapter, Map.of(), t.rounds, t.localSteps, t.sync, t.averageOptimizerState && !dp.on(), o, 1.0,
                t.checkpointEvery, out, dp, t.outer.spec(), t.aggregate);
    }

    private void requireVocabularyFits(ShardManifest m, BaseModelRef base) {
        int modelVocab = BaseModelCache.model(base, conf).config().vocabSize();
        if (m.vocabSize() > modelVocab) {
            throw new IllegalArgumentException("the tokenizer has " + m.vocabSize() + " tokens but the base model " + baseUri()
                    + " embeds only " + modelVocab + ": use the model's own tokenizer (tokenizer.path)");
        }
    }

    /**
     * GLoRA's structure search: candidates train briefly on a sample of the adapt dataset's training shards and are
     * scored on its validation shards (held-out training blocks when the validation split is empty); the choice goes
     * into result.json, whence {@link #adapterConfig} reads it.
     */
    private void gloraSearch(ObjectNode r) throws IOException {
        if (HadoopFiles.isComplete(conf, stageDir("train"))) {
            throw new IllegalStateException("the train stage is already complete in " + stageDir("train") + ", trained without the search's "
                    + "structures; rerun with --fresh (or delete " + stageDir("train") + " and " + uri("checkpoints") + ") so that train uses them");
        }
        ShardManifest m = manifest("adapt");
        BaseModelRef base = baseRef();
        requireVocabularyFits(m, base);
        GloraSearchStage.Result res = GloraSearchStage.run(sc, base, configuredAdapter(), trainSpec(base, configuredAdapter()).options(),
                cfg.gloraSearchSpec(), new ArrowShards(shardsUri("adapt"), m, ShardManifest.TRAIN),
                new ArrowShards(shardsUri("adapt"), m, ShardManifest.VALIDATION), cfg.evaluate.batchSize, console);
        res.toJson(r);
        console.printf(Locale.ROOT, "glora_search: chose candidate #%d of %d, validation loss %.4f (configured structure %.4f)%n",
                res.best().id, res.candidates().size(), res.best().validationLoss, res.candidates().get(0).validationLoss);
    }

    private void train(ObjectNode r) throws IOException {
        ShardManifest m = manifest("adapt");
        BaseModelRef base = baseRef();
        requireVocabularyFits(m, base);
        TrainSpec spec = trainSpec(base);
        DistributedTrainer.Result res = TrainStage.run(sc, spec, new ArrowShards(shardsUri("adapt"), m, ShardManifest.TRAIN), metrics, "train", console, null);
        res.toJson(r).put("method", spec.adapter().method()).put("local_steps", spec.localSteps()).put("sync", spec.sync())
                .put("aggregate", spec.aggregate()).put("outer_optimizer", spec.outer().toString())
                .put("trainable_token_indices", spec.adapter().option(AdapterConfig.TRAINABLE_TOKENS))
                .put("adapter", uri("adapter")).put("partitions", m.split(ShardManifest.TRAIN).size())
                .put("base_quantization", base.quantization().label());
        if (cfg.gloraSearch.enabled) r.put("layer_structures", spec.adapter().option(GloraMethod.LAYER_STRUCTURES));
        Map<String, Integer> ranks = res.adapter().method().ranksInUse(res.adapter());      // a method that allocates ranks (AdaLoRA)
        if (!ranks.isEmpty()) {
            ObjectNode fr = r.putObject("final_ranks");
            ranks.forEach(fr::put);
            r.put("final_rank_total", ranks.values().stream().mapToInt(Integer::intValue).sum());
        }
        console.printf(Locale.ROOT, "train: %,d trainable of %,d parameters; moved %,d bytes down and %,d up per task per round (the model is %,d bytes%s)%n",
                res.trainableParams(), res.totalParams(), res.bytesBroadcastPerRound(), res.bytesReducedPerRound(), res.modelBytes(),
                base.quantization().nf4() ? ", its base in " + base.quantization().label() : "");
    }

    private void loraDrop(ObjectNode r) throws IOException {
        ShardManifest m = manifest("adapt");
        BaseModelRef base = baseRef();
        TrainSpec full = trainSpec(base);
        var d = cfg.loraDrop;
        int rounds = d.rounds > 0 ? d.rounds : cfg.train.rounds;
        String dropOut = uri("lora-drop");
        LoraDropStage.Result res = LoraDropStage.run(sc, new TrainSpec(full.base(), full.adapter(), Map.of(), full.rounds(), full.localSteps(),
                        full.sync(), full.averageOptimizerState(), full.options(), 1.0, full.checkpointEvery(), dropOut).withOuter(full.outer())
                        .withAggregate(full.aggregate()),
                new LoraDropStage.Spec(d.sampleFraction, d.warmupRounds, d.threshold, rounds),
                new ArrowShards(shardsUri("adapt"), m, ShardManifest.TRAIN), metrics, console, dropOut);
        res.toJson(r).put("threshold", d.threshold).put("adapter", HadoopFiles.resolve(dropOut, "adapter"));
        ObjectNode groups = r.putObject("share_groups");
        res.shareGroups().forEach(groups::put);
        // quality against full LoRA on the same validation blocks
        ArrowShards val = new ArrowShards(shardsUri("adapt"), m, ShardManifest.VALIDATION);
        double fullPpl = EvaluateStage.run(sc, List.of(new EvalTarget("lora", base, EvalTarget.Mode.ADAPTED)), full.adapter(), Map.of(),
                adapterTensors(base, uri("adapter"), Map.of()), val, null, cfg.evaluate.batchSize).get("lora").perplexity();
        double dropPpl = EvaluateStage.run(sc, List.of(new EvalTarget("lora_drop", base, EvalTarget.Mode.ADAPTED)), full.adapter(), res.shareGroups(),
                AdapterTensors.ofValues(res.reduced().adapter().stateTensors()), val, null, cfg.evaluate.batchSize).get("lora_drop").perplexity();
        r.put("perplexity_full_lora", fullPpl).put("perplexity_lora_drop", dropPpl);
        console.printf(Locale.ROOT, "lora-drop: kept %s; %.1f%% fewer trainable parameters; perplexity %.2f (full LoRA %.2f)%n",
                res.kept(), 100 * res.paramReduction(), dropPpl, fullPpl);
    }

    /** Reads a saved adapter (PEFT layout) into tensors named as the trainer names them. */
    private AdapterTensors adapterTensors(BaseModelRef base, String adapterUri, Map<String, String> shareGroups) throws IOException {
        return loadAdapter(base, adapterUri, TrainSpec.ADAPTER_NAME, adapterConfig(), shareGroups).tensors();
    }

    private void fullFinetune(ObjectNode r) throws IOException {
        ShardManifest m = manifest("adapt");
        TokenBlocks data = ArrowShardReader.readSplit(conf, shardsUri("adapt"), m, ShardManifest.TRAIN);
        BaseModelRef base = BaseModelRef.of(conf, baseUri());     // full precision whatever base.quantization says: every weight trains
        // every weight trains: making them trainable gives this model private copies (the cache is copy-on-write)
        TransformerLM model = BaseModelCache.model(base, conf);
        var f = cfg.fullFinetune;
        TrainingOptions o = TrainingOptions.defaults(f.steps).withLr(f.lr).withBatch(f.batchSize, 1)
                .withWarmup(Math.min(5, f.steps / 10), "cosine").withSeed(cfg.train.seed);
        double loss = fullTraining("full_finetune", model, data, o,
                io.sparklora.train.Optimizers.StateStorage.parse(f.optimizerState, f.spillDir, "full_finetune.optimizer_state"));
        saveModel(model, uri("full-finetune"));
        r.put("params", model.baseParameterCount()).put("steps", f.steps).put("final_loss", loss).put("path", uri("full-finetune"));
    }

    /** Evaluation targets of one rank of a several-rank adapter are named this plus the rank. */
    private static final String RANK_PREFIX = "adapted@rank";

    private void evaluate(ObjectNode r) throws IOException {
        ShardManifest m = manifest("adapt");
        BaseModelRef base = baseRef();
        List<EvalTarget> targets = new java.util.ArrayList<>(List.of(new EvalTarget("base", base, EvalTarget.Mode.BASE),
                new EvalTarget("adapted", base, EvalTarget.Mode.ADAPTED), new EvalTarget("merged", base, EvalTarget.Mode.MERGED)));
        if (cfg.fullFinetune.enabled && HadoopFiles.isComplete(conf, stageDir("full_finetune"))) {
            targets.add(new EvalTarget("full_finetune", BaseModelRef.of(conf, uri("full-finetune")), EvalTarget.Mode.BASE));
        }
        // a method trained for several ranks (DyLoRA) is evaluated at each: its loss-by-rank curve
        AdapterConfig ac = adapterConfig();
        int[] trained = ac.adapterMethod().ranks(ac);
        if (cfg.evaluate.ranks != null && trained.length == 0) {
            throw new IllegalArgumentException("evaluate.ranks: adapter type '" + ac.method() + "' trains one rank; ranks are for"
                    + " adapters trained for several (dylora)");
        }
        int[] ranks = cfg.evaluate.ranks != null ? cfg.evaluate.ranks.stream().mapToInt(Integer::intValue).toArray() : trained;
        for (int b : ranks) {
            if (b < 1 || b > ac.r()) throw new IllegalArgumentException("evaluate.ranks: rank " + b + " is outside [1, r = " + ac.r() + "]");
            targets.add(new EvalTarget(RANK_PREFIX + b, base, EvalTarget.Mode.ADAPTED, b));
        }
        LoadedAdapter saved = loadAdapter(base, uri("adapter"), TrainSpec.ADAPTER_NAME, adapterConfig(), Map.of());
        AdapterTensors adapter = saved.tensors();
        // evaluation attaches the configured adapter, except under stack, whose adapter is one plain LoRA of its own rank
        AdapterConfig attachAs = cfg.train.aggregate.equals("stack") ? saved.config() : adapterConfig();
        EvaluateStage.Result res = EvaluateStage.run(sc, targets, attachAs, Map.of(), adapter,
                new ArrowShards(shardsUri("adapt"), m, ShardManifest.VALIDATION), m.labelled() ? new ArrowExamples(shardsUri("adapt"), m) : null,
                cfg.evaluate.batchSize);
        Map<String, EvaluateStage.Figures> figs = new LinkedHashMap<>(res.figures());
        if (ranks.length > 0) {
            ObjectNode byRank = r.putObject("by_rank");
            StringBuilder line = new StringBuilder("evaluate: loss by rank:");
            for (int b : ranks) {
                EvaluateStage.Figures f = figs.remove(RANK_PREFIX + b);
                f.toJson(byRank.putObject(Integer.toString(b)));
                line.append(String.format(Locale.ROOT, " %d: %.4f", b, f.loss()));
            }
            console.println(line);
        }
        figs.forEach((name, f) -> f.toJson(r.putObject(name)));
        r.put("objective", m.objective());
        if (m.labelled()) putLabels(r, m, res.examplesPerLabel(), res.majorityClassAccuracy());
        samples(r.putArray("samples"), base, adapter, attachAs, m);
        String what = m.objective().equals("label") ? "label ppl" : "ppl";
        console.println("evaluate: " + figs.entrySet().stream().map(e -> String.format(Locale.ROOT, "%s %s %.2f%s", e.getKey(), what,
                e.getValue().perplexity(), e.getValue().examples() > 0
                        ? String.format(Locale.ROOT, " acc %.3f acc_norm %.3f", e.getValue().accuracy(), e.getValue().accuracyNorm()) : ""))
                .collect(Collectors.joining(" | "))
                + (m.labelled() ? String.format(Locale.ROOT, " (majority class %.3f, %d held-out examples)", res.majorityClassAccuracy(),
                        figs.values().iterator().next().examples()) : ""));
    }

    /** A labelled dataset's figures beside the evaluation's: its labels, held-out examples per label, the majority class's accuracy. */
    private static void putLabels(ObjectNode o, ShardManifest m, long[] examplesPerLabel, double majorityClassAccuracy) {
        ArrayNode labels = o.putArray("labels");
        m.labels().forEach(l -> labels.add(l.name()));
        ArrayNode counts = o.putArray("validation_examples_per_label");
        for (long n : examplesPerLabel) counts.add(n);
        o.put("majority_class_accuracy", majorityClassAccuracy);
    }

    /** A few sampled continuations (top-40, temperature 0.8, seeded) of validation text by the base and the adapted model. */
    private void samples(ArrayNode out, BaseModelRef base, AdapterTensors adapter, AdapterConfig config, ShardManifest m) throws IOException {
        if (cfg.evaluate.samples <= 0) return;
        TokenBlocks val = ArrowShardReader.readSplit(conf, shardsUri("adapt"), m, ShardManifest.VALIDATION);
        TransformerLM plain = BaseModelCache.model(base, conf);
        TransformerLM adapted = BaseModelCache.model(base, conf);
        AttachedAdapter a = AttachedAdapter.attach(adapted, TrainSpec.ADAPTER_NAME, config, 0);
        adapter.copyInto(a.stateTensors());
        TextTokenizer tok = TokenizerCache.load(conf, tokenizerUri());
        int n = Math.min(cfg.evaluate.samples, val.size());
        int[][] prompts = new int[n][];
        long[] seeds = new long[n];
        for (int i = 0; i < n; i++) {
            int idx = (int) ((long) i * val.size() / n);
            prompts[i] = Arrays.copyOf(val.block(idx), Math.min(cfg.evaluate.samplePromptTokens, val.seqLen()));
            seeds[i] = cfg.train.seed + i;
        }
        // all samples generate together, with a KV cache; each row gets what it would get alone
        int[][] fromBase = Generator.sampleBatch(plain, prompts, cfg.evaluate.sampleTokens, m.eosTokenId(), 0.8, 40, seeds);
        int[][] fromAdapted = Generator.sampleBatch(adapted, prompts, cfg.evaluate.sampleTokens, m.eosTokenId(), 0.8, 40, seeds);
        for (int i = 0; i < n; i++) {
            out.addObject().put("prompt", tok.decode(prompts[i]))
                    .put("base", tok.decode(fromBase[i]))
                    .put("adapted", tok.decode(fromAdapted[i]));
        }
    }

    // ---- jobs: several adapters trained together --------------------------------------------------

    /** A job's own directory: its checkpoints, metrics.jsonl, and result.json with _SUCCESS once trained. */
    private String jobDir(String name) { return uri("jobs/" + name); }

    /** Where a job's trained adapter is written, in PEFT layout. */
    private String jobAdapterUri(String name) { return uri("adapters/" + name); }

    private MetricsLog jobMetrics(String name) { return new MetricsLog(conf, HadoopFiles.resolve(jobDir(name), "metrics.jsonl")); }

    /** A job's training: its own rounds, batch, lr, schedule, seed, checkpoints; the shared sync settings from train. */
    private TrainSpec jobTrainSpec(BaseModelRef base, PipelineConfig.JobSection j) {
        var t = cfg.train;
        PipelineConfig.JobTraining jt = cfg.jobTraining(j);
        TrainingOptions o = new TrainingOptions(jt.rounds() * t.localSteps, jt.batchSize(), jt.gradAccumulation(), jt.lr(), jt.weightDecay(),
                jt.warmup(), jt.schedule(), 0.0, jt.maxGradNorm(), jt.seed());
        return new TrainSpec(base, cfg.jobAdapterConfig(j), Map.of(), jt.rounds(), t.localSteps, t.sync, t.averageOptimizerState, o, 1.0,
                jt.checkpointEvery(), jobDir(j.name), io.sparklora.privacy.DpSpec.OFF, t.outer.spec(), t.aggregate);
    }

    /** Why the tokenize stage could not give job {@code name} its dataset (its result.json says), or null. */
    private String tokenizeFailure(String name) throws IOException {
        String result = HadoopFiles.resolve(stageDir("tokenize"), "result.json");
        if (!HadoopFiles.exists(conf, result)) return null;
        JsonNode why = JSON.readTree(HadoopFiles.readString(conf, result)).path(FAILED_JOBS).path(name);
        return why.isTextual() ? why.asText() : null;
    }

    /**
     * The train stage with jobs: every job not yet trained (its {@code jobs/<name>/_SUCCESS} absent) in one
     * {@link MultiTrainStage}; each trained adapter is written to {@code adapters/<name>/} and its figures to
     * {@code jobs/<name>/result.json}. A job whose dataset or training fails is recorded with its reason; the others finish.
     */
    private void trainJobs(ObjectNode r) throws IOException {
        BaseModelRef base = baseRef();
        Map<String, ObjectNode> byJob = new LinkedHashMap<>();
        ObjectNode failed = JSON.createObjectNode();
        List<MultiTrainStage.Job> todo = new java.util.ArrayList<>();
        for (PipelineConfig.JobSection j : cfg.jobs) {
            String dir = jobDir(j.name), result = HadoopFiles.resolve(dir, "result.json");
            if (HadoopFiles.isComplete(conf, dir) && HadoopFiles.exists(conf, result)) {
                byJob.put(j.name, ((ObjectNode) JSON.readTree(HadoopFiles.readString(conf, result))).put("status", "skipped"));
                continue;
            }
            try {
                String why = tokenizeFailure(j.name);
                if (why != null) throw new IllegalArgumentException(why.startsWith("job '") ? why.substring(why.indexOf(": ") + 2) : why);
                ShardManifest m = manifest(dataKey(j));
                requireVocabularyFits(m, base);
                todo.add(new MultiTrainStage.Job(j.name, jobTrainSpec(base, j), new ArrowShards(shardsUri(dataKey(j)), m, ShardManifest.TRAIN),
                        jobMetrics(j.name), jobAdapterUri(j.name)));
                byJob.put(j.name, null);
            } catch (IOException | RuntimeException e) {
                String why = "job '" + j.name + "': " + StageErrors.original(e).getMessage();
                byJob.put(j.name, JSON.createObjectNode().put("status", "failed").put("error", why));
                failed.put(j.name, why);
            }
        }
        Map<String, MultiTrainStage.Outcome> outcomes = todo.isEmpty() ? Map.of() : MultiTrainStage.run(sc, todo, console);
        for (MultiTrainStage.Job job : todo) {
            MultiTrainStage.Outcome o = outcomes.get(job.name());
            if (!o.succeeded()) {
                String why = o.error().replaceFirst("^adapter '", "job '");
                byJob.put(job.name(), JSON.createObjectNode().put("status", "failed").put("error", why));
                failed.put(job.name(), why);
                console.printf(Locale.ROOT, "train: %s%n", why);
                continue;
            }
            PipelineConfig.JobSection j = cfg.jobs.stream().filter(x -> x.name.equals(job.name())).findFirst().orElseThrow();
            AdapterConfig ac = job.spec().adapter();
            ObjectNode jr = o.result().toJson(JSON.createObjectNode().put("status", "done"));
            jr.put("method", ac.method()).put("r", ac.r()).put("dataset", j.dataset(cfg)).put("objective", objective(dataKey(j)).toString())
                    .put("rounds", job.spec().rounds()).put("batch_size", job.spec().options().batchSize()).put("lr", job.spec().options().lr())
                    .put("seed", job.spec().options().seed()).put("adapter", job.adapterUri()).put("checkpoints", TrainCheckpoint.dir(jobDir(job.name())))
                    .put("metrics", HadoopFiles.resolve(jobDir(job.name()), "metrics.jsonl"));
            // the job's own marker: a rerun (after another job failed) trains only the jobs without one
            HadoopFiles.writeString(conf, HadoopFiles.resolve(jobDir(job.name()), "result.json"),
                    JSON.writerWithDefaultPrettyPrinter().writeValueAsString(redaction.scrub(jr)));
            HadoopFiles.markSuccess(conf, jobDir(job.name()));
            byJob.put(job.name(), jr);
            console.printf(Locale.ROOT, "train: job '%s' (%s r=%d): %,d trainable parameters, final loss %.4f; adapter in %s%n", job.name(), ac.method(), ac.r(),
                    o.result().trainableParams(), o.result().finalLoss(), job.adapterUri());
        }
        ObjectNode jobs = r.putObject("jobs");
        byJob.forEach(jobs::set);
        r.put("sync", cfg.train.sync).put("local_steps", cfg.train.localSteps).put("aggregate", cfg.train.aggregate)
                .put("outer_optimizer", cfg.train.outer.spec().toString()).put("base_quantization", base.quantization().label())
                .put("trained_together", todo.size());
        if (!failed.isEmpty()) r.set(FAILED_JOBS, failed);
    }

    /** A trained adapter read back from its PEFT directory, attached under {@code name}: its config as trained (AdaLoRA's settled ranks filled in) and tensors. */
    private record LoadedAdapter(AdapterConfig config, AdapterTensors tensors) {}

    private LoadedAdapter loadAdapter(BaseModelRef base, String adapterUri, String name, AdapterConfig configured) throws IOException {
        return loadAdapter(base, adapterUri, name, configured, Map.of());
    }

    /**
     * What the saved adapter settled in training comes from its own config: AdaLoRA's rank pattern filled into the
     * configured one, or under {@code train.aggregate: stack} the whole config (one plain LoRA of the folds' rank).
     */
    private LoadedAdapter loadAdapter(BaseModelRef base, String adapterUri, String name, AdapterConfig configured,
                                      Map<String, String> shareGroups) throws IOException {
        TransformerLM model = BaseModelCache.model(base, conf);
        Path local = HadoopFiles.copyToLocal(conf, adapterUri);
        try {
            AdapterConfig saved = PeftAdapterFormat.readConfig(local.resolve(PeftAdapterFormat.CONFIG_FILE));
            AdapterConfig c = cfg.train.aggregate.equals("stack") ? saved
                    : saved.filledIn().isEmpty() ? configured : configured.withOptions(saved.filledIn());
            AttachedAdapter a = AttachedAdapter.attach(model, name, c, 0, shareGroups);
            PeftAdapterFormat.loadTensors(a, TrainCheckpoint.readAll(local.resolve(PeftAdapterFormat.WEIGHTS_FILE)), adapterUri, false);
            return new LoadedAdapter(c, AdapterTensors.ofValues(a.stateTensors()));
        } finally {
            HadoopFiles.deleteLocalTree(local);
        }
    }

    /**
     * The evaluate stage with jobs: every trained job on its own dataset's held-out split, with its adapter and with the
     * base, all in one mixed-adapter pass ({@link MixedEvaluateStage}); a job that was not trained is reported failed.
     */
    private void evaluateJobs(ObjectNode r) throws IOException {
        BaseModelRef base = baseRef();
        Map<String, ObjectNode> byJob = new LinkedHashMap<>();
        ObjectNode failed = JSON.createObjectNode();
        List<io.sparklora.spark.evaluate.EvalJob> evalJobs = new java.util.ArrayList<>();
        Map<String, AdapterTensors> tensors = new LinkedHashMap<>();
        Map<String, ShardManifest> manifests = new LinkedHashMap<>();
        JsonNode trainResult = HadoopFiles.exists(conf, HadoopFiles.resolve(stageDir("train"), "result.json"))
                ? JSON.readTree(HadoopFiles.readString(conf, HadoopFiles.resolve(stageDir("train"), "result.json"))) : JSON.createObjectNode();
        for (PipelineConfig.JobSection j : cfg.jobs) {
            if (!HadoopFiles.isComplete(conf, jobDir(j.name))) {
                JsonNode why = trainResult.path(FAILED_JOBS).path(j.name);
                String msg = "job '" + j.name + "': not trained" + (why.isTextual() ? " (" + why.asText().replaceFirst("^job '[^']*': ", "") + ")" : "");
                byJob.put(j.name, JSON.createObjectNode().put("status", "failed").put("error", msg));
                failed.put(j.name, msg);
                continue;
            }
            ShardManifest m = manifest(dataKey(j));
            LoadedAdapter a = loadAdapter(base, jobAdapterUri(j.name), j.name, cfg.jobAdapterConfig(j));
            tensors.put(j.name, a.tensors());
            manifests.put(j.name, m);
            evalJobs.add(new io.sparklora.spark.evaluate.EvalJob(j.name, a.config(), new ArrowShards(shardsUri(dataKey(j)), m, ShardManifest.VALIDATION),
                    m.labelled() ? new ArrowExamples(shardsUri(dataKey(j)), m) : null));
            byJob.put(j.name, null);
        }
        if (!evalJobs.isEmpty()) {
            Map<String, io.sparklora.spark.evaluate.MixedEvaluateStage.JobFigures> figs =
                    io.sparklora.spark.evaluate.MixedEvaluateStage.run(sc, base, evalJobs, tensors, cfg.evaluate.batchSize);
            Map<String, ArrayNode> samples = jobSamples(base, evalJobs, tensors, manifests);
            for (io.sparklora.spark.evaluate.EvalJob ej : evalJobs) {
                var f = figs.get(ej.name());
                ShardManifest m = manifests.get(ej.name());
                ObjectNode jo = JSON.createObjectNode().put("status", "done").put("dataset", m.dataset()).put("objective", m.objective())
                        .put("method", ej.config().method()).put("r", ej.config().r());
                f.base().toJson(jo.putObject("base"));
                f.adapted().toJson(jo.putObject("adapted"));
                if (m.labelled()) putLabels(jo, m, f.examplesPerLabel(), f.majorityClassAccuracy());
                if (samples.containsKey(ej.name())) jo.set("samples", samples.get(ej.name()));
                byJob.put(ej.name(), jo);
                String what = m.objective().equals("label") ? "label ppl" : "ppl";
                console.printf(Locale.ROOT, "evaluate: job '%s' on %s: base %s %.2f -> adapted %.2f%s%n", ej.name(), m.dataset(), what,
                        f.base().perplexity(), f.adapted().perplexity(), f.adapted().examples() > 0
                                ? String.format(Locale.ROOT, " (acc %.3f -> %.3f, majority class %.3f)", f.base().accuracy(), f.adapted().accuracy(),
                                f.majorityClassAccuracy()) : "");
            }
        }
        if (cfg.fullFinetune.enabled && HadoopFiles.isComplete(conf, stageDir("full_finetune"))) {
            // the baseline of one fully fine-tuned model, on datasets.adapt as without jobs
            ShardManifest m = manifest("adapt");
            EvaluateStage.Result res = EvaluateStage.run(sc, List.of(new EvalTarget("base", base, EvalTarget.Mode.BASE),
                            new EvalTarget("full_finetune", BaseModelRef.of(conf, uri("full-finetune")), EvalTarget.Mode.BASE)), cfg.adapterConfig(), Map.of(),
                    null, new ArrowShards(shardsUri("adapt"), m, ShardManifest.VALIDATION), m.labelled() ? new ArrowExamples(shardsUri("adapt"), m) : null,
                    cfg.evaluate.batchSize);
            ObjectNode ff = r.putObject("full_finetune_baseline").put("dataset", m.dataset());
            res.figures().forEach((name, f) -> f.toJson(ff.putObject(name)));
        }
        ObjectNode jobs = r.putObject("jobs");
        byJob.forEach(jobs::set);
        if (!failed.isEmpty()) r.set(FAILED_JOBS, failed);
    }

    /**
     * A few sampled continuations of each job's held-out text by the base and by the job's adapter (top-40, temperature
     * 0.8, seeded as without jobs), every job's rows and the base's generated together in one mixed-adapter batch.
     */
    private Map<String, ArrayNode> jobSamples(BaseModelRef base, List<io.sparklora.spark.evaluate.EvalJob> jobs, Map<String, AdapterTensors> tensors,
                                              Map<String, ShardManifest> manifests) throws IOException {
        Map<String, ArrayNode> out = new LinkedHashMap<>();
        if (cfg.evaluate.samples <= 0) return out;
        TransformerLM model = BaseModelCache.model(base, conf);
        List<int[]> prompts = new java.util.ArrayList<>();
        List<String> names = new java.util.ArrayList<>();
        List<Long> seeds = new java.util.ArrayList<>();
        Map<String, Integer> firstRow = new LinkedHashMap<>(), count = new LinkedHashMap<>();
        for (io.sparklora.spark.evaluate.EvalJob j : jobs) {
            tensors.get(j.name()).copyInto(AttachedAdapter.attach(model, j.name(), j.config(), 0).stateTensors());
            ShardManifest m = manifests.get(j.name());
            TokenBlocks val = ArrowShardReader.readSplit(conf, ((ArrowShards) j.blocks()).dirUri(), m, ShardManifest.VALIDATION);
            int n = Math.min(cfg.evaluate.samples, val.size());
            firstRow.put(j.name(), prompts.size());
            count.put(j.name(), n);
            for (String who : List.of(TransformerLM.BASE_ONLY, j.name())) {      // the base's rows, then the adapter's: two runs
                for (int i = 0; i < n; i++) {
                    int idx = (int) ((long) i * val.size() / n);
                    prompts.add(Arrays.copyOf(val.block(idx), Math.min(cfg.evaluate.samplePromptTokens, val.seqLen())));
                    names.add(who);
                    seeds.add(cfg.train.seed + i);
                }
            }
        }
        if (prompts.isEmpty()) return out;
        int eos = manifests.values().iterator().next().eosTokenId();
        int[][] generated = Generator.sampleBatch(model, prompts.toArray(new int[0][]), names.toArray(new String[0]), cfg.evaluate.sampleTokens,
                eos, 0.8, 40, seeds.stream().mapToLong(Long::longValue).toArray());
        TextTokenizer tok = TokenizerCache.load(conf, tokenizerUri());
        for (io.sparklora.spark.evaluate.EvalJob j : jobs) {
            ArrayNode a = JSON.createArrayNode();
            int first = firstRow.get(j.name()), n = count.get(j.name());
            for (int i = 0; i < n; i++) {
                a.addObject().put("prompt", tok.decode(prompts.get(first + i))).put("base", tok.decode(generated[first + i]))
                        .put("adapted", tok.decode(generated[first + n + i]));
            }
            out.put(j.name(), a);
        }
        return out;
    }

    // ---- files ----------------------------------------------------------------------------------

    private Path localTokenizerCopy;

    /** A local copy of tokenizer.json, for copying into the model directories this run writes. */
    private Path localTokenizerPath() throws IOException {
        if (localTokenizerCopy == null) {
            Path d = Files.createTempDirectory("spark-lora-tokenizer-");
            byte[] bytes = HadoopFiles.readBytes(conf, tokenizerUri());
            localTokenizerCopy = Files.write(d.resolve("tokenizer.json"), bytes);
            d.toFile().deleteOnExit();
            localTokenizerCopy.toFile().deleteOnExit();
        }
        return localTokenizerCopy;
    }

    private void writeReport() throws IOException {
        JsonNode safe = redaction.scrub(report);
        HadoopFiles.writeString(conf, uri("report.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(safe));
        List<JsonNode> lines = new java.util.ArrayList<>(metrics.lines());
        if (cfg.hasJobs()) {
            // each job's training metrics are in its own file, their stage the job's name
            for (PipelineConfig.JobSection j : cfg.jobs) {
                if (HadoopFiles.exists(conf, HadoopFiles.resolve(jobDir(j.name), "metrics.jsonl"))) lines.addAll(jobMetrics(j.name).lines());
            }
        }
        HadoopFiles.writeString(conf, uri("report.html"), ReportHtml.render(safe, lines.stream().map(redaction::scrub).toList()));
    }
}
