package io.sparklora.spark;

import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.Nf4Tensor;
import io.sparklora.quant.QuantizedCheckpoints;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.Comparator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The frozen base weights, loaded once per JVM (executor or driver) and shared read-only by every task
 * running there. Each task gets its own {@link TransformerLM} over the shared arrays (modules keep
 * activations for their backward pass, so tasks cannot share module objects), which costs no copy.
 * Nothing may write into these weights: every tensor of a model made here is marked shared
 * ({@link io.sparklora.model.Parameter#markShared()}), so whatever a method trains or changes (trained biases,
 * a merge) first gets a private copy for that model, and the cache stays bit-for-bit as loaded.
 *
 * <p>A base referenced with NF4 quantization ({@link BaseModelRef#quantization()}) is quantized here once, on load, and
 * cached quantized (QLoRA): its linear weights are {@link Nf4Tensor}s, immutable, shared by every task the same way.
 */
public final class BaseModelCache {
    private record Loaded(ModelConfig config, Map<String, INDArray> weights, Map<String, Nf4Tensor> quantized) {}

    private static final Map<String, Loaded> CACHE = new ConcurrentHashMap<>();
    private static final AtomicInteger LOADS = new AtomicInteger();

    private BaseModelCache() {}

    /** A fresh model over the cached weights of {@code ref} (loaded from storage on first use in this JVM). */
    public static TransformerLM model(BaseModelRef ref, Configuration conf) {
        Loaded l = CACHE.computeIfAbsent(ref.cacheKey(), h -> load(ref, conf));
        return shared(TransformerLM.fromWeights(l.config(), l.weights(), l.quantized()));
    }

    /** Freezes the model and marks every tensor shared (copy-on-write). */
    private static TransformerLM shared(TransformerLM m) {
        m.setBaseTrainable(false);
        m.parameters().values().forEach(io.sparklora.model.Parameter::markShared);
        return m;
    }

    /** How many times this JVM read a base from storage (tests assert once per JVM). */
    public static int loads() { return LOADS.get(); }

    private static Loaded load(BaseModelRef ref, Configuration conf) {
        try {
            Path dir = new Path(ref.uri());
            FileSystem fs = HadoopFiles.fs(dir, conf);
            java.nio.file.Path local;
            java.nio.file.Path tmp = null;
            if ("file".equals(fs.getUri().getScheme())) {
                local = java.nio.file.Path.of(dir.toUri());
            } else {
                // HfModelDirectory memory-maps local files, so remote ones are copied to local disk first
                tmp = Files.createTempDirectory("spark-lora-base-");
                for (String f : HadoopFiles.listFiles(conf, ref.uri())) {
                    String name = f.substring(f.lastIndexOf('/') + 1);
                    if (BaseModelRef.definesModel(name)) fs.copyToLocalFile(new Path(f), new Path(tmp.resolve(name).toUri()));
                }
                local = tmp;
            }
            BaseModelRef actual = BaseModelRef.of(conf, local.toUri().toString());
            if (!actual.contentHash().equals(ref.contentHash())) {
                throw new IllegalStateException("base model " + ref.uri() + " changed while the job ran: content hash "
                        + actual.contentHash() + ", the driver saw " + ref.contentHash());
            }
            TransformerLM m = QuantizedCheckpoints.load(local, ref.quantization());
            if (tmp != null) {
                if (!m.quantizedBase() || !QuantizedCheckpoints.isQuantized(tmp)) deleteTree(tmp);
                else deleteOnExit(tmp);     // a 4-bit checkpoint's codes stay memory-mapped from there while the JVM lives
            }
            LOADS.incrementAndGet();
            return new Loaded(m.config(), m.fullPrecisionTensors(), Map.copyOf(m.quantizedWeights()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load base model " + ref.uri() + ": " + e.getMessage(), e);
        }
    }

    /** Registers the directory and its files for deletion when the JVM exits (files first: deleteOnExit runs in reverse). */
    private static void deleteOnExit(java.nio.file.Path dir) throws IOException {
        dir.toFile().deleteOnExit();
        try (var s = Files.list(dir)) {
            for (java.nio.file.Path f : s.toList()) f.toFile().deleteOnExit();
        }
    }

    private static void deleteTree(java.nio.file.Path p) throws IOException {
        try (var s = Files.walk(p)) {
            for (java.nio.file.Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }
}
