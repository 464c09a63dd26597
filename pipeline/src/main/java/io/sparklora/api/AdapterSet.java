package io.sparklora.api;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.Tensors;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.Generator;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.ndarray.INDArray;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Several adapters on one base model in this JVM, served together: a batch whose rows name different adapters runs as
 * one batch, the base matmuls once for all rows, each row getting only its adapter's contribution, unmerged (any
 * method of the family, DoRA included). {@link #BASE} names the base model alone.
 *
 * <pre>{@code
 * AdapterSet set = AdapterSet.on(conf, "hdfs:///models/gpt2")
 *         .add("spam", "hdfs:///runs/spam/adapter")
 *         .add("support", "hdfs:///runs/support/adapter");
 * List<String> out = set.generate(List.of("Subject: invoice", "Dear team,", "Subject: hello"),
 *                                 List.of("spam", "support", AdapterSet.BASE), 30);
 * }</pre>
 *
 * Each row's text is what that adapter alone would generate. Adapters must have been trained on this base (their
 * {@code base_model_name_or_path} is checked) and must not train token rows or biases, which live in the base model
 * and would reach every row. Not thread-safe.
 */
public final class AdapterSet {
    /** The row name for the base model without any adapter. */
    public static final String BASE = TransformerLM.BASE_ONLY;

    private final Configuration conf;
    private final String baseUri;
    private final TransformerLM model;
    private final BaseModelRef baseRef;
    private final Map<String, AttachedAdapter> adapters = new LinkedHashMap<>();
    private final LinkedHashMap<String, Member> members = new LinkedHashMap<>();
    private TextTokenizer tokenizer;

    private AdapterSet(Configuration conf, String baseUri, BaseModelRef ref, TransformerLM model) {
        this.conf = conf;
        this.baseUri = baseUri;
        this.baseRef = ref;
        this.model = model;
    }

    /** The base model at {@code baseUri} (a Hugging Face model directory), read through the executor-wide base cache. */
    public static AdapterSet on(Configuration conf, String baseUri) {
        try {
            return on(conf, BaseModelRef.of(conf, baseUri));
        } catch (IOException e) {
            throw new UncheckedIOException("base model " + baseUri + ": " + e.getMessage(), e);
        }
    }

    /** The base model {@code ref} names (its content hash already taken, as on an executor), through the executor-wide base cache. */
    public static AdapterSet on(Configuration conf, BaseModelRef ref) {
        return new AdapterSet(conf, ref.uri(), ref, BaseModelCache.model(ref, conf));
    }

    /** Attaches the PEFT adapter at {@code adapterUri} under {@code name}; returns this set. */
    public AdapterSet add(String name, String adapterUri) {
        checkNewName(name);
        adapters.put(name, load(conf, adapterUri, baseRef, model, name));
        members.put(name, new Member(adapterUri, null, null));
        return this;
    }

    /**
     * Attaches an adapter held in memory ({@code tensors}, the values of its state tensors in
     * {@link AttachedAdapter#stateTensors()} order, as {@link AdapterTensors#ofValues} takes them, under whatever adapter
     * name) under {@code name}; returns this set. It must have been trained on this set's base: only the tensor shapes
     * are checked.
     */
    public AdapterSet add(String name, AdapterConfig config, AdapterTensors tensors) {
        checkNewName(name);
        requireMixable(config, "adapter '" + name + "'");
        AttachedAdapter a = AttachedAdapter.attach(model, name, config, 0);
        tensors.copyIntoInOrder(a.stateTensors());
        adapters.put(name, a);
        members.put(name, new Member(null, config, tensors));
        return this;
    }

    private void checkNewName(String name) {
        if (name == null || name.isBlank() || name.equals(BASE)) throw new IllegalArgumentException("adapter name '" + name + "' is reserved or empty");
        if (adapters.containsKey(name)) throw new IllegalArgumentException("an adapter named '" + name + "' is already in the set");
    }

    /**
     * Loads the PEFT adapter at {@code adapterUri} onto {@code model} under {@code name}, after checking that it was
     * trained on {@code base} (when the base it names is a readable model directory, by content hash) and that it can
     * join a mixed-adapter batch ({@link #requireMixable}).
     */
    public static AttachedAdapter load(Configuration conf, String adapterUri, BaseModelRef base, TransformerLM model, String name) {
        // one local copy of the adapter serves the checks and the load
        return AdapterDirectory.withLocalCopy(conf, adapterUri, local -> {
            String trainedOn = AdapterDirectory.baseModel(local);
            String other = contentHashOf(conf, trainedOn);
            if (other != null && !other.equals(base.contentHash())) {
                throw new IllegalArgumentException(adapterUri + " was trained on " + trainedOn + ", whose weights differ from the base " + base.uri());
            }
            // checked before loading: loading would write its biases or token rows into the shared base model
            requireMixable(PeftAdapterFormat.readConfig(local.resolve(PeftAdapterFormat.CONFIG_FILE)), adapterUri);
            return PeftAdapterFormat.load(model, local, name);
        });
    }

