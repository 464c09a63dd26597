package io.sparklora.ml;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.api.TinyBase;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.SparkSetup;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Generator;
import org.apache.spark.SparkConf;
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

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The spark.ml face on local[2]: one fit on a tiny base (shared by the tests, which only read it), then
 * transform, save/load and the column checks.
 */
class LoraEstimatorTest {
    static SparkSession spark;
    @TempDir static Path tmp;
    static Path base;
    static LoraModel model;
    static Dataset<Row> prompts;

    static final StructType TEXT = new StructType().add("id", DataTypes.IntegerType).add("text", DataTypes.StringType);

    @BeforeAll
    static void fit() {
        spark = SparkSession.builder().config(SparkSetup.defaults(new SparkConf()).setMaster("local[2]").setAppName("ml-test")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")).getOrCreate();
        base = TinyBase.write(tmp.resolve("base"), 11);
        List<Row> rows = new ArrayList<>();
        int i = 0;
        for (String d : TinyBase.documents(60, 2)) rows.add(RowFactory.create(i++, d));
        Dataset<Row> train = spark.createDataFrame(rows, TEXT);
        model = new LoraEstimator().setBasePath(base.toString()).setAdapter("type=lora,r=4,alpha=8,targets=c_attn+c_fc")
                .setRounds(12).setBatchSize(4).setLr(2e-2).setSeqLen(16).setValidationFraction(0.25).setSeed(3)
                .setWorkDir(tmp.resolve("work").toString()).fit(train);
        prompts = spark.createDataFrame(List.of(RowFactory.create(1, "the river"), RowFactory.create(2, "a stone falls"),
                RowFactory.create(3, (Object) null)), TEXT);
    }

    @AfterAll
    static void stop() { spark.stop(); }

    @Test
    void fitLowersTheHeldOutLossAndCleansUp() throws Exception {
        LoraTrainingSummary s = model.summary();
        assertEquals(12, s.trainLoss().length, "one training loss per round");
        assertTrue(s.validationTokens() > 0, "rows were held out");
        assertTrue(s.adaptedValidationLoss() < s.baseValidationLoss(),
                "adapted " + s.adaptedValidationLoss() + " vs base " + s.baseValidationLoss());
        assertEquals(2L * 4 * ((32 + 96) + (32 + 128)), s.trainableParameters(), "r·(in+out) for c_attn and c_fc on 2 layers");
        try (var left = Files.list(tmp.resolve("work"))) {
            assertEquals(0, left.count(), "fit removes its work directory");
        }
    }

    @Test
    void transformAddsOneContinuationPerRowOnTheExecutorsEqualToLocalGreedyDecoding() throws Exception {
        LoraModel m = model.copy(new org.apache.spark.ml.param.ParamMap()).setMaxNewTokens(6);
        Dataset<Row> out = m.transform(prompts);
        assertEquals(List.of("id", "text", "continuation"), Arrays.asList(out.columns()));
        List<Row> rows = out.orderBy("id").collectAsList();
        assertEquals(3, rows.size());
        assertEquals(List.of(1, 2, 3), rows.stream().map(r -> r.getInt(0)).toList());
        assertEquals("the river", rows.get(0).getString(1));
        assertTrue(rows.get(2).isNullAt(2), "a null text gives a null continuation");

        // the same continuation computed here in one process
        TransformerLM local = io.sparklora.checkpoint.HfModelDirectory.load(base);
        AttachedAdapter a = AttachedAdapter.attach(local, "default", m.adapterConfig(), 0);
        copyTensors(m, a);
        try (TextTokenizer tok = TextTokenizer.fromFile(TinyBase.tokenizerJson())) {
            for (int i = 0; i < 2; i++) {
                String expected = tok.decode(Generator.greedy(local, tok.encode(rows.get(i).getString(1)), 6, tok.eosTokenId()));
                assertEquals(expected, rows.get(i).getString(2));
            }
        }
    }

    static void copyTensors(LoraModel m, AttachedAdapter a) throws Exception {
        var f = LoraModel.class.getDeclaredField("tensors");
        f.setAccessible(true);
        ((io.sparklora.train.AdapterTensors) f.get(m)).copyInto(a.stateTensors());
    }

    @Test
    void withLabelsTransformPredictsOneOfThemWithItsProbability() {
        LoraModel m = model.copy(new org.apache.spark.ml.param.ParamMap()).setLabels(new String[]{"sea", "hill"});
        List<Row> rows = m.transform(prompts).orderBy("id").collectAsList();
        assertEquals(List.of("id", "text", "prediction", "probability"), Arrays.asList(rows.get(0).schema().fieldNames()));
        for (int i = 0; i < 2; i++) {
            assertTrue(List.of("sea", "hill").contains(rows.get(i).getString(2)), rows.get(i).toString());
            double p = rows.get(i).getDouble(3);
            assertTrue(p >= 0.5 && p <= 1.0, "the most likely of two labels has probability in [0.5, 1]: " + p);
        }
        assertTrue(rows.get(2).isNullAt(2) && rows.get(2).isNullAt(3));
    }

    @Test
    void saveAndLoadGiveTheSameTransform() throws Exception {
        String path = tmp.resolve("saved-model").toString();
        model.write().overwrite().save(path);
        assertTrue(Files.isRegularFile(Path.of(path, "adapter", "adapter_model.safetensors")), "PEFT weights");
        assertTrue(Files.isRegularFile(Path.of(path, "adapter", "adapter_config.json")), "PEFT config");
        assertTrue(Files.isRegularFile(Path.of(path, LoraModel.PARAMS_FILE)));
        assertThrows(java.io.IOException.class, () -> model.write().save(path), "no silent overwrite");

        LoraModel back = LoraModel.load(path);
        assertEquals(model.uid(), back.uid());
        assertEquals(model.getBasePath(), back.getBasePath());
        assertEquals(model.getMaxNewTokens(), back.getMaxNewTokens());
        assertArrayEquals(model.summary().trainLoss(), back.summary().trainLoss());
        List<Row> a = model.setMaxNewTokens(5).transform(prompts).orderBy("id").collectAsList();
        List<Row> b = back.setMaxNewTokens(5).transform(prompts).orderBy("id").collectAsList();
        assertEquals(a, b);
    }

    @Test
    void aMissingOrNonStringColumnIsNamed() {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> model.copy(new org.apache.spark.ml.param.ParamMap()).setInputCol("body").transform(prompts));
        assertTrue(missing.getMessage().contains("'body'") && missing.getMessage().contains("does not exist"), missing.getMessage());

        IllegalArgumentException notString = assertThrows(IllegalArgumentException.class,
                () -> model.copy(new org.apache.spark.ml.param.ParamMap()).setInputCol("id").transform(prompts));
        assertTrue(notString.getMessage().contains("'id'") && notString.getMessage().contains("string")
                && notString.getMessage().contains("int"), notString.getMessage());

        IllegalArgumentException fitMissing = assertThrows(IllegalArgumentException.class,
                () -> new LoraEstimator().setBasePath(base.toString()).setInputCol("txt").fit(prompts));
        assertTrue(fitMissing.getMessage().contains("'txt'"), fitMissing.getMessage());

        IllegalArgumentException taken = assertThrows(IllegalArgumentException.class,
                () -> model.copy(new org.apache.spark.ml.param.ParamMap()).setOutputCol("id").transform(prompts));
        assertTrue(taken.getMessage().contains("'id' already exists"), taken.getMessage());
    }

