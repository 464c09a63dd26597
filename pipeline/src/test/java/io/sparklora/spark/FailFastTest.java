package io.sparklora.spark;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.train.TrainStage;
import io.sparklora.spark.train.TrainStageTest;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * With Spark allowed 4 attempts per task ({@code local[2,4]}), a task that fails on bad input ends the job at once with
 * its own one-line message, while a transient fault is still retried and the run succeeds.
 */
class FailFastTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final AtomicInteger LOADS = new AtomicInteger();

    /** Partition 1's shard is refused as bad input (or, transient, fails the first load only). */
    record Faulty(boolean transientFault) implements ShardSource {
        @Override public int partitions() { return 2; }

        @Override
        public TokenBlocks load(int partition, Configuration conf) {
            if (partition == 1) {
                int n = LOADS.incrementAndGet();
                if (!transientFault) throw new IllegalArgumentException("shards/train/part-00001.arrow: not an Arrow IPC file (bad magic)");
                if (n == 1) throw new IllegalStateException("connection reset while reading part-00001.arrow");
            }
            return TrainStageTest.randomShard(4, 16, partition + 1);
        }
    }

    @Test
    void badInputFailsTheJobAtOnceAndATransientFaultIsStillRetried(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 7), dir, DataType.FLOAT, null);
        try (JavaSparkContext sc = SparkSetup.context("fail-fast", "local[2,4]", Map.of())) {
            BaseModelRef base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString());
            TrainSpec spec = new TrainSpec(base, AdapterConfig.lora(2, 4, List.of("c_attn")), Map.of(), 2, 1, "gradients", false,
                    new TrainingOptions(2, 2, 1, 1e-2, 0.0, 0, "constant", 0.0, 1.0, 3), 1.0, 0, null);
            AtomicInteger failedAttempts = new AtomicInteger();
            sc.sc().addSparkListener(new SparkListener() {
                @Override public void onTaskEnd(SparkListenerTaskEnd e) {
                    if (!e.taskInfo().successful()) failedAttempts.incrementAndGet();
                }
            });

            for (TrainStage.Rounds via : TrainStage.Rounds.values()) {
                LOADS.set(0);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> TrainStage.run(sc, spec, new Faulty(false), MetricsLog.inMemory(), "train", QUIET, null, TrainStage.inlineMaxBytes(), via));
                assertEquals("shards/train/part-00001.arrow: not an Arrow IPC file (bad magic) (partition 1)", e.getMessage(), via.name());
                assertEquals(1, LOADS.get(), via + ": bad input is read once: not retried spark.task.maxFailures times");
            }

            // a round session hands a failed round to a job of its own (RoundSessionTest); here, a job per round
            LOADS.set(0);
            failedAttempts.set(0);
            var r = TrainStage.run(sc, spec, new Faulty(true), MetricsLog.inMemory(), "train", QUIET, null, TrainStage.inlineMaxBytes(),
                    TrainStage.Rounds.JOBS);
            assertEquals(2, r.roundsRun(), "the transient fault was retried and the run finished");
            Thread.sleep(500);
            assertEquals(1, failedAttempts.get(), "one failed attempt, retried");
        }
    }
}
