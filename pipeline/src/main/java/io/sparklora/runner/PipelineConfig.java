package io.sparklora.runner;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A pipeline run as one YAML file ({@code conf/demo.yaml} is the annotated example). Every key has a
 * default except the adaptation dataset; an unknown key anywhere is an error that names it, so a typo
 * never silently falls back to a default. Relative paths resolve against the working directory and must stay
 * inside it, symbolic links followed, unless {@code allow_outside: true}; absolute paths and URIs are taken as
 * written ({@link io.sparklora.util.PathScope}).
 */
public final class PipelineConfig {
    public String name = "run";
    /** Where the run writes (any Hadoop URI); default {@code runs/<name>}. */
    public String output;
    public SparkSection spark = new SparkSection();
    public DatasetsSection datasets = new DatasetsSection();
    public TokenizerSection tokenizer = new TokenizerSection();
    public DataSection data = new DataSection();
    public BaseSection base = new BaseSection();
    public AdapterSection adapter = new AdapterSection();
    public TrainSection train = new TrainSection();
    public LoraDropSection loraDrop = new LoraDropSection();
    public GloraSearchSection gloraSearch = new GloraSearchSection();
    public FullFinetuneSection fullFinetune = new FullFinetuneSection();
    public EvaluateSection evaluate = new EvaluateSection();
    public EngineSection engine = new EngineSection();
    /**
     * Several adapters trained together in one Spark job over the one base ({@link JobSection}); null (absent): the
     * one adapter of {@code adapter} and {@code train}, as before.
     */
    public List<JobSection> jobs;
    /**
     * Lets the relative paths ({@link #PATH_KEYS}) lead outside the working directory, by '..' or a symbolic link.
     * Absolute paths and URIs never need it.
     */
    public boolean allowOutside = false;

    /** The keys that name files or directories, checked by {@link io.sparklora.util.PathScope}. */
    static final List<String> PATH_KEYS = List.of("output", "datasets.adapt", "datasets.pretrain", "tokenizer.path", "base.path",
            "full_finetune.spill_dir");

    public static final class SparkSection {
        /** Used when the job was not started by spark-submit (which sets the master itself). */
        public String master = "local[*]";
        public Map<String, String> conf = new LinkedHashMap<>();
    }

    /** The tensor engine's settings for the stages the driver runs itself. */
    public static final class EngineSection {
        /**
         * CPU threads of the driver's one-process stages (pretrain, full_finetune); absent: {@code spark.task.cpus}
         * (1 unless set), as each Spark task gets ({@link io.sparklora.spark.TaskEngine}). At the demo's width one
         * thread is fastest: docs/BENCHMARKS.md, "Threads per task".
         */
        public Integer threads;
    }

    public static final class DatasetsSection {
        /** Dataset manifest of the corpus to adapt to (required). */
        public String adapt;
        /** Dataset manifest to pretrain a small base on, when {@code base.path} is not given. */
        public String pretrain;
    }

    public static final class TokenizerSection {
        /**
         * A tokenizer.json (or a model directory holding one); absent: the base model's own
         * ({@code base.path}/tokenizer.json), or, when the run pretrains its base, a byte-level BPE learned from the datasets.
         */
        public String path;
        public int vocabSize = 2048;
    }

    public static final class DataSection {
        public int seqLen = 128;
        public double validationFraction = 0.1;
        public int partitions = 2;
        public long maxLineBytes = 4L << 20;
        public long seed = 42;
        /**
         * What a labelled adapt dataset trains on: {@code auto} (text → label, the label's tokens after the
         * label prompt are the targets), {@code label} (the same), or {@code language_model} (every token;
         * plain domain adaptation). Unlabelled datasets are always language-modelled.
         */
        public String objective = "auto";

        public io.sparklora.data.TrainingObjective objective() {
            return io.sparklora.data.TrainingObjective.parse(objective, "data.objective");
        }
    }

