package io.sparklora.ml;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.data.CorpusReader;
import io.sparklora.data.ShardManifest;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.ArrowShards;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.evaluate.EvalTarget;
import io.sparklora.spark.evaluate.EvaluateStage;
import io.sparklora.spark.tokenize.TokenizeSpec;
import io.sparklora.spark.tokenize.TokenizeStage;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.ml.Estimator;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.apache.spark.sql.functions.col;

/**
 * Trains a LoRA-family adapter on a DataFrame's text, as a spark.ml {@link Estimator}:
 *
 * <pre>{@code
 * LoraModel model = new LoraEstimator().setBasePath("hdfs:///models/gpt2").setInputCol("text")
 *         .setAdapter("type=lora,r=8,alpha=16,targets=c_attn").setRounds(60).fit(df);
 * model.setMaxNewTokens(30).transform(prompts).show();
 * }</pre>
 *
 * {@code fit} runs the pipeline's own distributed path: the rows (inputCol, or promptCol/responseCol pairs,
 * plus labelCol when labels are set; rows with a null value are dropped) are written as JSON Lines under
 * {@code workDir}, the tokenize stage ({@link TokenizeStage}) turns them into Arrow shards with a held-out
 * validation share, and the train stage ({@link TrainStage}, synchronous gradient averaging, one AdamW step per
 * round) trains the adapter with the base frozen and cached per executor. The base and adapted models'
 * losses on the held-out rows go into the model's {@link LoraModel#summary()}. The work directory is removed
 * afterwards.
 *
 * <p>{@code write().save(path)} writes the params as {@code path/params.json} (so a {@code Pipeline} holding
 * the estimator can be saved); {@link #load} reads them back.
 */
public final class LoraEstimator extends Estimator<LoraModel> implements LoraParams, org.apache.spark.ml.util.MLWritable {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String uid;
    private final LoraParamSet params;

    public LoraEstimator() {
        this(Identifiable.randomUID("loraEstimator"));
    }

    public LoraEstimator(String uid) {
        this.uid = uid;
        this.params = new LoraParamSet(this);
        for (var p : params.defaults()) setDefault(p);
    }

    @SuppressWarnings("unchecked")
    private void setDefault(org.apache.spark.ml.param.ParamPair<?> p) {
        setDefault((Param<Object>) p.param(), p.value());
    }

    @Override public String uid() { return uid; }
    @Override public LoraParamSet loraParams() { return params; }

    public LoraEstimator setInputCol(String v) { set(inputCol(), v); return this; }
    public LoraEstimator setPromptCol(String v) { set(promptCol(), v); return this; }
    public LoraEstimator setResponseCol(String v) { set(responseCol(), v); return this; }
    public LoraEstimator setLabelCol(String v) { set(labelCol(), v); return this; }
    public LoraEstimator setOutputCol(String v) { set(outputCol(), v); return this; }
    public LoraEstimator setProbabilityCol(String v) { set(probabilityCol(), v); return this; }
    public LoraEstimator setBasePath(String v) { set(basePath(), v); return this; }
    public LoraEstimator setTokenizerPath(String v) { set(tokenizerPath(), v); return this; }
    public LoraEstimator setAdapter(String v) { set(adapter(), v); return this; }
    public LoraEstimator setWorkDir(String v) { set(workDir(), v); return this; }
    public LoraEstimator setLabels(String[] v) { set(labels(), v); return this; }
    public LoraEstimator setRounds(int v) { set(rounds(), v); return this; }
    public LoraEstimator setBatchSize(int v) { set(batchSize(), v); return this; }
    public LoraEstimator setSeqLen(int v) { set(seqLen(), v); return this; }
    public LoraEstimator setPartitions(int v) { set(partitions(), v); return this; }
    public LoraEstimator setWarmup(int v) { set(warmup(), v); return this; }
    public LoraEstimator setMaxNewTokens(int v) { set(maxNewTokens(), v); return this; }
    public LoraEstimator setLr(double v) { set(lr(), v); return this; }
    public LoraEstimator setValidationFraction(double v) { set(validationFraction(), v); return this; }
    public LoraEstimator setSeed(long v) { set(seed(), v); return this; }
    public LoraEstimator setVerbose(boolean v) { set(verbose(), v); return this; }

    private boolean promptResponse() { return !getPromptCol().isEmpty() || !getResponseCol().isEmpty(); }
    private boolean labelled() { return getLabels().length > 0; }

