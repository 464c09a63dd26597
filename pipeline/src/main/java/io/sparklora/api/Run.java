package io.sparklora.api;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.ParameterReport;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import io.sparklora.report.RenderReport;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Generator;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.IOException;
import java.io.StringReader;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A run output directory (any Hadoop URI) as the pipeline leaves it: {@code report.json},
 * {@code metrics.jsonl}, {@code adapter/} (PEFT layout), {@code lora-drop/adapter/},
 * {@code full-finetune/} and {@code stages/}. Everything is read from storage when asked, so a run that
 * is still going can be polled; {@link #generate} loads the base model (cached per JVM, read-only) and
 * the adapter once per {@code Run} object.
 */
public final class Run {
    private static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
    /** Where {@link #merge()} writes the merged checkpoint. */
    public static final String MERGED_DIR = "merged";

    private final String uri;
    private final Configuration conf;
    private TransformerLM adapted;
    private TransformerLM plain;
    private TextTokenizer tokenizer;

    private Run(String uri, Configuration conf) {
        this.uri = HadoopFiles.path(uri).toString();
        this.conf = conf;
    }

    /**
     * Opens a run directory; the file system settings are the active Spark session's when there is one,
     * else Hadoop's defaults (core-site.xml on the class path).
     */
    public static Run open(String runUri) {
        Configuration conf = SparkSession.getActiveSession().isDefined()
                ? SparkSession.getActiveSession().get().sparkContext().hadoopConfiguration() : new Configuration();
        return open(runUri, conf);
    }

    /** Opens a run directory with the given Hadoop settings. */
    public static Run open(String runUri, Configuration conf) {
        return new Run(runUri, conf);
    }

    /** The run directory, fully qualified. */
    public String uri() { return uri; }

    private String child(String name) { return HadoopFiles.resolve(uri, name); }

    private boolean exists(String u) {
        try {
            return HadoopFiles.exists(conf, u);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /**
     * report.json: {@code name}, {@code output}, {@code spark}, one object per stage that ran
     * ({@code tokenizer}, {@code tokenize}, {@code pretrain}, {@code train}, {@code lora_drop},
     * {@code full_finetune}, {@code eval}) each with {@code status} and {@code seconds}, and {@code seconds}.
     *
     * @throws IllegalStateException when the run has no report.json yet
     */
    public JsonNode report() {
        String f = child(RenderReport.REPORT_JSON);
        if (!exists(f)) throw new IllegalStateException(uri + ": no " + RenderReport.REPORT_JSON + " (not a spark-lora run directory, or no stage has run)");
        try {
            return JSON.readTree(HadoopFiles.readString(conf, f));
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    /** A stage's status in report.json ({@code done}, {@code skipped}, {@code failed}), or {@code absent}. Stage names as in the CLI or the runner. */
    public String stageStatus(String stage) {
        String key = stage.replace('-', '_');
        if (key.equals("evaluate")) key = "eval";
        return report().path(key).path("status").asText("absent");
    }

    /** metrics.jsonl (empty when no stage has logged yet); malformed lines are skipped with a warning. */
    public Metrics metrics() {
        String f = child(RenderReport.METRICS_JSONL);
        if (!exists(f)) return new Metrics(List.of());
        try {
            return new Metrics(RenderReport.readMetrics(new StringReader(HadoopFiles.readString(conf, f)), f));
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    /**
     * The trained adapter's directory ({@code <run>/adapter}, PEFT layout: adapter_config.json,
     * adapter_model.safetensors, spark_lora.json).
     *
     * @throws IllegalStateException when the train stage has not written it
     */
    public String adapterDir() {
        String a = child("adapter");
        if (!AdapterDirectory.exists(conf, a)) throw new IllegalStateException(uri + ": no adapter yet (run the train stage)");
        return a;
    }

    /** LoRA-drop's reduced adapter ({@code <run>/lora-drop/adapter}), when that stage ran. */
    public Optional<String> loraDropAdapterDir() { return adapterIfPresent(child("lora-drop/adapter")); }

    /** The fully fine-tuned baseline checkpoint ({@code <run>/full-finetune}, Hugging Face layout), when that stage ran. */
    public Optional<String> fullFinetuneDir() { return modelIfPresent(child("full-finetune")); }

    /** The merged checkpoint ({@code <run>/merged}, base + adapter, Hugging Face layout), when {@link #merge()} wrote it. */
    public Optional<String> mergedDir() { return modelIfPresent(child(MERGED_DIR)); }

    private Optional<String> adapterIfPresent(String u) { return AdapterDirectory.exists(conf, u) ? Optional.of(u) : Optional.empty(); }

    private Optional<String> modelIfPresent(String u) { return exists(HadoopFiles.resolve(u, "config.json")) ? Optional.of(u) : Optional.empty(); }

    /**
     * Writes base + adapter as one plain Hugging Face checkpoint (float32; the base's config.json kept as it was,
     * its generation config, chat template and tokenizer files copied along) to
     * {@code <run>/merged}, atomically, and returns its URI (what {@code spark-lora merge} does).
     */
    public String merge() {
        String target = child(MERGED_DIR);
        TransformerLM model = baseModel();
        AttachedAdapter a = AdapterDirectory.attach(conf, adapterDir(), model);
        a.merge();                       // the merged weights get private copies; the cached base is untouched
        a.detachMerged();
        try {
            java.nio.file.Path tokDir = java.nio.file.Files.createTempDirectory("spark-lora-merge-tok-");
            try {
                // the base's own companions (generation config, chat template, ...), then the run's tokenizer over them
                HfModelDirectory.fetchCompanions(conf, AdapterDirectory.baseModel(conf, adapterDir()), tokDir);
                java.nio.file.Files.write(tokDir.resolve("tokenizer.json"), HadoopFiles.readBytes(conf, tokenizerUri()));
                HadoopFiles.writeDirectoryFromLocal(conf, target, local -> HfModelDirectory.save(model, local, DataType.FLOAT, tokDir));
            } finally {
                HadoopFiles.deleteLocalTree(tokDir);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": " + e.getMessage(), e);
        }
        return target;
    }

    /**
     * LoRA-drop's layer importance from report.json ({@code lora_drop.importance}): targeted module →
     * its share of the summed importance (the values sum to 1), most important first; empty when the
     * stage did not run.
     */
    public Map<String, Double> loraDropImportance() {
        Map<String, Double> m = new LinkedHashMap<>();
        report().path("lora_drop").path("importance").fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asDouble()));
        return m;
    }

    /** The trained adapter's config, base model and tensor shapes. */
    public AdapterInfo adapterInfo() {
        return AdapterDirectory.info(conf, adapterDir());
    }

    /** Trainable vs all parameters of the train stage (report.json {@code train.trainable_params}/{@code total_params}). */
    public ParameterReport parameters() {
        JsonNode t = report().path("train");
        if (!t.has("trainable_params")) throw new IllegalStateException(uri + ": report.json has no train figures yet (run the train stage)");
        return new ParameterReport(t.get("trainable_params").asLong(), t.get("total_params").asLong());
    }

    /** Greedy continuation of {@code prompt} (at most {@code maxTokens} new tokens, stopping at end-of-text) by the adapted model, in this JVM. */
    public synchronized String generate(String prompt, int maxTokens) {
        if (adapted == null) {
            TransformerLM m = baseModel();
            AdapterDirectory.attach(conf, adapterDir(), m);
            adapted = m;
        }
        return continueWith(adapted, prompt, maxTokens);
    }

    /** The same continuation by the base model without the adapter, for comparison. */
    public synchronized String generateWithBase(String prompt, int maxTokens) {
        if (plain == null) plain = baseModel();
        return continueWith(plain, prompt, maxTokens);
    }

    private String continueWith(TransformerLM model, String prompt, int maxTokens) {
        if (maxTokens < 0) throw new IllegalArgumentException("maxTokens must be >= 0, got " + maxTokens);
        TextTokenizer tok = tokenizer();
        int[] ids = tok.encode(prompt);
        if (ids.length == 0) throw new IllegalArgumentException("the prompt is empty after tokenization");
        return tok.decode(Generator.greedy(model, ids, maxTokens, tok.eosTokenId()));
    }

    /** The base model the adapter was trained on, from the base cache (read-only, copy-on-write). */
    private TransformerLM baseModel() {
        String base = AdapterDirectory.baseModel(conf, adapterDir());
        try {
            return BaseModelCache.model(BaseModelRef.of(conf, base), conf);
        } catch (IOException e) {
            throw new UncheckedIOException("base model " + base + ": " + e.getMessage(), e);
        }
    }

    /** The run's tokenizer: report.json's {@code tokenizer.path}, else the base model's tokenizer.json. */
    String tokenizerUri() {
        String t = report().path("tokenizer").path("path").asText("");
        return t.isEmpty() ? HadoopFiles.resolve(AdapterDirectory.baseModel(conf, adapterDir()), "tokenizer.json") : t;
    }

    private TextTokenizer tokenizer() {
        if (tokenizer == null) {
            try {
                tokenizer = TokenizerCache.load(conf, tokenizerUri());
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
        }
        return tokenizer;
    }

    @Override
    public String toString() { return "Run(" + uri + ")"; }
}