    public static final class BaseSection {
        /** A Hugging Face model directory (any Hadoop URI); absent: pretrain one (see {@link PretrainSection}). */
        public String path;
        public PretrainSection pretrain = new PretrainSection();
        /**
         * How the executors hold the frozen base for adapter training, evaluation and LoRA-drop: {@code none} (full
         * precision) or {@code nf4} (QLoRA's 4-bit NormalFloat, quantized on load; a bitsandbytes 4-bit checkpoint is
         * NF4 whatever this says). Full fine-tuning always trains a full-precision copy.
         */
        public String quantization = "none";
        /** With nf4: double-quantize the absmax (about 4.127 bits per weight instead of 4.5). */
        public boolean doubleQuant = true;
    }

    /** base.quantization and base.double_quant, checked. */
    public io.sparklora.quant.BaseQuantization baseQuantization() {
        return io.sparklora.quant.BaseQuantization.parse(base.quantization, base.doubleQuant, "base.quantization");
    }

    public static final class PretrainSection {
        public int dModel = 128;
        public int layers = 2;
        public int heads = 4;
        public int steps = 150;
        public int batchSize = 8;
        public double lr = 3e-3;
    }

    /**
     * The adapter: the shared keys below, plus the chosen method's own settings by their config names
     * (e.g. {@code d_initial} for VeRA; {@code use_dora: true} or {@code lora_fa: true} select those methods
     * as in PEFT). Keys no method of this type has are refused, listing the ones it has.
     */
    public static final class AdapterSection {
        public String type = "lora";
        public int r = 8;
        public double alpha = 16;
        public double dropout = 0.0;
        public List<String> targets = new ArrayList<>();
        public boolean rslora = false;
        public String bias = "none";
        public String init = "kaiming";
        /** Method settings (every key not above), as written. */
        @com.fasterxml.jackson.annotation.JsonIgnore
        public final Map<String, String> settings = new LinkedHashMap<>();

        @com.fasterxml.jackson.annotation.JsonAnySetter
        public void setting(String key, Object value) {
            if (!io.sparklora.adapters.AdapterSpecs.isMethodFlag(key)) requireSomeMethodHas("adapter", key, AdapterSection.class);
            settings.put(key, String.valueOf(value));
        }
    }

    /** The 1-based line where {@code section.key} is written (the first line that starts with the key inside the section), or 0. */
    static int lineOf(String yaml, String path) {
        String section = path.substring(0, path.indexOf('.')), key = path.substring(path.indexOf('.') + 1);
        String[] lines = yaml.split("\n", -1);
        boolean inSection = false;
        for (int i = 0; i < lines.length; i++) {
            String l = lines[i];
            if (!l.isEmpty() && !Character.isWhitespace(l.charAt(0)) && !l.startsWith("#")) inSection = l.startsWith(section + ":");
            else if (inSection && l.strip().startsWith(key + ":")) return i + 1;
        }
        return 0;
    }

    /** A key that neither the section nor any registered method has (thrown while parsing, so the parser adds the line). */
    static final class UnknownKey extends IllegalArgumentException {
        final String path;
        final String known;

        UnknownKey(String path, String known) {
            super("unknown key '" + path + "'");
            this.path = path;
            this.known = known;
        }
    }

    private static void requireSomeMethodHas(String section, String key, Class<?> sectionClass) {
        java.util.TreeSet<String> methodKeys = new java.util.TreeSet<>();
        for (String m : io.sparklora.adapters.AdapterMethods.names()) methodKeys.addAll(io.sparklora.adapters.AdapterMethods.get(m).optionDefaults().keySet());
        if (section.equals("adapter")) methodKeys.addAll(io.sparklora.adapters.AdapterConfig.COMMON_OPTIONS.keySet());
        if (methodKeys.contains(key)) return;
        java.util.TreeSet<String> known = new java.util.TreeSet<>(methodKeys);
        for (java.lang.reflect.Field f : sectionClass.getFields()) {
            if (!java.lang.reflect.Modifier.isStatic(f.getModifiers()) && !f.isAnnotationPresent(com.fasterxml.jackson.annotation.JsonIgnore.class)) {
                known.add(f.getName().replaceAll("([A-Z])", "_$1").toLowerCase(java.util.Locale.ROOT));
            }
        }
        throw new UnknownKey(section + "." + key, String.join(", ", known));
    }

