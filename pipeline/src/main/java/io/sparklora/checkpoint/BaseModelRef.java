package io.sparklora.checkpoint;

import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * Where the frozen base checkpoint lives (a Hugging Face model directory on any Hadoop file system) and
 * its content hash. Tasks carry only this reference; each executor JVM loads the weights once and
 * caches them by hash and quantization ({@code spark.BaseModelCache}), so the base is never broadcast.
 */
public record BaseModelRef(String uri, String contentHash, io.sparklora.quant.BaseQuantization quantization) implements Serializable {

    public BaseModelRef {
        if (quantization == null) quantization = io.sparklora.quant.BaseQuantization.NONE;
    }

    /** A reference to a base held in full precision (or as its checkpoint is, for a quantized checkpoint). */
    public BaseModelRef(String uri, String contentHash) { this(uri, contentHash, io.sparklora.quant.BaseQuantization.NONE); }

    /** The same base, held as {@code q} says on the executors (NF4 for QLoRA). */
    public BaseModelRef withQuantization(io.sparklora.quant.BaseQuantization q) { return new BaseModelRef(uri, contentHash, q); }

    /** The key a JVM caches this base under: its content and how it is held. */
    public String cacheKey() { return contentHash + "/" + quantization.label(); }

    /** Files whose bytes define the model: config.json and the safetensors weights (and their index). */
    public static boolean definesModel(String fileName) {
        return fileName.equals("config.json") || fileName.endsWith(".safetensors") || fileName.endsWith(".safetensors.index.json");
    }

    /** Hashes the model-defining files of {@code uri} (sha256 over name and bytes, files in name order). */
    public static BaseModelRef of(Configuration conf, String uri) throws IOException {
        List<String> files = HadoopFiles.listFiles(conf, uri);
        if (files.stream().noneMatch(f -> f.endsWith("/config.json"))) {
            throw new IOException("base model " + uri + ": no config.json there (expected a Hugging Face model directory)");
        }
        // refused here, on the driver, by name: executors copy only the safetensors files, so they would not see the pickle
        List<String> names = files.stream().map(f -> f.substring(f.lastIndexOf('/') + 1)).toList();
        PickleFiles.checkModelDirectory(HadoopFiles.path(uri).toString(), names,
                () -> HadoopFiles.readBytes(conf, HadoopFiles.resolve(uri, CheckpointFiles.INDEX_FILE)));
        MessageDigest md = sha256();
        byte[] buf = new byte[1 << 16];
        for (String f : files) {
            String name = f.substring(f.lastIndexOf('/') + 1);
            if (!definesModel(name)) continue;
            md.update(name.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            try (InputStream in = new DigestInputStream(HadoopFiles.open(conf, f), md)) {
                while (in.read(buf) >= 0) { /* digest as we read */ }
            }
        }
        return new BaseModelRef(HadoopFiles.path(uri).toString(), HexFormat.of().formatHex(md.digest()));
    }

    public static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
