package io.sparklora.ml;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.api.AdapterSet;
import io.sparklora.api.TinyBase;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.AdapterTensors;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link LoraModel#transform} with an adapter column on local[2]: a DataFrame of two partitions whose rows name a LoRA
 * (the model's own adapter), a DoRA added as a model, the same DoRA added from its PEFT directory, the base and null,
 * served in mixed-adapter batches of 3 rows; each row's output equals that row under the single-adapter model of its
 * adapter (or a model whose adapter is exactly zero, i.e. the base alone).
 */
class LoraModelAdapterColTest {
    static SparkSession spark;
    @TempDir static Path tmp;
    static Path base;
    static LoraModel lora, dora, zero;
    static Dataset<Row> df;

    static final StructType SCHEMA = new StructType().add("id", DataTypes.IntegerType).add("text", DataTypes.StringType)
            .add("adapter", DataTypes.StringType);
    static final String[] TEXTS = {"the river runs to", "a stone falls", "our ship sails past the", "the light", null,
            "the north wind blows", "seven gates", "the", "a stone falls on the hill and the river"};
    static final String[] NAMES = {"dora", "lora", AdapterSet.BASE, "lora", "dora", null, "peft", "dora", "lora"};

    @BeforeAll
    static void setUp() throws Exception {
        spark = SparkSession.builder().config(SparkSetup.defaults(new SparkConf()).setMaster("local[2]").setAppName("ml-adapter-col")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")).getOrCreate();
        base = TinyBase.write(tmp.resolve("base"), 11);
        lora = model(AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")), 1, true);
        dora = model(AdapterConfig.of("dora", 4, 8, List.of("c_attn")), 2, true);
        zero = model(AdapterConfig.lora(4, 8, List.of("c_attn")), 3, false);
        dora.write().save(tmp.resolve("dora-model").toString());
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < TEXTS.length; i++) rows.add(RowFactory.create(i, TEXTS[i], NAMES[i]));
        df = spark.createDataFrame(JavaSparkContext.fromSparkContext(spark.sparkContext()).parallelize(rows, 2), SCHEMA);
    }

    @AfterAll
    static void stop() { spark.stop(); }

    /** A single-adapter model over the tiny base; perturbed: every trainable tensor moved by N(0, 0.3²), else B = 0 (ΔW = 0). */
    static LoraModel model(AdapterConfig c, long seed, boolean perturbed) {
        TransformerLM m = HfModelDirectory.load(base);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", c, seed);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        if (perturbed) {
            for (Parameter p : a.trainableParameters()) p.set(p.value().add(Nd4j.randn(rng, p.value().shape()).castTo(p.value().dataType()).muli(0.3)));
        }
        LoraModel lm = new LoraModel(Identifiable.randomUID("loraModel"), c, AdapterTensors.ofValues(a.stateTensors()), LoraTrainingSummary.none());
        return lm.copy(new ParamMap().put(lm.basePath(), base.toString()));
    }

    /** lora (own, named "lora") + dora (as a model) + dora again from its saved PEFT directory ("peft"), by adapterCol. */
    static LoraModel mixed() {
        String doraDir = tmp.resolve("dora-model").toString();
        return lora.copy(ParamMap.empty()).setAdapterName("lora").addAdapter("dora", dora)
                .addAdapter("peft", Path.of(doraDir, LoraModel.ADAPTER_DIR).toString()).setAdapterCol("adapter").setBatchSize(3);
    }

    static List<Row> run(LoraModel m) {
        return m.transform(df).orderBy("id").collectAsList();
    }

    /** Row i's expected output: the single-adapter model of its adapter ("peft" is dora's saved adapter; base: ΔW = 0). */
    static Row expected(Map<String, List<Row>> alone, int i) {
        String n = NAMES[i] == null || NAMES[i].equals(AdapterSet.BASE) ? "base" : NAMES[i].equals("peft") ? "dora" : NAMES[i];
        return alone.get(n).get(i);
    }

    @Test
    void eachRowsContinuationEqualsThatRowUnderItsAdapterAlone() {
        List<Row> out = run(mixed().setMaxNewTokens(6));
        assertEquals(List.of("id", "text", "adapter", "continuation"), Arrays.asList(out.get(0).schema().fieldNames()));
        Map<String, List<Row>> alone = Map.of("lora", run(lora.copy(ParamMap.empty()).setMaxNewTokens(6)),
                "dora", run(dora.copy(ParamMap.empty()).setMaxNewTokens(6)), "base", run(zero.copy(ParamMap.empty()).setMaxNewTokens(6)));
        assertEquals(TEXTS.length, out.size());
        for (int i = 0; i < TEXTS.length; i++) {
            assertEquals(i, out.get(i).getInt(0));
            if (TEXTS[i] == null) {
                assertTrue(out.get(i).isNullAt(3), "a null text gives a null continuation");
                continue;
            }
            assertEquals(expected(alone, i).getString(3), out.get(i).getString(3), "row " + i + " (" + NAMES[i] + ")");
        }
        // the comparison means something only if the adapters change the continuations
        int differ = 0;
        for (int i = 0; i < TEXTS.length; i++) {
            if (TEXTS[i] == null) continue;
            String b = alone.get("base").get(i).getString(3);
            if (!b.equals(alone.get("lora").get(i).getString(3))) differ++;
            if (!b.equals(alone.get("dora").get(i).getString(3))) differ++;
        }
        assertTrue(differ >= 4, "the adapters change the continuations of several rows: " + differ);
    }

    @Test
    void eachRowsLabelAndProbabilityEqualThatRowUnderItsAdapterAlone() {
        String[] labels = {"sea", "hill", "seven gates"};
        List<Row> out = run(mixed().setLabels(labels));
        assertEquals(List.of("id", "text", "adapter", "prediction", "probability"), Arrays.asList(out.get(0).schema().fieldNames()));
        Map<String, List<Row>> alone = Map.of("lora", run(lora.copy(ParamMap.empty()).setLabels(labels)),
                "dora", run(dora.copy(ParamMap.empty()).setLabels(labels)), "base", run(zero.copy(ParamMap.empty()).setLabels(labels)));
        for (int i = 0; i < TEXTS.length; i++) {
            Row r = out.get(i);
            if (TEXTS[i] == null) {
                assertTrue(r.isNullAt(3) && r.isNullAt(4), "a null text gives null outputs");
                continue;
            }
            Row e = expected(alone, i);
            assertEquals(e.getString(3), r.getString(3), "prediction of row " + i + " (" + NAMES[i] + ")");
            assertEquals(e.getDouble(4), r.getDouble(4), 1e-5, "probability of row " + i + " (" + NAMES[i] + ")");
        }
        double lo = Double.POSITIVE_INFINITY;
        for (int i = 0; i < TEXTS.length; i++) {
            if (TEXTS[i] == null) continue;
            double b = alone.get("base").get(i).getDouble(4);
            lo = Math.min(lo, Math.min(Math.abs(b - alone.get("lora").get(i).getDouble(4)), Math.abs(b - alone.get("dora").get(i).getDouble(4))));
        }
        assertTrue(lo > 1e-4, "every adapter moves every row's probability well beyond the tolerance: " + lo);
    }

    @Test
    void anUnknownAdapterNameFailsTheTaskNamingItAndTheKnownOnes() {
        Dataset<Row> bad = spark.createDataFrame(List.of(RowFactory.create(0, "the light", "lora"), RowFactory.create(1, "the sea", "vera")), SCHEMA);
        Exception e = assertThrows(Exception.class, () -> mixed().setMaxNewTokens(2).transform(bad).collectAsList());
        StringBuilder chain = new StringBuilder();
        for (Throwable c = e; c != null; c = c.getCause()) chain.append(c.getMessage()).append(" | ");
        assertTrue(chain.toString().contains("names adapter 'vera'") && chain.toString().contains("[lora, dora, peft]"), chain.toString());
    }

    @Test
    void theAdapterColumnMustExistAndBeAString() {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> mixed().setAdapterCol("who").transform(df));
        assertTrue(missing.getMessage().contains("adapterCol column 'who' does not exist"), missing.getMessage());
        IllegalArgumentException notString = assertThrows(IllegalArgumentException.class, () -> mixed().setAdapterCol("id").transform(df));
        assertTrue(notString.getMessage().contains("adapterCol column 'id' must be of type string but is int"), notString.getMessage());
    }

    @Test
    void addingAnAdapterChecksItsBaseAndName() {
        LoraModel other = dora.copy(new ParamMap().put(dora.basePath(), tmp.resolve("another-base").toString()));
        IllegalArgumentException wrongBase = assertThrows(IllegalArgumentException.class, () -> lora.copy(ParamMap.empty()).addAdapter("d", other));
        assertTrue(wrongBase.getMessage().contains("basePath") && wrongBase.getMessage().contains("another-base"), wrongBase.getMessage());
        IllegalArgumentException twice = assertThrows(IllegalArgumentException.class, () -> mixed().addAdapter("dora", dora));
        assertTrue(twice.getMessage().contains("'dora' is already in [lora, dora, peft]"), twice.getMessage());
        assertThrows(IllegalArgumentException.class, () -> lora.copy(ParamMap.empty()).addAdapter("default", dora), "the model's own name");
        assertThrows(IllegalArgumentException.class, () -> lora.copy(ParamMap.empty()).addAdapter(AdapterSet.BASE, dora), "reserved");
        assertThrows(IllegalArgumentException.class, () -> lora.copy(ParamMap.empty()).addAdapter("../x", dora), "not a directory name");
        assertEquals(List.of("default"), lora.adapterNames(), "the models added to are copies");
    }

    @Test
    void saveAndLoadKeepTheAddedAdaptersAndParams() throws Exception {
        LoraModel m = mixed().setMaxNewTokens(5);
        String path = tmp.resolve("saved-mixed").toString();
        m.write().save(path);
        for (String d : List.of("adapter", "adapters/dora", "adapters/peft")) {
            assertTrue(Files.isRegularFile(Path.of(path, d, "adapter_model.safetensors")), d);
            assertTrue(Files.isRegularFile(Path.of(path, d, "adapter_config.json")), d);
        }
        LoraModel back = LoraModel.load(path);
        assertEquals("adapter", back.getAdapterCol());
        assertEquals("lora", back.getAdapterName());
        assertEquals(3, back.getBatchSize());
        assertEquals(List.of("lora", "dora", "peft"), back.adapterNames());
        assertEquals(run(m), run(back));
        List<Row> a = run(m.setLabels(new String[]{"sea", "hill"})), b = run(back.setLabels(new String[]{"sea", "hill"}));
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).get(3), b.get(i).get(3));
            if (!a.get(i).isNullAt(4)) assertEquals(a.get(i).getDouble(4), b.get(i).getDouble(4), 1e-6);
        }
    }

    @Test
    void aSingleAdapterModelSavedBeforeAdapterColumnsStillLoads() throws Exception {
        String path = tmp.resolve("saved-old").toString();
        lora.write().save(path);
        Path params = Path.of(path, LoraModel.PARAMS_FILE);
        var json = (com.fasterxml.jackson.databind.node.ObjectNode) new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readString(params));
        json.remove("adapters");
        ((com.fasterxml.jackson.databind.node.ObjectNode) json.get("params")).remove(List.of("adapterCol", "adapterName"));
        Files.writeString(params, json.toString());
        LoraModel back = LoraModel.load(path);
        assertEquals("", back.getAdapterCol());
        assertEquals(List.of("default"), back.adapterNames());
        assertEquals(run(lora.copy(ParamMap.empty()).setMaxNewTokens(4)), run(back.setMaxNewTokens(4)));
    }
}