    /**
     * Training settings. Besides the keys below, a method's optimizer settings may sit here (LoRA+'s
     * {@code loraplus_lr_ratio}: the keys the method's {@code optionDefaults} list); they become the adapter's.
     */
    public static final class TrainSection {
        /** Method settings written under train (every key not below), as written. */
        @com.fasterxml.jackson.annotation.JsonIgnore
        public final Map<String, String> methodSettings = new LinkedHashMap<>();

        @com.fasterxml.jackson.annotation.JsonAnySetter
        public void setting(String key, Object value) {
            requireSomeMethodHas("train", key, TrainSection.class);
            methodSettings.put(key, String.valueOf(value));
        }

        public int rounds = 60;
        public int localSteps = 1;
        public String sync = "gradients";
        public boolean averageOptimizerState = true;
        public int batchSize = 4;
        public int gradAccumulation = 1;
        public double lr = 3e-3;
        public double weightDecay = 0.0;
        public int warmup = 5;
        public String schedule = "cosine";
        public double maxGradNorm = 1.0;
        public long seed = 42;
        public int checkpointEvery = 10;
        /** Differentially private training ({@link io.sparklora.privacy.DpSpec}); off by default. */
        public DpSection dp = new DpSection();
        /** The driver's outer step of {@code sync: parameters} ({@link io.sparklora.train.OuterOptimizer}); plain averaging by default. */
        public OuterSection outer = new OuterSection();
        /** How {@code sync: parameters} combines the workers' adapters: mean, frozen_a, svd or stack ({@link io.sparklora.train.ExactAggregation}). */
        public String aggregate = "mean";
    }

    /**
     * {@code train.outer}: DiLoCo's outer optimizer. {@code optimizer: sgd} steps on the pseudo-gradient θ − θ̄ with its
     * own rate and momentum; the defaults are DiLoCo's (0.7, Nesterov 0.9). {@code none} is plain averaging.
     */
    public static final class OuterSection {
        public String optimizer = "none";
        public double lr = io.sparklora.train.OuterOptimizer.Spec.DILOCO.lr();
        public double momentum = io.sparklora.train.OuterOptimizer.Spec.DILOCO.momentum();
        public boolean nesterov = true;

        public io.sparklora.train.OuterOptimizer.Spec spec() {
            return optimizer.equals("none") ? io.sparklora.train.OuterOptimizer.Spec.NONE
                    : new io.sparklora.train.OuterOptimizer.Spec(optimizer, lr, momentum, nesterov);
        }
    }

    /** {@code train.dp}: example-level DP-SGD or client-level DP-FedAvg, and the accountant's δ and ε budget. */
    public static final class DpSection {
        public String mode = "off";
        public double clipNorm = 1.0;
        public double noiseMultiplier = 1.0;
        public double sampleRate = 0.01;
        public double delta = 1e-5;
        public double epsilonBudget = 0;
        public long noiseSeed = 0;

        public io.sparklora.privacy.DpSpec spec() {
            return new io.sparklora.privacy.DpSpec(mode, clipNorm, noiseMultiplier, sampleRate, delta, epsilonBudget, noiseSeed);
        }
    }

    public static final class LoraDropSection {
        public boolean enabled = true;
        /** Whether the file wrote {@code enabled} (with {@code jobs:} the stage is off unless written, and then refused). */
        @com.fasterxml.jackson.annotation.JsonIgnore
        public boolean enabledWritten = false;

        @com.fasterxml.jackson.annotation.JsonSetter("enabled")
        public void setEnabled(boolean enabled) {
            this.enabled = enabled;
            this.enabledWritten = true;
        }

        public double sampleFraction = 0.3;
        public int warmupRounds = 10;
        public double threshold = 0.9;
        /** Rounds to train the reduced set; 0 means as many as {@code train.rounds}. */
        public int rounds = 0;
    }

    /**
     * GLoRA's layer-wise structure search ({@link io.sparklora.spark.glora.GloraSearchStage}), before train; the
     * chosen per-layer structures become the adapter's {@code layer_structures} for train and evaluate.
     */
    public static final class GloraSearchSection {
        public boolean enabled = false;
        /** Candidates per generation. */
        public int population = 6;
        /** 1: the initial population only; each further one keeps the best half and adds mutations of them. */
        public int generations = 1;
        /** Optimizer steps each candidate trains (the train section's batch size, lr, schedule and seed). */
        public int steps = 20;
        /** Fraction of every training shard the candidates train on. */
        public double sampleFraction = 0.3;
        /** Fraction of every validation shard the candidates are scored on. */
        public double validationSampleFraction = 1.0;
        /** Seeds the population, the mutations and the samples. */
        public long seed = 42;
    }

