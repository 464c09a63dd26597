package io.sparklora.spark.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.quant.Nf4Tensor;
import io.sparklora.quant.QuantizedCheckpoints;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkSetup;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.TrainSpec;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * QLoRA through the Spark trainer on {@code local[2]}: the executors quantize the base on load and cache it in NF4;
 * adapters over it train as over any base: {@code sync: gradients} with K = 1 equals one-process training over the same
 * NF4 model, only adapter-sized tensors move, and the cached codes stay bit-for-bit as quantized.
 */
class QloraSparkTest {
    static JavaSparkContext sc;
    @TempDir static Path tmp;
    static BaseModelRef base;

    @BeforeAll
    static void start() throws Exception {
        sc = SparkSetup.local(2);
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(AdapterMethodsSparkTest.CFG, 7), dir, DataType.FLOAT, null);
        base = BaseModelRef.of(sc.hadoopConfiguration(), dir.toString()).withQuantization(BaseQuantization.NF4_DOUBLE_QUANT);
    }

    @AfterAll
    static void stop() { sc.stop(); }

    /** The NF4 model the executors build: the saved fp32 weights quantized (the save is exact in float32). */
    static TransformerLM nf4() { return QuantizedCheckpoints.quantize(TransformerLM.randomInit(AdapterMethodsSparkTest.CFG, 7), true); }


    @ParameterizedTest
    @ValueSource(strings = {"lora", "dora", "vera"})
    void trainsOverAnNf4BaseAsOneProcessDoesAndMovesOnlyTheAdapter(String method) throws Exception {
        AdapterConfig a = method.equals("vera") ? AdapterConfig.of("vera", 8, 1, AdapterMethodsSparkTest.TARGETS).withOption("d_initial", "0.5")
                : AdapterConfig.of(method, 4, 8, AdapterMethodsSparkTest.TARGETS);
        TrainingSpecs s = new TrainingSpecs(a);
        DistributedTrainer.Result r = TrainStage.run(sc, s.spec, new InMemoryShards(AdapterMethodsSparkTest.shards()), MetricsLog.inMemory(),
                "train", AdapterMethodsSparkTest.QUIET, null);
        AttachedAdapter reference = AdapterMethodsSparkTest.oneProcess(s.spec, AdapterMethodsSparkTest.shards(), nf4());
        double d = AdapterMethodsSparkTest.maxDiff(reference.trainableParameters(), r.adapter().trainableParameters());
        assertTrue(d < 1e-4, method + " over NF4: distributed and one-process differ by " + d);
        AttachedAdapter fresh = AttachedAdapter.attach(nf4(), TrainSpec.ADAPTER_NAME, a, s.spec.options().seed());
        assertTrue(AdapterMethodsSparkTest.maxDiff(fresh.trainableParameters(), r.adapter().trainableParameters()) > 1e-4, method + ": nothing trained");

        long trainable = r.adapter().trainableParameterCount();
        assertEquals(4 * trainable, r.bytesBroadcastPerRound(), "only the adapter goes down");
        assertEquals(4 * trainable, r.bytesReducedPerRound(), "only the adapter comes up");
        TransformerLM cached = BaseModelCache.model(base, sc.hadoopConfiguration());
        assertTrue(cached.quantizedBase());
        assertEquals(cached.baseBytesHeld(), r.modelBytes(), "the model the driver reports is the NF4 one");
        assertTrue(r.modelBytes() < 4L * TransformerLM.parameterCount(AdapterMethodsSparkTest.CFG), "NF4 holds less than fp32");
        TransformerLM expected = nf4();
        for (Map.Entry<String, Nf4Tensor> e : expected.quantizedWeights().entrySet()) {
            assertArrayEquals(e.getValue().packedBytes(), cached.quantizedWeights().get(e.getKey()).packedBytes(), e.getKey() + ": the cached codes changed");
        }
    }

    /** sync: gradients, three rounds of one local step (K = 1). */
    private static final class TrainingSpecs {
        final TrainSpec spec;

        TrainingSpecs(AdapterConfig a) {
            TrainSpec plain = AdapterMethodsSparkTest.spec(a, "gradients", 3, 1, 0, null);
            spec = new TrainSpec(base, plain.adapter(), plain.shareGroups(), plain.rounds(), plain.localSteps(), plain.sync(),
                    plain.averageOptimizerState(), plain.options(), plain.sampleFraction(), plain.checkpointEvery(), plain.outputUri(), plain.dp());
        }
    }
}
