package io.sparklora.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.StorageWriteException;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * {@code metrics.jsonl}: one JSON object per line ({@code stage}, {@code step}/{@code round}, {@code loss}, ...).
 * The file is small, so every append rewrites it atomically: object stores have no append, and a reader
 * never sees a torn line. A {@code null} URI keeps the lines in memory only.
 */
public final class MetricsLog {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Configuration conf;
    private final String uri;
    private final List<JsonNode> lines = new ArrayList<>();

    public MetricsLog(Configuration conf, String uri) {
        this.conf = conf;
        this.uri = uri;
        if (uri == null) return;
        try {
            if (HadoopFiles.exists(conf, uri)) {
                for (String l : HadoopFiles.readString(conf, uri).split("\n")) if (!l.isBlank()) lines.add(JSON.readTree(l));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read metrics " + uri + ": " + e.getMessage(), e);
        }
    }

    public static MetricsLog inMemory() { return new MetricsLog(null, null); }

    public ObjectNode line(String stage) { return JSON.createObjectNode().put("stage", stage); }

    public synchronized void append(ObjectNode line) {
        lines.add(line);
        flush();
    }

    /** Drops lines (a stage restarting, or resuming after its last checkpoint) and rewrites the file. */
    public synchronized void removeIf(Predicate<JsonNode> drop) {
        if (lines.removeIf(drop)) flush();
    }

    public synchronized List<JsonNode> lines() { return List.copyOf(lines); }

    private void flush() {
        if (uri == null) return;
        StringBuilder sb = new StringBuilder();
        for (JsonNode l : lines) sb.append(l.toString()).append('\n');
        try {
            HadoopFiles.writeString(conf, uri, sb.toString());
        } catch (IOException e) {
            // a storage failure names the file already
            throw new UncheckedIOException(e instanceof StorageWriteException ? e.getMessage() : "cannot write metrics " + uri + ": " + e.getMessage(), e);
        }
    }
}