    public static final class FullFinetuneSection {
        /** A one-process full fine-tuning baseline for the report (every weight trains; the base is small). */
        public boolean enabled = false;
        public int steps = 60;
        public double lr = 1e-3;
        public int batchSize = 8;
        /**
         * Where AdamW keeps its two moments (twice the model's size): {@code memory}, or {@code mapped}, in memory-mapped
         * files under {@code spill_dir} (default: java.io.tmpdir) that the OS can page out under memory pressure.
         */
        public String optimizerState = "memory";
        public String spillDir;
    }

    /**
     * One entry of {@code jobs:}: an adapter trained beside the others in one Spark job ({@link
     * io.sparklora.spark.train.MultiTrainStage}), written to {@code <output>/adapters/<name>/}, evaluated on its own
     * dataset's held-out split. What it leaves out comes from the top level: {@code dataset} from {@code datasets.adapt},
     * {@code adapter} from {@code adapter}, each {@code train} key from {@code train}, {@code objective} from
     * {@code data.objective}.
     */
    public static final class JobSection {
        /** Required; distinct; names the adapter's directory (letters, digits, '_', '.', '-'). */
        public String name;
        /** Dataset manifest; absent: {@code datasets.adapt}. */
        public String dataset;
        /** As {@code data.objective}, for this job's dataset. */
        public String objective;
        /** A whole adapter section (its own defaults, not the top-level one's); absent: the top-level {@code adapter}. */
        public AdapterSection adapter;
        public JobTrainSection train = new JobTrainSection();

        public io.sparklora.data.TrainingObjective objective(PipelineConfig c) {
            return io.sparklora.data.TrainingObjective.parse(objective != null ? objective : c.data.objective, "objective");
        }

        public String dataset(PipelineConfig c) { return dataset != null ? dataset : c.datasets.adapt; }
    }

    /**
     * A job's own training settings; an absent key takes the top-level {@code train} value. The keys every job must share
     * (sync, local_steps, average_optimizer_state, outer, aggregate, dp) are set at the top level only.
     */
    public static final class JobTrainSection {
        public Integer rounds;
        public Integer batchSize;
        public Integer gradAccumulation;
        public Double lr;
        public Double weightDecay;
        public Integer warmup;
        public String schedule;
        public Double maxGradNorm;
        public Long seed;
        public Integer checkpointEvery;
    }

    /** A job's training settings, resolved against the top-level {@code train} section. */
    public record JobTraining(int rounds, int batchSize, int gradAccumulation, double lr, double weightDecay, int warmup, String schedule,
                              double maxGradNorm, long seed, int checkpointEvery) {}

    public JobTraining jobTraining(JobSection j) {
        var t = train;
        var o = j.train;
        return new JobTraining(o.rounds != null ? o.rounds : t.rounds, o.batchSize != null ? o.batchSize : t.batchSize,
                o.gradAccumulation != null ? o.gradAccumulation : t.gradAccumulation, o.lr != null ? o.lr : t.lr,
                o.weightDecay != null ? o.weightDecay : t.weightDecay, o.warmup != null ? o.warmup : t.warmup,
                o.schedule != null ? o.schedule : t.schedule, o.maxGradNorm != null ? o.maxGradNorm : t.maxGradNorm,
                o.seed != null ? o.seed : t.seed, o.checkpointEvery != null ? o.checkpointEvery : t.checkpointEvery);
    }

    /** A job's adapter: its own section, else the top-level one; the top-level train section's method settings apply to it too. */
    public io.sparklora.adapters.AdapterConfig jobAdapterConfig(JobSection j) { return jobAdapterConfig("pipeline config", j); }

    private io.sparklora.adapters.AdapterConfig jobAdapterConfig(String where, JobSection j) {
        return adapterConfig(where + ": job '" + j.name + "'", j.adapter != null ? j.adapter : adapter, j.adapter != null ? "adapter" : "adapter (the top-level one)");
    }

