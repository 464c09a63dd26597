package io.sparklora.bench;

import io.sparklora.spark.PartitionOrderSum;
import io.sparklora.spark.SparkSetup;
import io.sparklora.spark.drop.ImportanceSums;
import io.sparklora.spark.drop.ImportanceSumsAdd;
import io.sparklora.spark.train.RoundResultSum;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.io.CompressionCodec;
import org.apache.spark.serializer.SerializerInstance;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import scala.reflect.ClassTag$;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * What moves each round, two ways, side by side in one Spark context on local[P]: (a) today's path, the adapter-sized
 * tensors as float arrays ({@link AdapterTensors} inside {@link RoundState} / {@link RoundResult}, importance sums as
 * {@link ImportanceSums}); (b) the same tensors as ND4J arrays, serialised by Deeplearning4j Spark's Kryo registrator
 * ({@code org.nd4j.kryo.Nd4jRegistrator}, {@code spark.kryo.registrator}, set on the context both paths share).
 *
 * <p>Two kinds of round, each timed from the driver's adapter tensors to the driver's sum: a train round (broadcast of
 * the round state, P tasks each returning an adapter-sized gradient sum with the counts a {@link RoundResult} carries,
 * the sum in partition order) and an importance round (broadcast of the adapter, P tasks each returning per-module
 * importance sums). The tasks compute nothing but the same elementwise ND4J op on both paths, so what differs is the
 * conversion to and from the wire form, the serialiser and the driver's sum. The rounds of the two paths alternate
 * (a b, b a, ...) after untimed warm-up rounds; medians are printed. Bytes are those Spark's configured serialiser
 * writes for one broadcast value and one task result (the broadcast is also given after Spark's block compression,
 * as a broadcast ships it). Each timed round also checks that both paths' sums are identical, bit for bit.
 *
 * <p>In local mode the tasks share the driver's JVM: a broadcast is serialised (and compressed) but the tasks read the
 * driver's object, while a task result is serialised and deserialised. The ser+deser figures give each object's
 * round trip through the same serialiser, including the broadcast's deserialisation a cluster executor would do.
 *
 * <p>Usage: java ... KryoRoundBenchmark [--shape demo|gpt2-small] [--partitions 2] [--rounds 50] [--warmup 10]
 */
public final class KryoRoundBenchmark {
    private KryoRoundBenchmark() {}

    public static final String REGISTRATOR = "org.nd4j.kryo.Nd4jRegistrator";

    /** The adapter's tensors for a named shape, in the attach order of the pipeline's LoRA (random values, seeded). */
    public static LinkedHashMap<String, INDArray> adapterOf(String shape, int r, long seed) {
        LinkedHashMap<String, INDArray> m = new LinkedHashMap<>();
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        switch (shape) {
            case "demo" -> {   // conf/demo.yaml: d_model 128, 2 layers, r 8 on c_attn, c_proj, c_fc; 5 trainable label rows
                int d = 128;
                for (int l = 0; l < 2; l++) {
                    lora(m, "transformer.h." + l + ".attn.c_attn", d, 3 * d, r, rng);
                    lora(m, "transformer.h." + l + ".attn.c_proj", d, d, r, rng);
                    lora(m, "transformer.h." + l + ".mlp.c_fc", d, 4 * d, r, rng);
                    lora(m, "transformer.h." + l + ".mlp.c_proj", 4 * d, d, r, rng);
                }
                m.put("transformer.wte.trainable_tokens_delta.default", Nd4j.randn(rng, new long[]{5, d}).castTo(DataType.FLOAT).muli(0.02));
            }
            case "gpt2-small" -> {   // GPT-2 small, LoRA r on c_attn only
                for (int l = 0; l < 12; l++) lora(m, "transformer.h." + l + ".attn.c_attn", 768, 2304, r, rng);
            }
            default -> throw new IllegalArgumentException("shape must be demo or gpt2-small, got " + shape);
        }
        return m;
    }

    private static void lora(Map<String, INDArray> m, String module, int in, int out, int r, org.nd4j.linalg.api.rng.Random rng) {
        m.put(module + ".lora_A.default", Nd4j.randn(rng, new long[]{r, in}).castTo(DataType.FLOAT).muli(0.02));
        m.put(module + ".lora_B.default", Nd4j.randn(rng, new long[]{out, r}).castTo(DataType.FLOAT).muli(0.02));
    }

