package io.sparklora.spark;

import io.sparklora.storage.HadoopFiles;
import io.sparklora.tokenize.TextTokenizer;
import org.apache.hadoop.conf.Configuration;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Tokenizers loaded once per JVM (driver or executor), keyed by the SHA-256 of their {@code tokenizer.json}
 * bytes, so the many tasks of a stage on one executor share one native tokenizer and read the file once.
 * Cached tokenizers live as long as the JVM: do not close them.
 */
public final class TokenizerCache {
    private static final Map<String, TextTokenizer> BY_SHA256 = new ConcurrentHashMap<>();

    private TokenizerCache() {}

    /** Reads {@code uri} and returns its tokenizer, reusing a cached one with the same bytes (for the driver). */
    public static TextTokenizer load(Configuration conf, String uri) throws IOException {
        byte[] bytes = read(conf, uri);
        String sha = TextTokenizer.fingerprintOf(bytes);
        synchronized (TokenizerCache.class) {
            TextTokenizer t = BY_SHA256.get(sha);
            if (t == null) {
                t = fromBytes(bytes);
                BY_SHA256.put(sha, t);
            }
            return t;
        }
    }

    /**
     * The tokenizer whose fingerprint is {@code fingerprint}; {@code uri} is read only on this JVM's first
     * use, and must still hold the same bytes (for executors).
     */
    public static TextTokenizer get(Configuration conf, String uri, String fingerprint) throws IOException {
        TextTokenizer t = BY_SHA256.get(fingerprint);
        if (t != null) return t;
        synchronized (TokenizerCache.class) {
            t = BY_SHA256.get(fingerprint);
            if (t != null) return t;
            byte[] bytes = read(conf, uri);
            String sha = TextTokenizer.fingerprintOf(bytes);
            if (!sha.equals(fingerprint)) {
                throw new IOException("tokenizer " + uri + " changed while the stage ran: sha256 " + sha + ", expected " + fingerprint);
            }
            t = fromBytes(bytes);
            BY_SHA256.put(sha, t);
            return t;
        }
    }

    private static byte[] read(Configuration conf, String uri) throws IOException {
        if (!HadoopFiles.exists(conf, uri)) throw new FileNotFoundException("tokenizer " + uri + " does not exist");
        return HadoopFiles.readBytes(conf, uri);
    }

    /** TextTokenizer loads from a local file; the native tokenizer keeps no reference to it, so it is deleted at once. */
    private static TextTokenizer fromBytes(byte[] bytes) throws IOException {
        Path tmp = Files.createTempFile("spark-lora-tokenizer-", ".json");
        try {
            Files.write(tmp, bytes);
            return TextTokenizer.fromFile(tmp);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
