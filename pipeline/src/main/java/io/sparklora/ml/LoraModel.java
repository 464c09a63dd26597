package io.sparklora.ml;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.AdapterDirectory;
import io.sparklora.api.AdapterSet;
import io.sparklora.api.AdapterSetTask;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.data.DatasetManifest;
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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
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
 * <p><b>Several adapters, one per row.</b> {@link #addAdapter(String, LoraModel)} and
 * {@link #addAdapter(String, String)} add named adapters trained on the same base; this model's own adapter is named
 * {@code adapterName} (default "default"). With {@code adapterCol} set, each row uses the adapter that column names,
 * {@code "__base__"} ({@link AdapterSet#BASE}) or null the base alone, and a task meeting any other name fails with
 * that name and the known ones. The rows are served {@code batchSize} at a time, each batch one mixed-adapter pass
 * (the base matmuls once for all rows, each row adding only its adapter's ΔW, unmerged: {@link AdapterSetTask});
 * row k's output equals what the single-adapter model of its adapter gives it (or the base alone), to float
 * rounding. Generation decodes a batch's rows of any lengths together over one KV cache. Adapters that train
 * biases or token rows (which live in the base) cannot be mixed and are refused.
 *
 * <p>Saved ({@code write().save(path)}) as {@code path/adapter/} in Hugging Face PEFT layout (loadable by PEFT
 * and by spark-lora's CLI), each added adapter as {@code path/adapters/<name>/} in the same layout, plus
 * {@code path/params.json} with this model's params, the added adapters' names ({@code "adapters"}) and the training
 * summary; no Java serialization. {@link #load} reads it back (a directory without {@code adapters/} too).
 */
public final class LoraModel extends Model<LoraModel> implements LoraParams, MLWritable {
    private static final long serialVersionUID = 1L;
    /** The params file of a saved model. */
    public static final String PARAMS_FILE = ParamsJson.FILE;
    /** The adapter directory of a saved model. */
    public static final String ADAPTER_DIR = "adapter";
    /** The directory of a saved model's added adapters, one {@code <name>/} each. */
    public static final String ADAPTERS_DIR = "adapters";

    /** An added adapter: its method and settings, and its state tensors' values. */
    private record Member(AdapterConfig config, AdapterTensors tensors) implements java.io.Serializable {}

    private final String uid;
    private final LoraParamSet params;
    private final AdapterConfig adapterConfig;
    private final AdapterTensors tensors;
    private final LoraTrainingSummary summary;
    private final LinkedHashMap<String, Member> added = new LinkedHashMap<>();
    private final Param<String> adapterCol, adapterName;
    private transient Broadcast<AdapterTensors> broadcast;
    private transient Broadcast<List<AdapterTensors>> setBroadcast;

    LoraModel(String uid, AdapterConfig adapterConfig, AdapterTensors tensors, LoraTrainingSummary summary) {
        this.uid = uid;
        this.params = new LoraParamSet(this);
        for (var p : params.defaults()) setDefault(p);
        this.adapterCol = new Param<>(this, "adapterCol", "optional: column (string) naming each row's adapter for transform: adapterName, "
                + "an added adapter, or " + AdapterSet.BASE + " or null for the base alone; empty: every row uses this model's adapter");
        this.adapterName = new Param<>(this, "adapterName", "the name rows of adapterCol give this model's own adapter");
        setDefault(adapterCol, "");
        setDefault(adapterName, "default");
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
    /** Rows per forward pass of transform with an adapter column (also the estimator's batch size). */
    public LoraModel setBatchSize(int v) { set(batchSize(), v); return this; }

    /** Model-only param: the column naming each row's adapter (empty: none, every row uses this model's adapter). */
    public Param<String> adapterCol() { return adapterCol; }
    /** Model-only param: this model's own adapter's name in {@code adapterCol} (default "default"). */
    public Param<String> adapterName() { return adapterName; }
    public String getAdapterCol() { return getOrDefault(adapterCol); }
    public String getAdapterName() { return getOrDefault(adapterName); }
    public LoraModel setAdapterCol(String v) { set(adapterCol, v); return this; }
    public LoraModel setAdapterName(String v) {
        checkName(v);
        set(adapterName, v);
        return this;
    }

    /**
     * Adds {@code other}'s own adapter (not those added to it) under {@code name}, for rows of {@code adapterCol} to
     * name; returns this model. {@code other} must have the same {@code basePath}.
     */
    public LoraModel addAdapter(String name, LoraModel other) {
        checkNewName(name);
        String mine = HadoopFiles.path(getBasePath()).toString(), theirs = HadoopFiles.path(other.getBasePath()).toString();
        if (!mine.equals(theirs)) {
            throw new IllegalArgumentException(uid + ": cannot add " + other.uid() + " as adapter '" + name + "': its basePath " + theirs
                    + " differs from this model's " + mine + "; adapters served together must share one base");
        }
        AdapterSet.requireMixable(other.adapterConfig, uid + ": adapter '" + name + "' (" + other.uid() + ")");
        return add(name, new Member(other.adapterConfig, other.tensors));
    }

    /**
     * Adds the PEFT adapter directory at {@code peftAdapterUri} (any Hadoop URI) under {@code name}, for rows of
     * {@code adapterCol} to name; returns this model. It is read now, on the driver, and must have been trained on
     * {@code basePath} (checked by content hash when the base it names is a readable model directory, else by the
     * tensor shapes).
     */
    public LoraModel addAdapter(String name, String peftAdapterUri) {
        checkNewName(name);
        Configuration conf = conf();
        try {
            BaseModelRef base = BaseModelRef.of(conf, getBasePath());
            AttachedAdapter a = AdapterSet.load(conf, peftAdapterUri, base, BaseModelCache.model(base, conf), TrainSpec.ADAPTER_NAME);
            return add(name, new Member(a.config(), AdapterTensors.ofValues(a.stateTensors())));
        } catch (IOException e) {
            throw new UncheckedIOException(uid + ": adapter '" + name + "' from " + peftAdapterUri + ": " + e.getMessage(), e);
        }
    }

    private synchronized LoraModel add(String name, Member m) {
        added.put(name, m);
        setBroadcast = null;
        return this;
    }

    /** The names rows of {@code adapterCol} may give: {@code adapterName} first, then the added adapters in the order added. */
    public List<String> adapterNames() {
        List<String> names = new ArrayList<>();
        names.add(getAdapterName());
        names.addAll(added.keySet());
        return names;
    }

    /** A name an adapter can have: a directory name of letters, digits, '_', '-' and '.', not {@link AdapterSet#BASE}. */
    private void checkName(String name) {
        if (name == null || !name.matches("[A-Za-z0-9][A-Za-z0-9_.-]*") || name.equals(AdapterSet.BASE)) {
            throw new IllegalArgumentException(uid + ": adapter name '" + name + "' is not allowed (letters, digits, '_', '-', '.'; "
                    + AdapterSet.BASE + " means the base alone)");
        }
    }

    private void checkNewName(String name) {
        checkName(name);
        if (adapterNames().contains(name)) throw new IllegalArgumentException(uid + ": an adapter named '" + name + "' is already in " + adapterNames());
    }

    @Override
    public StructType transformSchema(StructType schema) {
        StructType out = outputSchema(schema, uid);
        if (!getAdapterCol().isEmpty()) LoraParams.requireStringColumn(schema, getAdapterCol(), "adapterCol", uid);
        return out;
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
        List<String> fields = Arrays.asList(rows.schema().fieldNames());
        int input = fields.indexOf(transformInputCol());
        SerializableConfiguration sconf = new SerializableConfiguration(conf);
        TransformTask.Outputs outputs = new TransformTask.Outputs(tok, fingerprint, sconf, List.of(getLabels()), DatasetManifest.DEFAULT_LABEL_PROMPT,
                !getProbabilityCol().isEmpty(), getMaxNewTokens());
        JavaRDD<Row> result;
        if (getAdapterCol().isEmpty()) {
            result = rows.javaRDD().mapPartitions(new TransformTask(base, sconf, adapterConfig, broadcast(sc), input, outputs));
        } else {
            checkName(getAdapterName());
            LinkedHashMap<String, AdapterConfig> configs = new LinkedHashMap<>();
            configs.put(getAdapterName(), adapterConfig);
            for (var e : added.entrySet()) {
                if (configs.put(e.getKey(), e.getValue().config()) != null) {
                    throw new IllegalArgumentException(uid + ": adapterName '" + e.getKey() + "' is also the name of an added adapter; rename one");
                }
            }
            configs.forEach((n, c) -> AdapterSet.requireMixable(c, uid + ": adapter '" + n + "'"));
            TransformTask.SetSource source = new TransformTask.SetSource(base, sconf, configs, setBroadcast(sc));
            result = rows.javaRDD().mapPartitions(new AdapterSetTask(source, outputs, input, fields.indexOf(getAdapterCol()), getBatchSize(),
                    outputs.width()));
        }
        return spark.createDataFrame(result, out);
    }

    /** One broadcast of the adapter tensors per model object (kept for later transforms; lazily evaluated plans may reuse it). */
    private synchronized Broadcast<AdapterTensors> broadcast(JavaSparkContext sc) {
        if (broadcast == null) broadcast = sc.broadcast(tensors);
        return broadcast;
    }

    /** One broadcast of every adapter's tensors, this model's first, then the added ones in order (made again after an add). */
    private synchronized Broadcast<List<AdapterTensors>> setBroadcast(JavaSparkContext sc) {
        if (setBroadcast == null) {
            List<AdapterTensors> all = new ArrayList<>();
            all.add(tensors);
            for (Member m : added.values()) all.add(m.tensors());
            setBroadcast = sc.broadcast(all);
        }
        return setBroadcast;
    }

    @Override
    public LoraModel copy(ParamMap extra) {
        LoraModel m = new LoraModel(uid, adapterConfig, tensors, summary);
        m.added.putAll(added);
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
            String json = ParamsJson.write(paramsJson());
            HadoopFiles.writeDirectoryFromLocal(conf, path, local -> {
                Files.createDirectories(local);
                Files.writeString(local.resolve(ParamsJson.FILE), json);
                PeftAdapterFormat.save(attached(base, conf, adapterConfig, tensors), local.resolve(ADAPTER_DIR), base.uri());
                for (var e : added.entrySet()) {
                    Member m = e.getValue();
                    PeftAdapterFormat.save(attached(base, conf, m.config(), m.tensors()), local.resolve(ADAPTERS_DIR).resolve(e.getKey()), base.uri());
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save " + uid + " to " + path + ": " + e.getMessage(), e);
        }
    }

    /** The adapter on a fresh model over the JVM's cached base, its tensors loaded (to save it). */
    private static AttachedAdapter attached(BaseModelRef base, Configuration conf, AdapterConfig config, AdapterTensors values) {
        AttachedAdapter a = AttachedAdapter.attach(BaseModelCache.model(base, conf), TrainSpec.ADAPTER_NAME, config, 0);
        values.copyInto(a.stateTensors());
        return a;
    }

    /** The PEFT adapter at {@code uri}, read onto a fresh model over the JVM's cached base. */
    private static Member readAdapter(Configuration conf, BaseModelRef base, String uri) {
        AttachedAdapter a = AdapterDirectory.attach(conf, uri, BaseModelCache.model(base, conf));
        return new Member(a.config(), AdapterTensors.ofValues(a.stateTensors()));
    }

    private ObjectNode paramsJson() throws IOException {
        ObjectNode o = ParamsJson.encode(this, LoraModel.class);
        ArrayNode names = o.putArray("adapters");
        added.keySet().forEach(names::add);
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
            BaseModelRef base = BaseModelRef.of(conf, shell.getBasePath());
            Member own = readAdapter(conf, base, adapterUri);
            JsonNode s = o.path("summary");
            double[] trainLoss = new double[s.path("train_loss").size()];
            for (int i = 0; i < trainLoss.length; i++) trainLoss[i] = s.path("train_loss").get(i).asDouble();
            LoraTrainingSummary summary = s.isMissingNode() ? LoraTrainingSummary.none() : new LoraTrainingSummary(trainLoss,
                    s.path("base_validation_loss").asDouble(Double.NaN), s.path("adapted_validation_loss").asDouble(Double.NaN),
                    s.path("validation_tokens").asLong(), s.path("trainable_parameters").asLong());
            LoraModel m = shell.copyValues(new LoraModel(shell.uid, own.config(), own.tensors(), summary), ParamMap.empty());
            for (JsonNode n : o.path("adapters")) {
                String name = n.asText();
                m.checkNewName(name);
                m.add(name, readAdapter(conf, base, HadoopFiles.resolve(HadoopFiles.resolve(path, ADAPTERS_DIR), name)));
            }
            return m;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load a LoraModel from " + path + ": " + e.getMessage(), e);
        }
    }

    private void setValue(Param<Object> p, Object value) {
        set(p, value);
    }

    @Override
    public String toString() {
        return "LoraModel(" + uid + ", " + (adapterConfig == null ? "?" : adapterConfig.method() + " r=" + adapterConfig.r())
                + (added.isEmpty() ? "" : ", added " + added.keySet()) + ")";
    }
}