    /** The task's stand-in for a gradient: the same ND4J op on both paths (value × (partition + 1) / 1000). */
    static INDArray gradient(INDArray value, int partition) {
        return value.mul((partition + 1) / 1000.0f);
    }

    /** Module name of a LoRA tensor (the part before ".lora_"), for the importance sums. */
    static String moduleOf(String tensor) {
        int i = tensor.indexOf(".lora_");
        return i < 0 ? tensor : tensor.substring(0, i);
    }

    // ---------------------------------------------------------------- (b) ND4J arrays on the wire

    /** Adapter-sized tensors as ND4J arrays by name: what {@link AdapterTensors} holds as float arrays. */
    public static final class NdTensors implements Serializable {
        private static final long serialVersionUID = 1L;
        public final LinkedHashMap<String, INDArray> data = new LinkedHashMap<>();

        /** Copies (c order, float) of {@code tensors}: the caller's arrays may change after. */
        public static NdTensors copyOf(Map<String, INDArray> tensors) {
            NdTensors t = new NdTensors();
            tensors.forEach((k, v) -> t.data.put(k, v.dup('c').castTo(DataType.FLOAT)));
            return t;
        }

        /** {@code this += other}, adopting other's names (copies) on first use. */
        public NdTensors add(NdTensors other) {
            other.data.forEach((k, v) -> {
                INDArray dst = data.get(k);
                if (dst == null) data.put(k, v.dup('c'));
                else dst.addi(v);
            });
            return this;
        }
    }

    /** The ND4J-array round state: {@link RoundState}'s fields with the tensors as {@link NdTensors}. */
    public static final class NdRoundState implements Serializable {
        private static final long serialVersionUID = 1L;
        public int round;
        public NdTensors adapter;
        public NdTensors methodState;
        public NdTensors moments;
        public long optimizerStep;
        public boolean[] clients;
    }

    /** The ND4J-array task result: a {@link RoundResult} for the counts and sets, its tensors as {@link NdTensors}. */
    public static final class NdRoundResult implements Serializable {
        private static final long serialVersionUID = 1L;
        public RoundResult meta = new RoundResult();
        public NdTensors payload = new NdTensors();

        public NdRoundResult add(NdRoundResult o) {
            meta.add(o.meta);
            payload.add(o.payload);
            return this;
        }
    }

    /** Importance sums as ND4J arrays: module → [Σ‖delta‖², rows] (double). */
    public static final class NdImportance implements Serializable {
        private static final long serialVersionUID = 1L;
        public final TreeMap<String, INDArray> byModule = new TreeMap<>();

        public NdImportance add(NdImportance o) {
            o.byModule.forEach((k, v) -> {
                INDArray dst = byModule.get(k);
                if (dst == null) byModule.put(k, v.dup());
                else dst.addi(v);
            });
            return this;
        }
    }

    // ---------------------------------------------------------------- tasks

    /** The counts a real task sends next to its tensors (the same on both paths). */
    static void fillMeta(RoundResult r, int partition) {
        r.weight = 1000 + partition;
        r.lossSum = 3.5 * (1000 + partition);
        r.targets = 1000 + partition;
        r.tokens = 1024;
        r.steps = 1;
        r.shardExamples = 400;
        r.executors.add("driver@" + ProcessHandle.current().pid());
        r.baseLoads.put("driver@" + ProcessHandle.current().pid(), 1);
    }

    static RoundResult floatResult(RoundState st, int partition) {
        RoundResult r = new RoundResult();
        Map<String, INDArray> w = st.adapter().toArrays();               // copyInto's conversion
        Map<String, INDArray> g = new LinkedHashMap<>();
        w.forEach((k, v) -> g.put(k, gradient(v, partition)));
        r.payload = AdapterTensors.of(g);                                // ofGradients' conversion
        fillMeta(r, partition);
        return r;
    }

    static NdRoundResult ndResult(NdRoundState st, int partition) {
        NdRoundResult r = new NdRoundResult();
        st.adapter.data.forEach((k, v) -> r.payload.data.put(k, gradient(v, partition)));
        fillMeta(r.meta, partition);
        return r;
    }

    static ImportanceSums floatImportance(AdapterTensors adapter, int partition) {
        ImportanceSums s = new ImportanceSums();
        adapter.toArrays().forEach((k, v) -> {
            INDArray g = gradient(v, partition);
            s.add(moduleOf(k), g.mul(g).sumNumber().doubleValue(), 100 + partition);
        });
        return s;
    }

