package io.sparklora.ml;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.Params;

import java.io.IOException;
import java.util.function.BiConsumer;

/**
 * {@code params.json} of a saved estimator or model: {@code {"class", "format_version": 1, "uid",
 * "params": {name: value}}} with every param's value (set or default) in Spark's own JSON encoding of it.
 */
final class ParamsJson {
    static final String FILE = "params.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private ParamsJson() {}

    static ObjectNode encode(Params owner, Class<?> type) throws IOException {
        ObjectNode o = JSON.createObjectNode();
        o.put("class", type.getName()).put("format_version", 1).put("uid", owner.uid());
        ObjectNode p = o.putObject("params");
        for (Param<?> param : owner.params()) {
            if (owner.isDefined(param)) p.set(param.name(), JSON.readTree(encodeValue(owner, param)));
        }
        return o;
    }

    @SuppressWarnings("unchecked")
    private static <T> String encodeValue(Params owner, Param<T> p) {
        return p.jsonEncode(owner.getOrDefault(p));
    }

    /** Reads {@code dir/params.json}, checking that it was written for {@code type}. */
    static JsonNode read(Configuration conf, String dir, Class<?> type) throws IOException {
        String uri = HadoopFiles.resolve(dir, FILE);
        if (!HadoopFiles.exists(conf, uri)) throw new IllegalArgumentException(dir + ": no " + FILE + " (not a saved " + type.getSimpleName() + ")");
        JsonNode o = JSON.readTree(HadoopFiles.readString(conf, uri));
        if (!type.getName().equals(o.path("class").asText())) {
            throw new IllegalArgumentException(uri + ": class is '" + o.path("class").asText() + "', expected " + type.getName());
        }
        return o;
    }

    /** Decodes every param of {@code o} and hands it to {@code set} (the owner's protected setter). */
    @SuppressWarnings("unchecked")
    static void decode(JsonNode o, Params owner, BiConsumer<Param<Object>, Object> set, String where) {
        o.path("params").fields().forEachRemaining(e -> {
            if (!owner.hasParam(e.getKey())) throw new IllegalArgumentException(where + ": unknown param '" + e.getKey() + "'");
            Param<Object> p = (Param<Object>) owner.getParam(e.getKey());
            set.accept(p, p.jsonDecode(e.getValue().toString()));
        });
    }

    static String write(Object json) throws IOException {
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(json);
    }
}