    /**
     * Refuses an adapter that trains token rows or biases: those live in the base model and would change every row of a
     * mixed batch. {@code what} names the adapter in the message.
     */
    public static void requireMixable(AdapterConfig c, String what) {
        boolean tokens = c.trainableTokenIndices().length > 0;
        if (!c.bias().equals("none") || tokens) {
            throw new IllegalArgumentException(what + ": trains " + (tokens ? "token rows" : "biases (bias: " + c.bias() + ")")
                    + ", which belong to the base model and would change every row of a mixed batch; it cannot join an adapter set");
        }
    }

    /**
     * Each row of {@code df} with a column appended: the greedy continuation (at most {@code maxNewTokens} new tokens)
     * of its {@code inputCol} text under the adapter its {@code adapterCol} names ({@link #BASE} or null: the base
     * model). Runs on the executors: each task rebuilds this set from the same locations (the base read once per
     * executor JVM) and serves its partition {@code batchRows} rows at a time, each batch one mixed-adapter pass with a
     * KV cache ({@link AdapterSetTask}; adapters added from memory travel with the task). Lazy, like any DataFrame
     * transformation; a row naming an adapter outside the set fails its task with that name and the set's names.
     */
    public Dataset<Row> generate(Dataset<Row> df, String inputCol, String adapterCol, String outputCol, int maxNewTokens, int batchRows) {
        if (maxNewTokens < 0) throw new IllegalArgumentException("maxNewTokens must be at least 0, got " + maxNewTokens);
        return mapRows(df, inputCol, adapterCol, outputCol, maxNewTokens, batchRows, DataTypes.StringType);
    }

    /** As {@link #generate(Dataset, String, String, String, int, int)}, appending each text's mean token loss (nats) under its row's adapter. */
    public Dataset<Row> meanLoss(Dataset<Row> df, String inputCol, String adapterCol, String outputCol, int batchRows) {
        return mapRows(df, inputCol, adapterCol, outputCol, -1, batchRows, DataTypes.DoubleType);
    }

    private Dataset<Row> mapRows(Dataset<Row> df, String inputCol, String adapterCol, String outputCol, int maxNewTokens, int batchRows,
                                 org.apache.spark.sql.types.DataType outType) {
        if (batchRows < 1) throw new IllegalArgumentException("batchRows must be at least 1, got " + batchRows);
        StructType schema = df.schema();
        List<String> fields = Arrays.asList(schema.fieldNames());
        for (String c : List.of(inputCol, adapterCol)) {
            if (!fields.contains(c)) throw new IllegalArgumentException("no column '" + c + "' among " + fields);
            if (!schema.apply(c).dataType().equals(DataTypes.StringType)) {
                throw new IllegalArgumentException("column '" + c + "' must be a string, it is " + schema.apply(c).dataType().simpleString());
            }
        }
        if (fields.contains(outputCol)) throw new IllegalArgumentException("column '" + outputCol + "' already exists");
        AdapterSetTask.Batch batch = maxNewTokens >= 0 ? new GenerateBatch(maxNewTokens) : new MeanLossBatch();
        AdapterSetTask task = new AdapterSetTask(new Rebuild(baseRef, new LinkedHashMap<>(members), new SerializableConfiguration(conf)), batch,
                fields.indexOf(inputCol), fields.indexOf(adapterCol), batchRows, 1);
        StructType out = schema.add(outputCol, outType, true);
        return df.sparkSession().createDataFrame(df.javaRDD().mapPartitions(task), out);
    }

    /** The names of the adapters in the set, in the order they were added. */
    public List<String> names() { return List.copyOf(adapters.keySet()); }

    /** The base model with every adapter of the set attached (for passes over token ids: {@link TransformerLM#logits(TokenBatch, String[])}, {@link Generator#sampleBatch}). */
    public TransformerLM model() { return model; }

    /** How an executor rebuilds an adapter set: an adapter directory, or (uri null) a config and its tensors. */
    private record Member(String uri, AdapterConfig config, AdapterTensors tensors) implements java.io.Serializable {}

    /** The set rebuilt on an executor from the same base and members. */
    private record Rebuild(BaseModelRef base, LinkedHashMap<String, Member> members, SerializableConfiguration conf) implements AdapterSetTask.Source {
        @Override public AdapterSet open() {
            AdapterSet set = AdapterSet.on(conf.get(), base);
            members.forEach((name, m) -> {
                if (m.uri() != null) set.add(name, m.uri());
                else set.add(name, m.config(), m.tensors());
            });
            return set;
        }
    }