    @Test
    void paramsFollowSparkConventions() {
        LoraEstimator e = new LoraEstimator();
        assertEquals("text", e.getInputCol());
        assertEquals("continuation", e.getOutputCol());
        assertEquals("prediction", e.setLabels(new String[]{"a"}).getOutputCol());
        assertEquals(30, e.getRounds());
        assertTrue(e.explainParams().contains("maxNewTokens"), "params are discovered by Spark's reflection");
        assertEquals(e.params().length, 21);
        IllegalArgumentException noBase = assertThrows(IllegalArgumentException.class, e::getBasePath);
        assertTrue(noBase.getMessage().contains("basePath"));
        assertThrows(IllegalArgumentException.class, () -> e.setRounds(0), "validators refuse bad values");
    }

    @Test
    void estimatorParamsSaveAndLoad() throws Exception {
        LoraEstimator e = new LoraEstimator().setBasePath(base.toString()).setRounds(7).setLabels(new String[]{"ham", "spam"}).setLr(0.5);
        String path = tmp.resolve("saved-estimator").toString();
        e.write().save(path);
        LoraEstimator back = LoraEstimator.load(path);
        assertEquals(e.uid(), back.uid());
        assertEquals(7, back.getRounds());
        assertEquals(0.5, back.getLr());
        assertArrayEquals(new String[]{"ham", "spam"}, back.getLabels());
        assertEquals(base.toString(), back.getBasePath());
        assertEquals("text", back.getInputCol());
        IllegalArgumentException wrong = assertThrows(IllegalArgumentException.class, () -> LoraModel.load(path));
        assertTrue(wrong.getMessage().contains("expected io.sparklora.ml.LoraModel"), wrong.getMessage());
    }
}
