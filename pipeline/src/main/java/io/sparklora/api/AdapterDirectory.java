package io.sparklora.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A PEFT-layout adapter directory on any Hadoop file system ({@link PeftAdapterFormat} reads local
 * directories; this copies the few small files to a local temporary directory first and removes it after).
 */
public final class AdapterDirectory {
    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterDirectory() {}

    /** Whether {@code uri} holds an adapter (its adapter_config.json and adapter_model.safetensors). */
    public static boolean exists(Configuration conf, String uri) {
        try {
            return HadoopFiles.exists(conf, HadoopFiles.resolve(uri, PeftAdapterFormat.CONFIG_FILE))
                    && HadoopFiles.exists(conf, HadoopFiles.resolve(uri, PeftAdapterFormat.WEIGHTS_FILE));
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** The adapter's config, base model and tensor shapes (reads headers only). */
    public static AdapterInfo info(Configuration conf, String uri) {
        return withLocalCopy(conf, uri, local -> {
            AdapterConfig config = PeftAdapterFormat.readConfig(local.resolve(PeftAdapterFormat.CONFIG_FILE));
            Map<String, long[]> shapes = new LinkedHashMap<>();
            long values = 0;
            try (SafetensorsReader r = SafetensorsReader.open(local.resolve(PeftAdapterFormat.WEIGHTS_FILE))) {
                for (String n : r.names()) {
                    long[] s = r.shape(n);
                    shapes.put(n, s);
                    long c = 1;
                    for (long d : s) c *= d;
                    values += c;
                }
            }
            return new AdapterInfo(config, baseModel(local), values, java.util.Collections.unmodifiableMap(shapes));
        });
    }

    /** The base model URI the adapter was saved against ({@code base_model_name_or_path}). */
    public static String baseModel(Configuration conf, String uri) {
        return withLocalCopy(conf, uri, AdapterDirectory::baseModel);
    }

    /** Attaches the adapter at {@code uri} to {@code model} under the trainer's adapter name. */
    public static AttachedAdapter attach(Configuration conf, String uri, TransformerLM model) {
        return withLocalCopy(conf, uri, local -> PeftAdapterFormat.load(model, local, io.sparklora.train.TrainSpec.ADAPTER_NAME));
    }

    /** The base model an adapter in a local directory names ({@code base_model_name_or_path}). */
    static String baseModel(Path local) throws IOException {
        JsonNode c = JSON.readTree(Files.readString(local.resolve(PeftAdapterFormat.CONFIG_FILE)));
        String base = c.path("base_model_name_or_path").asText("");
        if (base.isEmpty()) throw new IllegalArgumentException(local + ": adapter_config.json names no base_model_name_or_path");
        return base;
    }

    interface LocalBody<T> {
        T apply(Path local) throws IOException;
    }

    static <T> T withLocalCopy(Configuration conf, String uri, LocalBody<T> body) {
        try {
            if (!exists(conf, uri)) {
                String pickle = io.sparklora.checkpoint.PickleFiles.firstPickle(     // listFiles: [] for a path that does not exist
                        HadoopFiles.listFiles(conf, uri).stream().map(f -> f.substring(f.lastIndexOf('/') + 1)).toList());
                if (pickle != null) {
                    throw io.sparklora.checkpoint.PickleFiles.refusal(uri, pickle + " (there is no " + PeftAdapterFormat.WEIGHTS_FILE + ")",
                            io.sparklora.checkpoint.PickleFiles.convertAdapter());
                }
                throw new IllegalArgumentException(uri + ": not an adapter directory (needs " + PeftAdapterFormat.CONFIG_FILE
                        + " and " + PeftAdapterFormat.WEIGHTS_FILE + ")");
            }
            Path local = HadoopFiles.copyToLocal(conf, uri);
            try {
                return body.apply(local);
            } finally {
                HadoopFiles.deleteLocalTree(local);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(uri + ": " + e.getMessage(), e);
        }
    }
}