    /**
     * The {@code jobs:} list: names present, distinct and fit for a directory; each job's adapter and settings valid and
     * able to share batches with the others (no base tensors trained); the stages that make sense for one adapter only
     * refused. With jobs, lora_drop is off unless the file enables it, and then it is refused.
     */
    private void validateJobs(String where) {
        if (jobs.isEmpty()) throw new IllegalArgumentException(where + ": jobs: is empty; name at least one job, or remove jobs: to train the one adapter of 'adapter'");
        if (gloraSearch.enabled) {
            throw new IllegalArgumentException(where + ": glora_search searches the structure of one GLoRA adapter and cannot run with jobs:; set glora_search.enabled: false");
        }
        if (loraDrop.enabled && loraDrop.enabledWritten) {
            throw new IllegalArgumentException(where + ": lora_drop reduces one adapter's layers and cannot run with jobs:; set lora_drop.enabled: false (with jobs: it is off unless enabled)");
        }
        loraDrop.enabled = false;
        if (evaluate.ranks != null) throw new IllegalArgumentException(where + ": evaluate.ranks is for one adapter trained for several ranks; it cannot be used with jobs:");
        if (train.aggregate.equals("stack")) {
            throw new IllegalArgumentException(where + ": train.aggregate: stack merges each adapter's rounds into the base weights, which the jobs"
                    + " share; use aggregate svd or mean with jobs:");
        }
        boolean dp;
        try {
            dp = train.dp.spec().on();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        if (dp) throw new IllegalArgumentException(where + ": train.dp: a private adapter needs batches of its own and cannot train with jobs:");
        Map<String, Integer> seen = new LinkedHashMap<>();
        for (int i = 0; i < jobs.size(); i++) {
            JobSection j = jobs.get(i);
            if (j == null || j.name == null) throw new IllegalArgumentException(where + ": jobs[" + i + "]: name is required");
            String at = where + ": job '" + j.name + "' (jobs[" + i + "])";
            try {
                io.sparklora.train.MultiAdapterTrainer.Job.checkName(j.name);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(at + ": " + e.getMessage());
            }
            Integer before = seen.putIfAbsent(j.name, i);
            if (before != null) throw new IllegalArgumentException(at + ": a second job named '" + j.name + "' (the first is jobs[" + before + "]); names must be distinct");
            if (j.train == null) j.train = new JobTrainSection();
            try {
                j.objective(this);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(at + ": " + e.getMessage());
            }
            var a = jobAdapterConfig(where, j);
            if (!a.bias().equals("none") || !a.option(io.sparklora.adapters.AdapterConfig.TRAINABLE_TOKENS).isEmpty()) {
                throw new IllegalArgumentException(at + ": its adapter trains base tensors (bias: " + a.bias() + ", trainable_token_indices: '"
                        + a.option(io.sparklora.adapters.AdapterConfig.TRAINABLE_TOKENS) + "'), which would reach the other jobs' rows of a shared batch;"
                        + " use bias: none and no trainable_token_indices" + (j.adapter == null ? " (it takes the top-level adapter section; give the job its own)" : ""));
            }
            JobTraining t = jobTraining(j);
            try {
                if (t.rounds() <= 0) throw new IllegalArgumentException("train.rounds must be positive, got " + t.rounds());
                new io.sparklora.train.TrainingOptions(t.rounds() * train.localSteps, t.batchSize(), t.gradAccumulation(), t.lr(), t.weightDecay(),
                        t.warmup(), t.schedule(), 0.0, t.maxGradNorm(), t.seed());
                io.sparklora.train.TrainSpec.checkAggregate(train.aggregate, train.sync, a, train.averageOptimizerState, train.outer.spec(), train.dp.spec());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(at + ": " + e.getMessage());
            }
        }
    }

    public boolean hasJobs() { return jobs != null; }

    public static final class EvaluateSection {
        public int batchSize = 8;
        public int samples = 3;
        public int sampleTokens = 40;
        public int samplePromptTokens = 24;
        /** Ranks to evaluate an adapter trained for several (DyLoRA) at; null: every rank it trained. */
        public List<Integer> ranks = null;
    }

    private static final ObjectMapper YAML = new ObjectMapper(io.sparklora.util.SafeYaml.factory())
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .setVisibility(com.fasterxml.jackson.annotation.PropertyAccessor.FIELD, com.fasterxml.jackson.annotation.JsonAutoDetect.Visibility.PUBLIC_ONLY);

    public static PipelineConfig read(Configuration conf, String uri) throws IOException {
        if (!HadoopFiles.exists(conf, uri)) throw new IllegalArgumentException("pipeline config " + uri + " not found");
        return parse(HadoopFiles.readString(conf, uri), uri);
    }

    public static PipelineConfig parse(String yaml, String where) {
        return parse(yaml, where, java.nio.file.Path.of("").toAbsolutePath());
    }

    /** {@link #parse(String, String)} with relative paths confined to {@code workingDir} (tests give a temporary one). */
    static PipelineConfig parse(String yaml, String where, java.nio.file.Path workingDir) {
        PipelineConfig c;
        try {
            // tags and nesting checked (SafeYaml); one document, as readValue(String) reads
            try (com.fasterxml.jackson.core.JsonParser p = io.sparklora.util.SafeYaml.parser(YAML, YAML.getFactory().createParser(yaml))) {
                c = YAML.readValue(p, PipelineConfig.class);
            }
        } catch (UnrecognizedPropertyException e) {
            String known = e.getKnownPropertyIds() == null ? "" : e.getKnownPropertyIds().stream().map(Object::toString).sorted()
                    .collect(Collectors.joining(", "));
            throw new IllegalArgumentException(where + ": " + inJob(yaml, e.getPath()) + "unknown key '" + keyPath(e.getPath()) + "' (line "
                    + e.getLocation().getLineNr() + "); known keys here: " + known);
        } catch (MismatchedInputException e) {
            throw new IllegalArgumentException(where + ": " + inJob(yaml, e.getPath()) + "bad value for '" + keyPath(e.getPath()) + "' (line "
                    + e.getLocation().getLineNr() + "): " + e.getOriginalMessage().split("\n")[0]);
        } catch (com.fasterxml.jackson.databind.JsonMappingException e) {
            if (e.getCause() instanceof UnknownKey u) {
                if (!inJob(yaml, e.getPath()).isEmpty()) {
                    // a job's adapter section: the path names the job; the key is the any-setter's
                    throw new IllegalArgumentException(where + ": " + inJob(yaml, e.getPath()) + "unknown key '" + u.path + "'; known keys here: " + u.known);
                }
                // the any-setter that threw has no location; the key's own line is where the typo is
                throw new IllegalArgumentException(where + ": " + u.getMessage() + " (line " + lineOf(yaml, u.path) + "); known keys here: " + u.known);
            }
            String line = e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")";
            throw new IllegalArgumentException(where + ": " + e.getOriginalMessage().split("\n")[0] + line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            String line = e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")";
            throw new IllegalArgumentException(where + ": not valid YAML: " + e.getOriginalMessage().split("\n")[0] + line);
        } catch (IOException e) {
            throw new IllegalArgumentException(where + ": not valid YAML: " + e.getMessage().split("\n")[0]);
        }
        if (c == null) throw new IllegalArgumentException(where + ": empty pipeline config");
        String writtenOutput = c.output;     // the default, runs/<name>, is not the file's to answer for
        c.validate(where);
        c.checkPaths(where, workingDir, writtenOutput);
        return c;
    }

    /** The key's path below the job when {@code path} is inside {@code jobs:} (where {@link #inJob} names the job), else all of it. */
    private static String keyPath(List<com.fasterxml.jackson.databind.JsonMappingException.Reference> path) {
        boolean job = path.size() > 2 && "jobs".equals(path.get(0).getFieldName()) && path.get(1).getFieldName() == null;
        return path.subList(job ? 2 : 0, path.size()).stream().map(r -> r.getFieldName() == null ? "[" + r.getIndex() + "]" : r.getFieldName())
                .collect(Collectors.joining("."));
    }

    /** "job 'NAME' (jobs[i]): " when {@code path} leads into an entry of {@code jobs:} (the name read from the YAML), else "". */
    private static String inJob(String yaml, List<com.fasterxml.jackson.databind.JsonMappingException.Reference> path) {
        if (path.size() < 2 || !"jobs".equals(path.get(0).getFieldName()) || path.get(1).getFieldName() != null) return "";
        int i = path.get(1).getIndex();
        String name = null;
        try {
            com.fasterxml.jackson.databind.JsonNode n = io.sparklora.util.SafeYaml.readTree(YAML, yaml.getBytes(java.nio.charset.StandardCharsets.UTF_8))
                    .path("jobs").path(i).path("name");
            if (n.isTextual()) name = n.asText();
        } catch (IOException | RuntimeException e) {
            // the entry's name is only for the message
        }
        return (name != null ? "job '" + name + "' " : "job ") + "(jobs[" + i + "]): ";
    }

    private void checkPaths(String where, java.nio.file.Path workingDir, String writtenOutput) {
        var scope = new io.sparklora.util.PathScope(new org.apache.hadoop.fs.Path(workingDir.toUri()), where, "the working directory",
                allowOutside, new Configuration());
        String[] values = {writtenOutput, datasets.adapt, datasets.pretrain, tokenizer.path, base.path, fullFinetune.spillDir};
        for (int i = 0; i < values.length; i++) {
            // the output is where the run writes: a runs/ directory linked to a scratch disk is common and fine, so only
            // its '..' segments are checked, not where symbolic links lead
            if (i == 0 && values[0] != null && io.sparklora.util.PathScope.staysBelow(values[0])) continue;
            try {
                scope.check(PATH_KEYS.get(i), values[i]);
            } catch (IOException e) {
                throw new IllegalArgumentException(e.getMessage(), e);
            }
        }
        if (jobs == null) return;
        for (JobSection j : jobs) {
            try {
                scope.check("jobs[" + j.name + "].dataset", j.dataset);
            } catch (IOException e) {
                throw new IllegalArgumentException(e.getMessage(), e);
            }
        }
    }

    /** The adapter this config trains: method from {@code adapter.type} (and PEFT's flags), its settings from the adapter and train sections. */
    public io.sparklora.adapters.AdapterConfig adapterConfig() { return adapterConfig("pipeline config"); }

    private io.sparklora.adapters.AdapterConfig adapterConfig(String where) { return adapterConfig(where, adapter, "adapter"); }

    /** @param key how the messages name the section ({@code adapter}, or a job's) */
    private io.sparklora.adapters.AdapterConfig adapterConfig(String where, AdapterSection a, String key) {
        String type;
        io.sparklora.adapters.AdapterMethod method;
        try {
            type = io.sparklora.adapters.AdapterSpecs.resolveType(a.type, a.settings);
            method = io.sparklora.adapters.AdapterMethods.get(type);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + key + ".type: " + e.getMessage());
        }
        Map<String, String> options = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : a.settings.entrySet()) {
            if (io.sparklora.adapters.AdapterSpecs.isMethodFlag(e.getKey())) continue;
            if (!io.sparklora.adapters.AdapterConfig.hasSetting(method, e.getKey())) {
                throw new IllegalArgumentException(where + ": unknown key '" + key + "." + e.getKey() + "' for adapter type " + type
                        + "; known keys here: type, " + String.join(", ", method.settingNames()));
            }
            options.put(e.getKey(), e.getValue());
        }
        for (Map.Entry<String, String> e : train.methodSettings.entrySet()) {
            if (!method.optionDefaults().containsKey(e.getKey())) {
                throw new IllegalArgumentException(where + ": unknown key 'train." + e.getKey() + "' (adapter type " + type
                        + " has no such setting; its own settings: " + String.join(", ", new java.util.TreeSet<>(method.optionDefaults().keySet())) + ")");
            }
            options.put(e.getKey(), e.getValue());
        }
        try {
            var c = new io.sparklora.adapters.AdapterConfig(type, a.r, a.alpha, a.dropout, a.targets, a.rslora, a.bias, a.init).withOptions(options);
            method.validate(c);
            // the token ids are checked here unless they are the dataset's labels, which the runner resolves
            if (!c.option(io.sparklora.adapters.AdapterConfig.TRAINABLE_TOKENS).equals("labels")) c.trainableTokenIndices();
            return c;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + key + ": " + e.getMessage());
        }
    }

    /** The {@code glora_search} section as the stage takes it (checked). */
    public io.sparklora.spark.glora.GloraSearchStage.Spec gloraSearchSpec() {
        var g = gloraSearch;
        return new io.sparklora.spark.glora.GloraSearchStage.Spec(g.population, g.generations, g.steps, g.sampleFraction,
                g.validationSampleFraction, g.seed);
    }

    private void validate(String where) {
        if (jobs != null) validateJobs(where);      // first: with jobs, lora_drop is off unless written
        var method = adapterConfig(where).adapterMethod();
        io.sparklora.privacy.DpSpec dp;
        try {
            dp = train.dp.spec();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        if (dp.on()) {
            // every stage that trains on the data must be private, or the guarantee does not hold
            if (loraDrop.enabled) throw new IllegalArgumentException(where + ": train.dp: lora_drop trains on the same data without privacy; set lora_drop.enabled: false");
            if (fullFinetune.enabled) throw new IllegalArgumentException(where + ": train.dp: full_finetune trains on the same data without privacy; set full_finetune.enabled: false");
            if (gloraSearch.enabled) throw new IllegalArgumentException(where + ": train.dp: glora_search trains on the same data without privacy; set glora_search.enabled: false");
            if (dp.exampleLevel() && !train.sync.equals("gradients")) throw new IllegalArgumentException(where + ": train.dp.mode example needs train.sync: gradients");
            if (dp.clientLevel() && !train.sync.equals("parameters")) throw new IllegalArgumentException(where + ": train.dp.mode client needs train.sync: parameters");
        }
        try {
            // the same checks TrainSpec makes, here with the config's name
            io.sparklora.train.OuterOptimizer.Spec outer = train.outer.spec();
            io.sparklora.train.TrainSpec.checkOuter(outer, train.sync);
            io.sparklora.train.TrainSpec.checkAggregate(train.aggregate, train.sync, adapterConfig(where), train.averageOptimizerState && !dp.on(), outer, dp);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        if (loraDrop.enabled && train.aggregate.equals("stack")) {
            throw new IllegalArgumentException(where + ": lora_drop retrains with layers sharing one adapter, which train.aggregate: stack"
                    + " (one exact adapter of a higher rank per layer at the end) does not keep; set lora_drop.enabled: false or use aggregate svd or mean");
        }
        if (loraDrop.enabled && !method.supportsSharing()) {
            throw new IllegalArgumentException(where + ": lora_drop shares one adapter among the less important layers, which adapter type "
                    + method.name() + " cannot do; set lora_drop.enabled: false or use lora or lora_fa");
        }
        if (gloraSearch.enabled) {
            if (!method.name().equals("glora")) {
                throw new IllegalArgumentException(where + ": glora_search.enabled is true, but glora_search searches the per-layer structures of "
                        + "GLoRA and adapter.type is " + method.name() + "; set adapter.type: glora or glora_search.enabled: false");
            }
            try {
                gloraSearchSpec();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage());
            }
        }
        try {
            io.sparklora.train.Optimizers.StateStorage.parse(fullFinetune.optimizerState, fullFinetune.spillDir, "full_finetune.optimizer_state");
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        if (engine.threads != null && engine.threads < 1) {
            throw new IllegalArgumentException(where + ": engine.threads must be at least 1, got " + engine.threads);
        }
        try {
            baseQuantization();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        try {
            data.objective();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage());
        }
        boolean adaptNeeded = jobs == null || fullFinetune.enabled || jobs.stream().anyMatch(j -> j.dataset == null);
        if (datasets.adapt == null && adaptNeeded) {
            throw new IllegalArgumentException(where + ": datasets.adapt (the dataset manifest to adapt to) is required"
                    + (jobs == null ? "" : " (the dataset of every job that names none, and of full_finetune)"));
        }
        if (base.path == null && datasets.pretrain == null) {
            throw new IllegalArgumentException(where + ": give base.path (a Hugging Face model directory) or datasets.pretrain (to pretrain a small base)");
        }
        if (!name.matches("[A-Za-z0-9._-]+")) throw new IllegalArgumentException(where + ": name '" + name + "' may use only letters, digits, '.', '_' and '-'");
        if (output == null) output = "runs/" + name;
    }
}
