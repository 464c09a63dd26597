package io.sparklora.spark;

import io.sparklora.spark.tokenize.TokenizeSpec;
import io.sparklora.spark.tokenize.TokenizeStage;
import io.sparklora.spark.train.TrainStage;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.data.ShardManifest;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.MiniHdfs;
import io.sparklora.tokenize.ByteLevelBpeTrainer;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Shards, base model, checkpoints and adapter on a real (in-process) HDFS: tokenize writes Arrow shards
 * there, training reads them and the base from HDFS, checkpoints there, resumes from them after a crash,
 * and the final adapter reads back from HDFS as a PEFT adapter.
 */
class HdfsPipelineTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void shardsAndCheckpointsLiveOnHdfsAndReadBack(@TempDir java.nio.file.Path tmp) throws Exception {
        try (MiniHdfs hdfs = MiniHdfs.start(); JavaSparkContext sc = SparkSetup.local(2)) {
            hdfs.conf().forEach(e -> sc.hadoopConfiguration().set(e.getKey(), e.getValue()));
            FileSystem fs = hdfs.fs();

            // corpus, manifest and tokenizer uploaded to HDFS
            Random r = new Random(5);
            List<String> docs = new ArrayList<>();
            String[] words = {"alpha", "beta", "gamma", "delta", "river", "stone", "light", "north", "seven", "green"};
            for (int d = 0; d < 60; d++) {
                StringBuilder sb = new StringBuilder();
                for (int w = 0; w < 30; w++) sb.append(words[r.nextInt(words.length)]).append(' ');
                docs.add(sb.toString().strip());
            }
            java.nio.file.Path local = tmp.resolve("in");
            Files.createDirectories(local);
            Files.writeString(local.resolve("corpus.txt"), String.join("\n\n", docs) + "\n");
            Files.writeString(local.resolve("dataset.yaml"), "name: words\nsources: [{name: words, uri: corpus.txt, format: text}]\n");
            ByteLevelBpeTrainer.train(docs, 300, local.resolve("tokenizer.json"));
            fs.copyFromLocalFile(new Path(local.toUri()), new Path(hdfs.uri("/in")));

            String shards = hdfs.uri("/runs/w/shards");
            ShardManifest m = TokenizeStage.run(sc, new TokenizeSpec(hdfs.uri("/in/dataset.yaml"), hdfs.uri("/in/tokenizer.json"), 16,
                    0.1, 2, shards, 4 << 20, 1));
            assertTrue(HadoopFiles.isComplete(sc.hadoopConfiguration(), shards));
            ShardManifest back = ShardManifest.read(sc.hadoopConfiguration(), shards);
            assertEquals(new String(m.toJson()), new String(back.toJson()), "manifest reads back from HDFS");
            assertTrue(back.rows(ShardManifest.TRAIN) > 10);

            // base model on HDFS: executors copy it to local disk once and cache it
            ModelConfig cfg = ModelConfig.gpt2(m.vocabSize(), 32, 2, 2, 16);
            java.nio.file.Path baseLocal = tmp.resolve("base");
            HfModelDirectory.save(TransformerLM.randomInit(cfg, 2), baseLocal, DataType.FLOAT, null);
            fs.copyFromLocalFile(new Path(baseLocal.toUri()), new Path(hdfs.uri("/models/base")));
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), hdfs.uri("/models/base"));
            assertEquals(BaseModelRef.of(sc.hadoopConfiguration(), baseLocal.toString()).contentHash(), base.contentHash());

            String out = hdfs.uri("/runs/w");
            TrainingOptions o = new TrainingOptions(8, 2, 1, 1e-2, 0.0, 1, "cosine", 0.0, 1.0, 3);
            TrainSpec spec = new TrainSpec(base, AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), 4, 2, "parameters", true, o, 1.0, 1, out);
            ArrowShards train = new ArrowShards(shards, back, ShardManifest.TRAIN);
            assertThrows(RuntimeException.class, () -> TrainStage.run(sc, spec, train, MetricsLog.inMemory(), "train", QUIET,
                    (done, res) -> { if (done == 2) throw new RuntimeException("crash"); }));
            assertTrue(fs.exists(new Path(hdfs.uri("/runs/w/checkpoints/round-000002/optimizer.safetensors"))));
            DistributedTrainer.Result resumed = TrainStage.run(sc, spec, train, new MetricsLog(sc.hadoopConfiguration(), out + "/metrics.jsonl"),
                    "train", QUIET, null);
            assertEquals(2, resumed.resumedFrom());

            // the adapter on HDFS loads back as PEFT and equals what training ended with
            java.nio.file.Path copy = HadoopFiles.copyToLocal(sc.hadoopConfiguration(), out + "/adapter");
            var loaded = PeftAdapterFormat.load(TransformerLM.randomInit(cfg, 2), copy, "default");
            var a = resumed.adapter().trainableParameters();
            var b = loaded.trainableParameters();
            for (int i = 0; i < a.size(); i++) assertEquals(a.get(i).value(), b.get(i).value(), a.get(i).name());
            assertTrue(HadoopFiles.exists(sc.hadoopConfiguration(), out + "/metrics.jsonl"));
        }
    }
}
