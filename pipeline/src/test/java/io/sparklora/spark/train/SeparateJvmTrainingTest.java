package io.sparklora.spark.train;

import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkClusters;
import io.sparklora.spark.SparkSetup;

import io.sparklora.train.DistributedTrainer;

import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Distributed training with executors in separate JVMs (Spark local-cluster): every closure, broadcast
 * and result crosses a process boundary, so serialization mistakes cannot hide. The result must equal the
 * same run on local[2] in one JVM, and each executor must read the base from storage exactly once.
 */
class SeparateJvmTrainingTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void trainingAcrossExecutorJvmsEqualsTheInProcessRunAndLoadsTheBaseOncePerExecutor(@TempDir Path tmp) throws Exception {
        ModelConfig cfg = ModelConfig.gpt2(64, 32, 2, 2, 16);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 9), dir, DataType.FLOAT, null);
        List<TokenBlocks> shards = List.of(TrainStageTest.randomShard(6, 16, 41), TrainStageTest.randomShard(6, 16, 42));
        TrainingOptions o = new TrainingOptions(4, 2, 1, 1e-2, 0.0, 1, "cosine", 0.0, 1.0, 13);

        List<Parameter> inProcess;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
            TrainSpec spec = new TrainSpec(base, AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), 4, 1, "gradients", false, o, 1.0, 0, null);
            inProcess = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null).adapter().trainableParameters();
        }
        try (JavaSparkContext sc = SparkClusters.localCluster(2, 1, 1024, Map.of())) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
            TrainSpec spec = new TrainSpec(base, AdapterConfig.lora(4, 8, List.of("c_attn")), Map.of(), 4, 1, "gradients", false, o, 1.0, 0, null);
            DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
            long driverPid = ProcessHandle.current().pid();
            assertEquals(2, r.executors().size(), "both executors took part: " + r.executors());
            for (String e : r.executors()) assertFalse(e.endsWith("@" + driverPid), "task ran in the driver JVM: " + e);
            assertEquals(2, r.baseLoadsByExecutor().size());
            r.baseLoadsByExecutor().forEach((e, n) -> assertEquals(1, n, e + " read the base " + n + " times in 4 rounds"));
            List<Parameter> distributed = r.adapter().trainableParameters();
            for (int i = 0; i < distributed.size(); i++) {
                double d = distributed.get(i).value().sub(inProcess.get(i).value()).amaxNumber().doubleValue();
                assertTrue(d < 1e-6, distributed.get(i).name() + " differs across JVMs by " + d);
            }
        }
    }
}
