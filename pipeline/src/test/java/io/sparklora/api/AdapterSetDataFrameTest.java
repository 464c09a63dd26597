package io.sparklora.api;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Per-row adapters over a DataFrame on Spark local[2]: each row's continuation and loss, computed on the executors in
 * mixed-adapter batches that cut across the rows' adapters, equal that row alone with its adapter on the driver.
 */
class AdapterSetDataFrameTest {

    @Test
    void eachRowsOutputEqualsThatRowAloneWithItsAdapter(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path lora = AdapterSetTest.adapter(base, tmp.resolve("lora"), AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")), 1);
        Path dora = AdapterSetTest.adapter(base, tmp.resolve("dora"), AdapterConfig.of("dora", 4, 8, List.of("c_attn")), 2);
        SparkSession spark = SparkSession.builder().config(SparkSetup.defaults(new SparkConf()).setMaster("local[2]").setAppName("adapter-set-df")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")).getOrCreate();
        try {
            AdapterSet set = AdapterSet.on(spark.sparkContext().hadoopConfiguration(), base.toString())
                    .add("lora", lora.toString()).add("dora", dora.toString());
            String[] texts = {"the river runs to", "a stone falls", "our ship sails past the", "the light", null, "the north wind blows", "seven gates"};
            String[] names = {"dora", "lora", AdapterSet.BASE, "lora", "dora", null, "dora"};
            List<Row> rows = new ArrayList<>();
            for (int i = 0; i < texts.length; i++) rows.add(RowFactory.create(i, texts[i], names[i]));
            StructType schema = new StructType().add("id", DataTypes.IntegerType).add("text", DataTypes.StringType).add("adapter", DataTypes.StringType);
            Dataset<Row> df = spark.createDataFrame(rows, schema).repartition(2);

            List<Row> generated = set.generate(df, "text", "adapter", "continuation", 8, 2).orderBy("id").collectAsList();
            List<Row> scored = set.meanLoss(df, "text", "adapter", "loss", 3).orderBy("id").collectAsList();
            assertEquals(texts.length, generated.size());
            for (int i = 0; i < texts.length; i++) {
                Row g = generated.get(i), s = scored.get(i);
                assertEquals(i, g.getInt(0));
                if (texts[i] == null) {
                    assertTrue(g.isNullAt(3) && s.isNullAt(3), "a null text gives null");
                    continue;
                }
                String name = names[i] == null ? AdapterSet.BASE : names[i];
                assertEquals(set.generate(List.of(texts[i]), List.of(name), 8).get(0), g.getString(3), "row " + i + " (" + name + ")");
                assertEquals(set.meanLoss(List.of(texts[i]), List.of(name))[0], s.getDouble(3), 1e-5, "loss of row " + i + " (" + name + ")");
            }
            assertNotEquals(set.meanLoss(List.of(texts[0]), List.of(AdapterSet.BASE))[0], scored.get(0).getDouble(3), 1e-4,
                    "the adapter must change the loss for the comparison to mean anything");

            Dataset<Row> unknown = spark.createDataFrame(List.of(RowFactory.create(0, "the light", "vera")), schema);
            Exception e = assertThrows(Exception.class, () -> set.generate(unknown, "text", "adapter", "out", 4, 2).collectAsList());
            StringBuilder chain = new StringBuilder();
            for (Throwable c = e; c != null; c = c.getCause()) chain.append(c.getMessage()).append(" | ");
            assertTrue(chain.toString().contains("names adapter 'vera', which is not in the set"), chain.toString());
            IllegalArgumentException col = assertThrows(IllegalArgumentException.class, () -> set.generate(df, "body", "adapter", "out", 4, 2));
            assertTrue(col.getMessage().contains("no column 'body'"), col.getMessage());

            // an adapter held in memory (AdapterSet.add(name, config, tensors)) travels with the task: rows naming it give
            // what rows naming the same adapter loaded from its directory give
            var conf = spark.sparkContext().hadoopConfiguration();
            var held = AdapterSet.load(conf, lora.toString(), io.sparklora.checkpoint.BaseModelRef.of(conf, base.toString()),
                    io.sparklora.model.TransformerLM.randomInit(TinyBase.CONFIG, 1), "held");
            AdapterSet mixed = AdapterSet.on(conf, base.toString()).add("lora", lora.toString())
                    .add("mem", held.config(), io.sparklora.train.AdapterTensors.ofValues(held.stateTensors()));
            List<Row> pairs = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                pairs.add(RowFactory.create(2 * i, texts[i], "lora"));
                pairs.add(RowFactory.create(2 * i + 1, texts[i], "mem"));
            }
            List<Row> both = mixed.meanLoss(spark.createDataFrame(pairs, schema).repartition(2), "text", "adapter", "loss", 3).orderBy("id").collectAsList();
            for (int i = 0; i < 4; i++) {
                assertEquals(both.get(2 * i).getDouble(3), both.get(2 * i + 1).getDouble(3), 1e-6, "in-memory adapter, row " + i);
                assertEquals(set.meanLoss(List.of(texts[i]), List.of("lora"))[0], both.get(2 * i + 1).getDouble(3), 1e-5, "row " + i);
            }
            assertNotEquals(set.meanLoss(List.of(texts[1]), List.of(AdapterSet.BASE))[0], both.get(3).getDouble(3), 1e-4, "the in-memory adapter is not the base");
        } finally {
            spark.stop();
        }
    }
}