    private record GenerateBatch(int maxNewTokens) implements AdapterSetTask.Batch {
        @Override public Object[][] apply(AdapterSet set, List<String> texts, List<String> names) {
            List<String> out = set.generate(texts, names, maxNewTokens);
            Object[][] values = new Object[out.size()][];
            for (int k = 0; k < values.length; k++) values[k] = new Object[]{out.get(k)};
            return values;
        }
    }

    private record MeanLossBatch() implements AdapterSetTask.Batch {
        @Override public Object[][] apply(AdapterSet set, List<String> texts, List<String> names) {
            double[] loss = set.meanLoss(texts, names);
            Object[][] values = new Object[loss.length][];
            for (int k = 0; k < values.length; k++) values[k] = new Object[]{loss[k]};
            return values;
        }
    }

    /** Greedy continuations (at most {@code maxTokens} new tokens each, stopping at end-of-text), row i with adapter {@code names.get(i)}. */
    public List<String> generate(List<String> prompts, List<String> names, int maxTokens) {
        check(prompts, names);
        TextTokenizer tok = tokenizer();
        int[][] ids = new int[prompts.size()][];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tok.encode(prompts.get(i));
            if (ids[i].length == 0) throw new IllegalArgumentException("prompt " + i + " is empty after tokenization");
        }
        int[][] out = Generator.sampleBatch(model, ids, names.toArray(new String[0]), maxTokens, tok.eosTokenId(), 0, 1, new long[ids.length]);
        List<String> texts = new ArrayList<>();
        for (int[] o : out) texts.add(tok.decode(o));
        return texts;
    }

    /**
     * Each text's mean token loss (nats per predicted token) under its row's adapter: a scoring pass over rows of
     * different adapters in one batch. Texts are right-padded to the longest; padding is not scored.
     */
    public double[] meanLoss(List<String> texts, List<String> names) {
        check(texts, names);
        TextTokenizer tok = tokenizer();
        int[][] ids = new int[texts.size()][];
        int longest = 0;
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tok.encode(texts.get(i));
            if (ids[i].length < 2) throw new IllegalArgumentException("text " + i + " has fewer than 2 tokens: nothing to score");
            longest = Math.max(longest, ids[i].length);
        }
        int t = longest - 1;
        int[][] in = new int[ids.length][t], tg = new int[ids.length][t];
        for (int i = 0; i < ids.length; i++) {
            Arrays.fill(tg[i], TokenBatch.IGNORE);
            for (int j = 0; j < t; j++) {
                in[i][j] = j < ids[i].length - 1 ? ids[i][j] : ids[i][ids[i].length - 1];
                if (j < ids[i].length - 1) tg[i][j] = ids[i][j + 1];
            }
        }
        TokenBatch batch = TokenBatch.of(in, tg);
        INDArray logits = model.logits(batch, names.toArray(new String[0]));
        double[] out = new double[ids.length];
        for (int i = 0; i < ids.length; i++) {
            INDArray rows = logits.get(org.nd4j.linalg.indexing.NDArrayIndex.interval((long) i * t, (long) (i + 1) * t), org.nd4j.linalg.indexing.NDArrayIndex.all());
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(rows, batch.targets().getRow(i), false);
            out[i] = r.meanLoss();
        }
        Tensors.release(logits);
        return out;
    }

    private void check(List<String> rows, List<String> names) {
        if (rows.size() != names.size()) throw new IllegalArgumentException(rows.size() + " rows but " + names.size() + " adapter names");
        for (int i = 0; i < names.size(); i++) {
            String n = names.get(i);
            if (!BASE.equals(n) && !adapters.containsKey(n)) {
                throw new IllegalArgumentException("row " + i + " names adapter '" + n + "', which is not in the set " + adapters.keySet() + " (" + BASE + ": none)");
            }
        }
    }

    private TextTokenizer tokenizer() {
        if (tokenizer == null) {
            try {
                tokenizer = TokenizerCache.load(conf, HadoopFiles.resolve(baseUri, "tokenizer.json"));
            } catch (IOException e) {
                throw new UncheckedIOException(baseUri + ": tokenizer.json: " + e.getMessage(), e);
            }
        }
        return tokenizer;
    }

    /**
     * The content hash of the base an adapter names, when that is a model directory this JVM can read; null when it is
     * not (a hub id such as {@code gpt2}): then only the tensor shapes, checked on load, tie the adapter to this base.
     */
    private static String contentHashOf(Configuration conf, String uri) {
        try {
            if (!HadoopFiles.exists(conf, HadoopFiles.resolve(uri, "config.json"))) return null;
            return BaseModelRef.of(conf, uri).contentHash();
        } catch (IOException | IllegalArgumentException e) {
            return null;
        }
    }
}