    /** Checks the training columns, and returns the schema the fitted model's transform produces. */
    @Override
    public StructType transformSchema(StructType schema) {
        if (promptResponse()) {
            if (getPromptCol().isEmpty() || getResponseCol().isEmpty()) {
                throw new IllegalArgumentException(uid + ": set both promptCol and responseCol to train on prompt/response pairs");
            }
            if (labelled()) throw new IllegalArgumentException(uid + ": prompt/response training cannot have labels; unset labels or promptCol/responseCol");
            LoraParams.requireStringColumn(schema, getPromptCol(), "promptCol", uid);
            LoraParams.requireStringColumn(schema, getResponseCol(), "responseCol", uid);
        } else {
            LoraParams.requireStringColumn(schema, getInputCol(), "inputCol", uid);
        }
        if (labelled()) LoraParams.requireStringColumn(schema, getLabelCol(), "labelCol", uid);
        return outputSchema(schema, uid);
    }

    @Override
    public LoraModel fit(Dataset<?> dataset) {
        transformSchema(dataset.schema());
        SparkSession spark = dataset.sparkSession();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Configuration conf = sc.hadoopConfiguration();
        String work = workDirFor(sc);
        try {
            return train(dataset, sc, conf, work);
        } catch (IOException e) {
            throw new UncheckedIOException(uid + ": " + e.getMessage(), e);
        } finally {
            try {
                HadoopFiles.delete(conf, work);
            } catch (IOException ignored) {
                // a temporary directory: at worst it stays behind
            }
        }
    }

    private LoraModel train(Dataset<?> dataset, JavaSparkContext sc, Configuration conf, String work) throws IOException {
        PrintStream console = getVerbose() ? System.out : new PrintStream(OutputStream.nullOutputStream());
        // 1. the rows as JSON Lines, and a dataset manifest over them
        List<Column> cols = new ArrayList<>();
        ObjectNode source = JSON.createObjectNode().put("name", "rows").put("uri", HadoopFiles.resolve(work, "rows")).put("format", "jsonl");
        if (promptResponse()) {
            cols.add(col(getPromptCol()).as("prompt"));
            cols.add(col(getResponseCol()).as("response"));
            source.put("prompt_field", "prompt").put("response_field", "response");
        } else {
            cols.add(col(getInputCol()).as("text"));
            source.put("text_field", "text");
        }
        if (labelled()) {
            cols.add(col(getLabelCol()).as("label"));
            source.put("label_field", "label");
        }
        Dataset<Row> rows = dataset.select(cols.toArray(new Column[0])).na().drop();
        rows.write().mode("overwrite").json(HadoopFiles.resolve(work, "rows"));
        ObjectNode manifest = JSON.createObjectNode().put("name", "dataframe").put("description", "rows given to " + uid);
        if (labelled()) {
            var l = manifest.putArray("labels");
            for (String s : getLabels()) l.add(s);
        }
        manifest.putArray("sources").add(source);
        String manifestUri = HadoopFiles.resolve(work, "dataset.json");
        HadoopFiles.writeString(conf, manifestUri, JSON.writeValueAsString(manifest));

        // 2. the tokenize stage
        String shards = HadoopFiles.resolve(work, "shards");
        ShardManifest m = TokenizeStage.run(sc, new TokenizeSpec(manifestUri, getTokenizerPath(), getSeqLen(), getValidationFraction(),
                getPartitions(), shards, CorpusReader.DEFAULT_MAX_LINE_BYTES, getSeed()));
        if (m.rows(ShardManifest.TRAIN) == 0) throw new IllegalArgumentException(uid + ": no training rows (the DataFrame has no non-null text)");

        // 3. the train stage
        BaseModelRef base = BaseModelRef.of(conf, getBasePath());
        TransformerLM model = BaseModelCache.model(base, conf);
        if (m.vocabSize() > model.config().vocabSize()) {
            throw new IllegalArgumentException(uid + ": the tokenizer " + getTokenizerPath() + " has " + m.vocabSize() + " tokens but the base model "
                    + base.uri() + " embeds only " + model.config().vocabSize() + ": use the model's own tokenizer (tokenizerPath)");
        }
        AdapterConfig adapterConfig = AdapterSpecs.parse(getAdapter(), model.config().architecture());
        TrainingOptions o = new TrainingOptions(getRounds(), getBatchSize(), 1, getLr(), 0.0, getWarmup(), "cosine", 0.0, 1.0, getSeed());
        TrainSpec spec = new TrainSpec(base, adapterConfig, Map.of(), getRounds(), 1, "gradients", false, o, 1.0, 0, null);
        MetricsLog log = MetricsLog.inMemory();
        DistributedTrainer.Result r = TrainStage.run(sc, spec, new ArrowShards(shards, m, ShardManifest.TRAIN), log, "train", console, null);
        AdapterTensors tensors = AdapterTensors.ofValues(r.adapter().stateTensors());
        double[] trainLoss = log.lines().stream().filter(l -> l.path("stage").asText().equals("train")).mapToDouble(l -> l.path("loss").asDouble()).toArray();

        // 4. held-out loss of the base and the adapted model (the evaluate stage's distributed pass)
        double baseLoss = Double.NaN, adaptedLoss = Double.NaN;
        long valTokens = 0;
        if (m.rows(ShardManifest.VALIDATION) > 0) {
            EvaluateStage.Result f = EvaluateStage.run(sc, List.of(new EvalTarget("base", base, EvalTarget.Mode.BASE),
                            new EvalTarget("adapted", base, EvalTarget.Mode.ADAPTED)), adapterConfig, Map.of(), tensors,
                    new ArrowShards(shards, m, ShardManifest.VALIDATION), null, getBatchSize());
            baseLoss = f.get("base").loss();
            adaptedLoss = f.get("adapted").loss();
            valTokens = f.get("adapted").tokens();
        }
        LoraTrainingSummary summary = new LoraTrainingSummary(trainLoss, baseLoss, adaptedLoss, valTokens, r.trainableParams());
        console.println(uid + ": " + summary);
        LoraModel fitted = new LoraModel(Identifiable.randomUID("loraModel"), adapterConfig, tensors, summary);
        return copyValues(fitted, ParamMap.empty()).setParent(this);
    }