    static NdImportance ndImportance(NdTensors adapter, int partition) {
        NdImportance s = new NdImportance();
        adapter.data.forEach((k, v) -> {
            INDArray g = gradient(v, partition);
            INDArray add = Nd4j.createFromArray(g.mul(g).sumNumber().doubleValue(), 100.0 + partition);
            s.add(one(moduleOf(k), add));
        });
        return s;
    }

    private static NdImportance one(String module, INDArray v) {
        NdImportance s = new NdImportance();
        s.byModule.put(module, v);
        return s;
    }

    static final class FloatTrainTask implements Function2<Integer, Iterator<Integer>, Iterator<RoundResult>> {
        private static final long serialVersionUID = 1L;
        private final Broadcast<RoundState> b;
        FloatTrainTask(Broadcast<RoundState> b) { this.b = b; }
        @Override public Iterator<RoundResult> call(Integer p, Iterator<Integer> ignored) { return List.of(floatResult(b.value(), p)).iterator(); }
    }

    static final class NdTrainTask implements Function2<Integer, Iterator<Integer>, Iterator<NdRoundResult>> {
        private static final long serialVersionUID = 1L;
        private final Broadcast<NdRoundState> b;
        NdTrainTask(Broadcast<NdRoundState> b) { this.b = b; }
        @Override public Iterator<NdRoundResult> call(Integer p, Iterator<Integer> ignored) { return List.of(ndResult(b.value(), p)).iterator(); }
    }

    static final class FloatImportanceTask implements Function2<Integer, Iterator<Integer>, Iterator<ImportanceSums>> {
        private static final long serialVersionUID = 1L;
        private final Broadcast<AdapterTensors> b;
        FloatImportanceTask(Broadcast<AdapterTensors> b) { this.b = b; }
        @Override public Iterator<ImportanceSums> call(Integer p, Iterator<Integer> ignored) { return List.of(floatImportance(b.value(), p)).iterator(); }
    }

    static final class NdImportanceTask implements Function2<Integer, Iterator<Integer>, Iterator<NdImportance>> {
        private static final long serialVersionUID = 1L;
        private final Broadcast<NdTensors> b;
        NdImportanceTask(Broadcast<NdTensors> b) { this.b = b; }
        @Override public Iterator<NdImportance> call(Integer p, Iterator<Integer> ignored) { return List.of(ndImportance(b.value(), p)).iterator(); }
    }

    static final class NdRoundResultSum implements Function2<NdRoundResult, NdRoundResult, NdRoundResult> {
        private static final long serialVersionUID = 1L;
        @Override public NdRoundResult call(NdRoundResult a, NdRoundResult b) { return a.add(b); }
    }

    static final class NdImportanceSum implements Function2<NdImportance, NdImportance, NdImportance> {
        private static final long serialVersionUID = 1L;
        @Override public NdImportance call(NdImportance a, NdImportance b) { return a.add(b); }
    }

    // ---------------------------------------------------------------- one round of each, timed from the driver's tensors

    /** Today's train round; returns the summed gradients as ND4J arrays (what the driver's optimizer step takes). */
    static Map<String, INDArray> floatTrainRound(JavaSparkContext sc, JavaRDD<Integer> parts, Map<String, INDArray> adapter, int round) throws Exception {
        RoundState st = new RoundState(round, AdapterTensors.of(adapter), new AdapterTensors(), null, 0);
        Broadcast<RoundState> b = sc.broadcast(st);
        try {
            RoundResult sum = PartitionOrderSum.sum(parts.mapPartitionsWithIndex(new FloatTrainTask(b), false), new RoundResultSum());
            return sum.payload.toArrays();
        } finally {
            b.destroy();
        }
    }

    static Map<String, INDArray> ndTrainRound(JavaSparkContext sc, JavaRDD<Integer> parts, Map<String, INDArray> adapter, int round) throws Exception {
        NdRoundState st = new NdRoundState();
        st.round = round;
        st.adapter = NdTensors.copyOf(adapter);
        st.methodState = new NdTensors();
        Broadcast<NdRoundState> b = sc.broadcast(st);
        try {
            return PartitionOrderSum.sum(parts.mapPartitionsWithIndex(new NdTrainTask(b), false), new NdRoundResultSum()).payload.data;
        } finally {
            b.destroy();
        }
    }

