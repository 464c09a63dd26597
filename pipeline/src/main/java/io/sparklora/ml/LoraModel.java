package io.sparklora.ml;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.AdapterDirectory;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.data.DatasetManifest;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TrainSpec;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.ml.Model;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWritable;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.List;

/**
 * A trained adapter over a frozen base, as a spark.ml {@link Model}: {@link #transform} adds, for each row's
 * text ({@code promptCol} when set, else {@code inputCol}),
 * <ul>
 *   <li>without labels: {@code outputCol} (default "continuation"), the greedy continuation of up to
 *       {@code maxNewTokens} tokens;</li>
 *   <li>with {@code labels}: {@code outputCol} (default "prediction"), the label whose tokens are most likely
 *       after {@code text + "\nLabel:"}, and {@code probabilityCol} (default "probability"), its softmax
 *       probability among the labels.</li>
 * </ul>
 * The work runs on the executors ({@code mapPartitions}): each executor JVM loads the base once from
 * {@code basePath} and shares it read-only; the adapter tensors (small) travel as a broadcast.
 *
 * <p>Saved ({@code write().save(path)}) as {@code path/adapter/} in Hugging Face PEFT layout (loadable by PEFT
 * and by spark-lora's CLI) plus {@code path/params.json} with this model's params and training summary;
 * no Java serialization. {@link #load} reads it back.
 */
public final class LoraModel extends Model<LoraModel> implements LoraParams, MLWritable {
    private static final long serialVersionUID = 1L;
    /** The params file of a saved model. */
    public static final String PARAMS_FILE = ParamsJson.FILE;
    /** The adapter directory of a saved model. */
    public static final String ADAPTER_DIR = "adapter";

    private final String uid;
    private final LoraParamSet params;
    private final AdapterConfig adapterConfig;
    private final AdapterTensors tensors;
    private final LoraTrainingSummary summary;
    private transient Broadcast<AdapterTensors> broadcast;

    LoraModel(String uid, AdapterConfig adapterConfig, AdapterTensors tensors, LoraTrainingSummary summary) {
        this.uid = uid;
        this.params = new LoraParamSet(this);
        for (var p : params.defaults()) setDefault(p);
        this.adapterConfig = adapterConfig;
        this.tensors = tensors;
        this.summary = summary;
    }

    @SuppressWarnings("unchecked")
    private void setDefault(org.apache.spark.ml.param.ParamPair<?> p) {
        setDefault((Param<Object>) p.param(), p.value());
    }

    @Override public String uid() { return uid; }
    @Override public LoraParamSet loraParams() { return params; }

    /** The adapter's method, rank, alpha, targets and settings. */
    public AdapterConfig adapterConfig() { return adapterConfig; }

    /** What fit measured (empty for a model loaded from a directory written without one). */
    public LoraTrainingSummary summary() { return summary; }

    public LoraModel setInputCol(String v) { set(inputCol(), v); return this; }
    public LoraModel setPromptCol(String v) { set(promptCol(), v); return this; }
    public LoraModel setOutputCol(String v) { set(outputCol(), v); return this; }
    public LoraModel setProbabilityCol(String v) { set(probabilityCol(), v); return this; }
    public LoraModel setMaxNewTokens(int v) { set(maxNewTokens(), v); return this; }
    public LoraModel setLabels(String[] v) { set(labels(), v); return this; }
    public LoraModel setTokenizerPath(String v) { set(tokenizerPath(), v); return this; }

    @Override
    public StructType transformSchema(StructType schema) {
        return outputSchema(schema, uid);
    }

    @Override
    public Dataset<Row> transform(Dataset<?> dataset) {
        StructType out = transformSchema(dataset.schema());
        SparkSession spark = dataset.sparkSession();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Configuration conf = sc.hadoopConfiguration();
        String tok = getTokenizerPath();
        String fingerprint;
        BaseModelRef base;
        try {
            fingerprint = TokenizerCache.load(conf, tok).fingerprint();
            base = BaseModelRef.of(conf, getBasePath());
        } catch (IOException e) {
            throw new UncheckedIOException(uid + ": " + e.getMessage(), e);
        }
        Dataset<Row> rows = dataset.toDF();
        int input = Arrays.asList(rows.schema().fieldNames()).indexOf(transformInputCol());
        List<String> labels = List.of(getLabels());
        TransformTask task = new TransformTask(base, tok, fingerprint, new SerializableConfiguration(conf), adapterConfig, broadcast(sc), input,
                labels, DatasetManifest.DEFAULT_LABEL_PROMPT, !getProbabilityCol().isEmpty(), getMaxNewTokens());
        JavaRDD<Row> result = rows.javaRDD().mapPartitions(task);
        return spark.createDataFrame(result, out);
    }