    /** A fresh directory under workDir (or the default place) for this fit. */
    private String workDirFor(JavaSparkContext sc) {
        String parent = getWorkDir();
        if (parent.isEmpty()) {
            if (sc.master().startsWith("local")) {
                parent = HadoopFiles.path(System.getProperty("java.io.tmpdir") + "/spark-lora-ml").toString();
            } else {
                FileSystem fs = HadoopFiles.fs(new org.apache.hadoop.fs.Path("/"), sc.hadoopConfiguration());
                parent = new org.apache.hadoop.fs.Path("/tmp/spark-lora-ml").makeQualified(fs.getUri(), fs.getWorkingDirectory()).toString();
            }
        }
        return HadoopFiles.resolve(parent, uid + "-" + UUID.randomUUID());
    }

    @Override
    public LoraEstimator copy(ParamMap extra) {
        return copyValues(new LoraEstimator(uid), extra);
    }

    @Override
    public org.apache.spark.ml.util.MLWriter write() {
        LoraEstimator self = this;
        return new org.apache.spark.ml.util.MLWriter() {
            @Override
            public void saveImpl(String path) {
                Configuration conf = SparkSession.active().sparkContext().hadoopConfiguration();
                try {
                    HadoopFiles.writeString(conf, HadoopFiles.resolve(path, ParamsJson.FILE), ParamsJson.write(ParamsJson.encode(self, LoraEstimator.class)));
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot save " + uid + " to " + path + ": " + e.getMessage(), e);
                }
            }
        };
    }

    /** Reads an estimator that {@code write().save(path)} wrote. */
    public static LoraEstimator load(String path) {
        return read().load(path);
    }

    public static org.apache.spark.ml.util.MLReader<LoraEstimator> read() {
        return new org.apache.spark.ml.util.MLReader<>() {
            @Override
            public LoraEstimator load(String path) {
                Configuration conf = SparkSession.active().sparkContext().hadoopConfiguration();
                try {
                    var o = ParamsJson.read(conf, path, LoraEstimator.class);
                    LoraEstimator e = new LoraEstimator(o.path("uid").asText(Identifiable.randomUID("loraEstimator")));
                    ParamsJson.decode(o, e, e::setValue, path);
                    return e;
                } catch (IOException ex) {
                    throw new UncheckedIOException("cannot load a LoraEstimator from " + path + ": " + ex.getMessage(), ex);
                }
            }
        };
    }

    private void setValue(Param<Object> p, Object value) {
        set(p, value);
    }
}