    static Map<String, Double> floatImportanceRound(JavaSparkContext sc, JavaRDD<Integer> parts, Map<String, INDArray> adapter) throws Exception {
        Broadcast<AdapterTensors> b = sc.broadcast(AdapterTensors.of(adapter));
        try {
            return PartitionOrderSum.sum(parts.mapPartitionsWithIndex(new FloatImportanceTask(b), false), new ImportanceSumsAdd()).means();
        } finally {
            b.destroy();
        }
    }

    static Map<String, Double> ndImportanceRound(JavaSparkContext sc, JavaRDD<Integer> parts, Map<String, INDArray> adapter) throws Exception {
        Broadcast<NdTensors> b = sc.broadcast(NdTensors.copyOf(adapter));
        try {
            NdImportance s = PartitionOrderSum.sum(parts.mapPartitionsWithIndex(new NdImportanceTask(b), false), new NdImportanceSum());
            Map<String, Double> m = new TreeMap<>();
            s.byModule.forEach((k, v) -> m.put(k, v.getDouble(1) > 0 ? v.getDouble(0) / v.getDouble(1) : 0.0));
            return m;
        } finally {
            b.destroy();
        }
    }

    // ---------------------------------------------------------------- sizes

    static long serialisedBytes(SerializerInstance ser, Object o) {
        ByteBuffer b = ser.serialize(o, ClassTag$.MODULE$.apply(Object.class));
        return b.remaining();
    }