    /** One broadcast of the adapter tensors per model object (kept for later transforms; lazily evaluated plans may reuse it). */
    private synchronized Broadcast<AdapterTensors> broadcast(JavaSparkContext sc) {
        if (broadcast == null) broadcast = sc.broadcast(tensors);
        return broadcast;
    }

    @Override
    public LoraModel copy(ParamMap extra) {
        LoraModel m = new LoraModel(uid, adapterConfig, tensors, summary);
        return copyValues(m, extra).setParent(parent());
    }

    @Override
    public MLWriter write() {
        return new MLWriter() {
            @Override
            public void saveImpl(String path) {
                writeTo(path);
            }
        };
    }

    private void writeTo(String path) {
        Configuration conf = conf();
        try {
            BaseModelRef base = BaseModelRef.of(conf, getBasePath());
            TransformerLM model = BaseModelCache.model(base, conf);
            AttachedAdapter a = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, adapterConfig, 0);
            tensors.copyInto(a.stateTensors());
            String json = ParamsJson.write(paramsJson());
            HadoopFiles.writeDirectoryFromLocal(conf, path, local -> {
                Files.createDirectories(local);
                Files.writeString(local.resolve(ParamsJson.FILE), json);
                PeftAdapterFormat.save(a, local.resolve(ADAPTER_DIR), base.uri());
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save " + uid + " to " + path + ": " + e.getMessage(), e);
        }
    }

    private ObjectNode paramsJson() throws IOException {
        ObjectNode o = ParamsJson.encode(this, LoraModel.class);
        ObjectNode s = o.putObject("summary");
        ArrayNode tl = s.putArray("train_loss");
        for (double v : summary.trainLoss()) tl.add(v);
        s.put("base_validation_loss", summary.baseValidationLoss()).put("adapted_validation_loss", summary.adaptedValidationLoss())
                .put("validation_tokens", summary.validationTokens()).put("trainable_parameters", summary.trainableParameters());
        return o;
    }

    private static Configuration conf() {
        return SparkSession.active().sparkContext().hadoopConfiguration();
    }

    /** Reads a model that {@code write().save(path)} wrote. */
    public static LoraModel load(String path) {
        return read().load(path);
    }

    public static MLReader<LoraModel> read() {
        return new MLReader<>() {
            @Override
            public LoraModel load(String path) {
                return readFrom(path);
            }
        };
    }

    private static LoraModel readFrom(String path) {
        Configuration conf = conf();
        try {
            JsonNode o = ParamsJson.read(conf, path, LoraModel.class);
            String adapterUri = HadoopFiles.resolve(path, ADAPTER_DIR);
            // a bare shell first, to decode the params (their types come from the param objects)
            LoraModel shell = new LoraModel(o.path("uid").asText(Identifiable.randomUID("loraModel")), null, null, LoraTrainingSummary.none());
            ParamsJson.decode(o, shell, shell::setValue, path);
            TransformerLM model = BaseModelCache.model(BaseModelRef.of(conf, shell.getBasePath()), conf);
            AttachedAdapter a = AdapterDirectory.attach(conf, adapterUri, model);
            JsonNode s = o.path("summary");
            double[] trainLoss = new double[s.path("train_loss").size()];
            for (int i = 0; i < trainLoss.length; i++) trainLoss[i] = s.path("train_loss").get(i).asDouble();
            LoraTrainingSummary summary = s.isMissingNode() ? LoraTrainingSummary.none() : new LoraTrainingSummary(trainLoss,
                    s.path("base_validation_loss").asDouble(Double.NaN), s.path("adapted_validation_loss").asDouble(Double.NaN),
                    s.path("validation_tokens").asLong(), s.path("trainable_parameters").asLong());
            LoraModel m = new LoraModel(shell.uid, a.config(), AdapterTensors.ofValues(a.stateTensors()), summary);
            return shell.copyValues(m, ParamMap.empty());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load a LoraModel from " + path + ": " + e.getMessage(), e);
        }
    }

    private void setValue(Param<Object> p, Object value) {
        set(p, value);
    }

    @Override
    public String toString() {
        return "LoraModel(" + uid + ", " + (adapterConfig == null ? "?" : adapterConfig.method() + " r=" + adapterConfig.r()) + ")";
    }
}
