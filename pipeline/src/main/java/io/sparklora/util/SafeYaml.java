package io.sparklora.util;

import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.util.JsonParserDelegate;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.yaml.snakeyaml.LoaderOptions;

import java.io.IOException;
import java.util.Set;

/**
 * YAML as spark-lora reads it (pipeline configs, dataset manifests): plain data, nothing else.
 *
 * <p>Jackson reads YAML through SnakeYAML's event parser, never through SnakeYAML's object constructor, so a tag
 * such as {@code !!javax.script.ScriptEngineManager} cannot make it build an object. Left alone, though, Jackson
 * drops such a tag silently and reads what follows as plain data, which hides a hostile or mistaken file. Here
 * every explicit tag outside YAML's core schema ({@code !!str}, {@code !!int}, {@code !!float}, {@code !!bool},
 * {@code !!null}, {@code !!seq}, {@code !!map}) is refused, naming the tag and its line, and so is nesting deeper
 * than {@link #MAX_DEPTH} (no config comes near it; a deeper document would only drive recursive deserializers
 * towards a {@code StackOverflowError}). SnakeYAML's scanner reads at most {@link #MAX_CODE_POINTS} code points.
 * Aliases are not expanded (Jackson reads {@code *name} as the anchor's name), so an alias bomb cannot grow.
 *
 * <p>The refusal is a {@link JsonParseException}, so callers report it as they report any other syntax error.
 */
public final class SafeYaml {
    /** Deepest nesting of mappings and sequences a document may have. */
    public static final int MAX_DEPTH = 64;
    /** Largest document, in code points (SnakeYAML's own default: 3 MiB). */
    public static final int MAX_CODE_POINTS = 3 * 1024 * 1024;

    private static final String CORE = "tag:yaml.org,2002:";
    private static final Set<String> CORE_TAGS = Set.of("str", "int", "float", "bool", "null", "seq", "map");

    private SafeYaml() {}

    /** A YAML factory with SnakeYAML's limits set; read through {@link #parser} so that tags and depth are checked. */
    public static YAMLFactory factory() {
        LoaderOptions options = new LoaderOptions();
        options.setCodePointLimit(MAX_CODE_POINTS);
        return YAMLFactory.builder().loaderOptions(options).build();
    }

    /** The tree of one YAML document (null for an empty one), checked. */
    public static JsonNode readTree(ObjectMapper yaml, byte[] document) throws IOException {
        try (JsonParser p = parser(yaml, yaml.getFactory().createParser(document))) {
            return yaml.readTree(p);
        }
    }

    /** {@code raw} (a parser of {@code yaml}'s YAML factory) with every token checked for tags and depth. */
    public static JsonParser parser(ObjectMapper yaml, JsonParser raw) {
        raw.setCodec(yaml);
        return new Checked(raw);
    }

    /** Checks each token as the deserializer pulls it. */
    private static final class Checked extends JsonParserDelegate {
        private int depth;

        Checked(JsonParser d) {
            super(d);
        }

        @Override
        public JsonToken nextToken() throws IOException {
            JsonToken t = delegate.nextToken();
            if (t == null) return null;
            if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
                if (++depth > MAX_DEPTH) {
                    throw new JsonParseException(delegate, "nesting deeper than " + MAX_DEPTH + " levels");
                }
            } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
                depth--;
            }
            if (t != JsonToken.FIELD_NAME && t != JsonToken.END_OBJECT && t != JsonToken.END_ARRAY) checkTag();
            return t;
        }

        @Override
        public JsonParser skipChildren() throws IOException {
            // skipped values are read through nextToken too, so nothing escapes the checks
            if (currentToken() != JsonToken.START_OBJECT && currentToken() != JsonToken.START_ARRAY) return this;
            int open = 1;
            while (open > 0) {
                JsonToken t = nextToken();
                if (t == null) return this;
                if (t.isStructStart()) open++;
                else if (t.isStructEnd()) open--;
            }
            return this;
        }

        private void checkTag() throws IOException {
            Object id = delegate.getTypeId();
            String tag = id == null ? null : id.toString();
            if (tag == null || tag.isEmpty()) return;
            if (tag.startsWith(CORE) && CORE_TAGS.contains(tag.substring(CORE.length()))) return;
            String shown = tag.startsWith(CORE) ? "!!" + tag.substring(CORE.length()) : "!" + tag;
            throw new JsonParseException(delegate, "the YAML tag " + shown + " is not allowed: spark-lora reads plain"
                    + " mappings, lists, strings, numbers and booleans, and never builds objects from tags");
        }
    }
}