    /** Bytes of {@code o} serialised and then compressed with Spark's block codec (spark.io.compression.codec), as a broadcast ships it. */
    static long compressedBytes(SparkConf conf, SerializerInstance ser, Object o) throws Exception {
        ByteBuffer b = ser.serialize(o, ClassTag$.MODULE$.apply(Object.class));
        byte[] raw = new byte[b.remaining()];
        b.get(raw);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = CompressionCodec.createCodec(conf).compressedOutputStream(bytes)) {
            out.write(raw);
        }
        return bytes.size();
    }

    /** Median microseconds of serialise + deserialise of {@code o}. */
    static double roundTripMicros(SerializerInstance ser, Object o, int n) {
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            ByteBuffer b = ser.serialize(o, ClassTag$.MODULE$.apply(Object.class));
            Object back = ser.deserialize(b, ClassTag$.MODULE$.apply(Object.class));
            t[i] = (System.nanoTime() - t0) / 1e3;
            if (back == null) throw new IllegalStateException();
        }
        return median(t);
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    static String digest(Map<String, INDArray> m) { return AdapterTensors.of(m).digest(); }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = BenchArgs.parse(args);
        String shape = a.getOrDefault("shape", "demo");
        int r = Integer.parseInt(a.getOrDefault("r", "8"));
        int p = Integer.parseInt(a.getOrDefault("partitions", "2"));
        int rounds = Integer.parseInt(a.getOrDefault("rounds", "50"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "10"));
        String cpu = a.getOrDefault("cpu", "unknown");

        Map<String, INDArray> adapter = adapterOf(shape, r, 42);
        long floats = adapter.values().stream().mapToLong(INDArray::length).sum();
        try (JavaSparkContext sc = SparkSetup.context("kryo-round-bench", "local[" + p + "]", Map.of("spark.kryo.registrator", REGISTRATOR))) {
            JavaRDD<Integer> parts = sc.parallelize(IntStream.range(0, p).boxed().toList(), p);
            SerializerInstance ser = sc.env().serializer().newInstance();
            if (!(sc.env().serializer() instanceof org.apache.spark.serializer.KryoSerializer)) throw new IllegalStateException("not Kryo: " + sc.env().serializer());

            // sizes: one broadcast value and one task result of each kind
            RoundState fst = new RoundState(1, AdapterTensors.of(adapter), new AdapterTensors(), null, 0);
            NdRoundState nst = new NdRoundState();
            nst.round = 1;
            nst.adapter = NdTensors.copyOf(adapter);
            nst.methodState = new NdTensors();
            long fBc = serialisedBytes(ser, fst), nBc = serialisedBytes(ser, nst);
            long fBcZ = compressedBytes(sc.getConf(), ser, fst), nBcZ = compressedBytes(sc.getConf(), ser, nst);
            RoundResult fres = floatResult(fst, 0);
            NdRoundResult nres = ndResult(nst, 0);
            long fRes = serialisedBytes(ser, fres), nRes = serialisedBytes(ser, nres);
            ImportanceSums fimp = floatImportance(fst.adapter(), 0);
            NdImportance nimp = ndImportance(nst.adapter, 0);
            long fImpBc = serialisedBytes(ser, fst.adapter()), nImpBc = serialisedBytes(ser, nst.adapter);
            long fImp = serialisedBytes(ser, fimp), nImp = serialisedBytes(ser, nimp);
            // the INDArray path must bring the same values back
            NdRoundResult nBack = (NdRoundResult) ser.deserialize(ser.serialize(nres, ClassTag$.MODULE$.apply(Object.class)), ClassTag$.MODULE$.apply(Object.class));
            if (!digest(nBack.payload.data).equals(fres.payload.digest())) throw new IllegalStateException("ND4J path changed the values on the wire");

            int n = Math.max(rounds, 20);
            double fBcRt = roundTripMicros(ser, fst, n), nBcRt = roundTripMicros(ser, nst, n);
            double fResRt = roundTripMicros(ser, fres, n), nResRt = roundTripMicros(ser, nres, n);

            // rounds, alternating which path goes first
            double[] fTrain = new double[rounds], nTrain = new double[rounds], fDrop = new double[rounds], nDrop = new double[rounds];
            boolean identical = true;
            for (int i = 0; i < warmup + rounds; i++) {
                boolean floatFirst = i % 2 == 0;
                Map<String, INDArray> fs = null, ns = null;
                Map<String, Double> fi = null, ni = null;
                double ft = 0, nt = 0, fd = 0, nd = 0;
                for (int k = 0; k < 2; k++) {
                    if ((k == 0) == floatFirst) {
                        long t0 = System.nanoTime();
                        fs = floatTrainRound(sc, parts, adapter, i);
                        long t1 = System.nanoTime();
                        fi = floatImportanceRound(sc, parts, adapter);
                        long t2 = System.nanoTime();
                        ft = (t1 - t0) / 1e6;
                        fd = (t2 - t1) / 1e6;
                    } else {
                        long t0 = System.nanoTime();
                        ns = ndTrainRound(sc, parts, adapter, i);
                        long t1 = System.nanoTime();
                        ni = ndImportanceRound(sc, parts, adapter);
                        long t2 = System.nanoTime();
                        nt = (t1 - t0) / 1e6;
                        nd = (t2 - t1) / 1e6;
                    }
                }
                identical &= digest(fs).equals(digest(ns)) && fi.equals(ni);
                if (i >= warmup) {
                    fTrain[i - warmup] = ft;
                    nTrain[i - warmup] = nt;
                    fDrop[i - warmup] = fd;
                    nDrop[i - warmup] = nd;
                }
            }
            System.out.printf(Locale.ROOT, "{\"shape\":\"%s\",\"lora_r\":%d,\"adapter_floats\":%d,\"adapter_bytes\":%d,\"partitions\":%d,"
                            + "\"rounds\":%d,\"warmup\":%d,\"cpu\":\"%s\",\"serializer\":\"KryoSerializer + %s\",\"sums_identical\":%b,"
                            + " \"float_arrays\":{\"broadcast_bytes\":%d,\"broadcast_compressed_bytes\":%d,\"task_result_bytes\":%d,"
                            + "\"importance_broadcast_bytes\":%d,\"importance_result_bytes\":%d,\"broadcast_serde_us\":%.0f,\"task_result_serde_us\":%.0f,"
                            + "\"train_round_ms\":%.2f,\"importance_round_ms\":%.2f},"
                            + " \"nd4j_kryo\":{\"broadcast_bytes\":%d,\"broadcast_compressed_bytes\":%d,\"task_result_bytes\":%d,"
                            + "\"importance_broadcast_bytes\":%d,\"importance_result_bytes\":%d,\"broadcast_serde_us\":%.0f,\"task_result_serde_us\":%.0f,"
                            + "\"train_round_ms\":%.2f,\"importance_round_ms\":%.2f}}%n",
                    shape, r, floats, 4 * floats, p, rounds, warmup, cpu, REGISTRATOR, identical,
                    fBc, fBcZ, fRes, fImpBc, fImp, fBcRt, fResRt, median(fTrain), median(fDrop),
                    nBc, nBcZ, nRes, nImpBc, nImp, nBcRt, nResRt, median(nTrain), median(nDrop));
        }
    }
}
