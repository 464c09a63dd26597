package io.sparklora.spark.train;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.InMemoryShards;
import io.sparklora.spark.SparkClusters;
import io.sparklora.spark.SparkSetup;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.DistributedTrainer;
import io.sparklora.train.MetricsLog;
import io.sparklora.train.RoundState;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.TrainSpec;
import io.sparklora.train.TrainingOptions;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Delta-LoRA on Spark with executors in separate JVMs (local-cluster): no base tensor ever moves and the executors
 * never diverge. W follows λ·Δ(BA) after the warm-up, but in the telescoped form the only state beyond A and B is the
 * snapshot (A_K, B_K), which the driver broadcasts as round state; the base stays W_0 everywhere.
 *
 * <p>After training, the final adapter tensors and round state are broadcast once more and each executor JVM rebuilds
 * the adapter from them exactly as a training task does (cached base, attach, copy the tensors, load the round state),
 * merges it into its model and sends back W_0 + ΔW_T of every adapted layer. Both executors must return the same
 * arrays bit for bit, equal to the driver's effective weights, which equal W_0 + (s+λ)·B_TA_T − λ·B_KA_K computed here
 * from the final tensors and the snapshot. Each executor read the base once, and its cached W_0 is still as loaded.
 * The whole run equals the same run on local[2] in one JVM. (Bytes per round for delta_lora, 4·(trainable + snapshot),
 * are asserted in {@link AdapterMethodsSparkTest}; the driver computes them the same way whatever the master.)
 *
 * <p>Both sync modes. Under {@code sync: parameters} (K = 2 local steps) the driver takes no optimizer step: it takes the
 * snapshot from the averaged adapter at the first round boundary past the warm-up ({@code beforeRound}) and broadcasts
 * it from then on (before that fix the driver ended with no snapshot, a plain LoRA, which this test caught).
 */
class DeltaLoraSeparateJvmTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());
    static final double LAMBDA = 0.5;
    static final ModelConfig CFG = ModelConfig.gpt2(64, 32, 2, 2, 16);
    static final AdapterConfig DELTA = AdapterConfig.of("delta_lora", 4, 8, List.of("c_attn"))
            .withOption("delta_warmup", "1").withOption("delta_lambda", Double.toString(LAMBDA));

    /** What one executor JVM reports: who it is, its base loads, and per adapted layer its merged and its cached base weight. */
    public static final class ExecutorWeights implements Serializable {
        private static final long serialVersionUID = 1L;
        public String executor;
        public int partition;
        public int baseLoads;
        public LinkedHashMap<String, float[]> effective = new LinkedHashMap<>();
        public LinkedHashMap<String, float[]> cachedBase = new LinkedHashMap<>();

        public ExecutorWeights() {
            // for Kryo
        }
    }

    /**
     * Rebuilds the adapter on an executor from the broadcast final state the way {@link TrainRoundTask} and
     * {@code RoundWork.run} do, merges it into the task's model (a private copy of the cached weights) and
     * returns the merged weights in storage layout.
     */
    static final class EffectiveWeightsTask implements Function2<Integer, Iterator<Integer>, Iterator<ExecutorWeights>> {
        private static final long serialVersionUID = 1L;
        private final TrainSpec spec;
        private final SerializableConfiguration conf;
        private final Broadcast<RoundState> state;

        EffectiveWeightsTask(TrainSpec spec, SerializableConfiguration conf, Broadcast<RoundState> state) {
            this.spec = spec;
            this.conf = conf;
            this.state = state;
        }

        @Override
        public Iterator<ExecutorWeights> call(Integer partition, Iterator<Integer> ignored) {
            RoundState st = state.value();
            TransformerLM model = BaseModelCache.model(spec.base(), conf.get());
            AttachedAdapter adapter = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
            st.adapter().copyInto(adapter.trainableParameters());
            adapter.hooks().loadRoundState(st.methodState().toArrays());
            adapter.merge();
            TransformerLM cached = BaseModelCache.model(spec.base(), conf.get());
            ExecutorWeights out = new ExecutorWeights();
            out.executor = TrainRoundTask.executorId();
            out.partition = partition;
            out.baseLoads = BaseModelCache.loads();
            for (String m : adapter.layers().keySet()) {
                out.effective.put(m, floats(model.linears().get(m).baseWeight().dense()));
                out.cachedBase.put(m, floats(cached.linears().get(m).baseWeight().dense()));
            }
            return List.of(out).iterator();
        }
    }

    static float[] floats(INDArray a) {
        return a.castTo(DataType.FLOAT).dup('c').reshape(a.length()).toFloatVector();
    }

    static TrainSpec spec(BaseModelRef base, String sync) {
        int k = sync.equals("gradients") ? 1 : 2;
        TrainingOptions o = new TrainingOptions(4 * k, 2, 1, 1e-2, 0.0, 1, "cosine", 0.0, 1.0, 13);
        return new TrainSpec(base, DELTA, Map.of(), 4, k, sync, false, o, 1.0, 0, null);
    }

    static double maxAbsDiff(INDArray a, INDArray b) {
        assertArrayEquals(a.shape(), b.shape());
        return a.castTo(DataType.DOUBLE).sub(b.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "sync: {0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"gradients", "parameters"})
    void executorJvmsEndWithTheDriversEffectiveWeightsAndNeverMoveTheBase(String sync, @TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(CFG, 9), dir, DataType.FLOAT, null);
        List<TokenBlocks> shards = List.of(TrainStageTest.randomShard(6, 16, 41), TrainStageTest.randomShard(6, 16, 42));
        TransformerLM w0 = HfModelDirectory.load(dir);      // W_0 as stored, read independently of any cache

        List<Parameter> inProcess;
        Map<String, INDArray> inProcessSnapshot;
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            TrainSpec spec = spec(BaseModelRef.of(sc.hadoopConfiguration(), dir.toString()), sync);
            AttachedAdapter a = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null).adapter();
            inProcess = a.trainableParameters();
            inProcessSnapshot = a.hooks().roundState();
        }

        try (JavaSparkContext sc = SparkClusters.localCluster(2, 1, 1024, Map.of())) {
            TrainSpec spec = spec(BaseModelRef.of(sc.hadoopConfiguration(), dir.toString()), sync);
            DistributedTrainer.Result r = TrainStage.run(sc, spec, new InMemoryShards(shards), MetricsLog.inMemory(), "train", QUIET, null);
            AttachedAdapter driver = r.adapter();
            long driverPid = ProcessHandle.current().pid();
            assertEquals(2, r.executors().size(), "both executors took part: " + r.executors());
            for (String e : r.executors()) assertFalse(e.endsWith("@" + driverPid), "task ran in the driver JVM: " + e);
            assertEquals(r.executors(), r.baseLoadsByExecutor().keySet());
            r.baseLoadsByExecutor().forEach((e, n) -> assertEquals(1, n, e + " read the base " + n + " times in " + spec.rounds() + " rounds"));

            // the same run in one JVM: the same adapter tensors and the same snapshot
            List<Parameter> distributed = driver.trainableParameters();
            assertEquals(inProcess.size(), distributed.size());
            for (int i = 0; i < distributed.size(); i++) {
                assertEquals(inProcess.get(i).name(), distributed.get(i).name());
                double d = maxAbsDiff(distributed.get(i).value(), inProcess.get(i).value());
                assertTrue(d < 1e-6, "" + distributed.get(i).name() + " differs from the local[2] run by " + d);
            }
            Map<String, INDArray> snapshot = driver.hooks().roundState();
            assertEquals(inProcessSnapshot.keySet(), snapshot.keySet());
            for (String k : snapshot.keySet()) {
                double d = maxAbsDiff(snapshot.get(k), inProcessSnapshot.get(k));
                assertTrue(d < 1e-6, "snapshot " + k + " differs from the local[2] run by " + d);
            }

            // the driver's effective weights: W_0 + ΔW_T, and ΔW_T = (s+λ)·B_TA_T − λ·B_KA_K computed here
            assertEquals(2 * driver.layers().size(), snapshot.size(), sync + ": the warm-up (1 step) is over, every layer has (A_K, B_K): "
                    + snapshot.keySet());
            Map<String, INDArray> driverEffective = new LinkedHashMap<>();
            for (Map.Entry<String, Adapter> e : driver.layers().entrySet()) {
                String m = e.getKey();
                LoraAdapter l = (LoraAdapter) e.getValue();
                Linear layer = driver.model().linears().get(m);
                INDArray base = w0.linears().get(m).baseWeight().dense();
                assertEquals(0.0, maxAbsDiff(layer.baseWeight().dense(), base), m + ": the driver's W_0 is as stored");
                INDArray effective = layer.baseWeight().dense().add(l.deltaWeight());
                driverEffective.put(m, effective);

                INDArray aT = l.loraA().value(), bT = l.loraB().value();
                INDArray aK = snapshot.get(m + ".delta_A_K"), bK = snapshot.get(m + ".delta_B_K");
                assertNotNull(aK, m + ": no A_K in the round state " + snapshot.keySet());
                assertNotNull(bK, m + ": no B_K in the round state " + snapshot.keySet());
                INDArray productT = bT.mmul(aT), productK = bK.mmul(aK);
                // the λ terms matter: the snapshot is taken after step 1 (B_K ≠ 0) and B·A moved after it
                assertTrue(productK.amaxNumber().doubleValue() > 1e-5, m + ": B_K·A_K is zero");
                assertTrue(productT.sub(productK).amaxNumber().doubleValue() > 1e-5, m + ": B·A did not move after the snapshot");
                INDArray deltaLogical = productT.mul(l.scale() + LAMBDA).subi(productK.mul(LAMBDA));
                INDArray expected = base.add(Adapter.inLayerLayout(layer, deltaLogical));
                double d = maxAbsDiff(effective, expected);
                assertTrue(d < 1e-6, "" + m + ": the driver's W_0 + ΔW_T vs W_0 + (s+λ)·B_TA_T − λ·B_KA_K differ by " + d);
            }

            // the executors, each rebuilding the adapter from the final tensors and round state
            SerializableConfiguration conf = new SerializableConfiguration(sc.hadoopConfiguration());
            RoundState fin = new RoundState(spec.rounds(), AdapterTensors.ofValues(distributed), AdapterTensors.of(snapshot), null, 0);
            Broadcast<RoundState> b = sc.broadcast(fin);
            List<ExecutorWeights> reports;
            try {
                reports = sc.parallelize(IntStream.range(0, 2).boxed().toList(), 2)
                        .mapPartitionsWithIndex(new EffectiveWeightsTask(spec, conf, b), false).collect();
            } finally {
                b.destroy();
            }
            assertEquals(2, reports.size());
            TreeMap<String, ExecutorWeights> byExecutor = new TreeMap<>();
            for (ExecutorWeights w : reports) byExecutor.put(w.executor, w);
            assertEquals(2, byExecutor.size(), "one report per executor JVM: " + byExecutor.keySet());
            assertEquals(r.executors(), byExecutor.keySet(), "the executors that trained are the ones that reported");
            ExecutorWeights first = byExecutor.firstEntry().getValue();
            for (ExecutorWeights w : byExecutor.values()) {
                assertFalse(w.executor.endsWith("@" + driverPid), "ran in the driver JVM: " + w.executor);
                assertEquals(1, w.baseLoads, w.executor + " read the base again");
                assertEquals(driverEffective.keySet(), w.effective.keySet(), w.executor);
                for (String m : driverEffective.keySet()) {
                    assertArrayEquals(floats(w0.linears().get(m).baseWeight().dense()), w.cachedBase.get(m),
                            w.executor + ": " + m + ": the cached W_0 changed");
                    assertArrayEquals(first.effective.get(m), w.effective.get(m),
                            m + ": executors " + first.executor + " and " + w.executor + " diverged");
                    INDArray driverW = driverEffective.get(m);
                    INDArray executorW = Nd4j.create(w.effective.get(m), driverW.shape(), 'c');
                    double d = maxAbsDiff(executorW, driverW);
                    assertTrue(d < 1e-6, "" + w.executor + ": " + m + ": effective weight differs from the driver's by " + d);
                }
            }
        }
    }
}
