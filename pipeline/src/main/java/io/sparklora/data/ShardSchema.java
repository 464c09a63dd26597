package io.sparklora.data;

import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * Arrow schemas of token shards, version {@value #VERSION}.
 *
 * <p>Block shards ({@code train}, {@code validation}), one row per block of {@code seqLen + 1} tokens:
 * <ul>
 *   <li>{@code input_ids}: FixedSizeList&lt;Int32&gt;[seqLen + 1], the tokens;</li>
 *   <li>{@code loss_mask}: FixedSizeList&lt;Int8&gt;[seqLen + 1], 1 where the token is a target.</li>
 * </ul>
 * Validation examples of a labelled dataset ({@code validation-examples}), one row per document:
 * <ul>
 *   <li>{@code prompt_ids}: List&lt;Int32&gt;, tokens of text + label prompt (left-truncated to fit);</li>
 *   <li>{@code label}: Int32, index into the manifest's labels.</li>
 * </ul>
 * No column is nullable. The schema version is also in the schema's metadata.
 */
public final class ShardSchema {
    public static final int VERSION = 1;
    public static final String VERSION_KEY = "sparklora.schema_version";
    public static final String INPUT_IDS = "input_ids";
    public static final String LOSS_MASK = "loss_mask";
    public static final String PROMPT_IDS = "prompt_ids";
    public static final String LABEL = "label";

    private static final ArrowType INT32 = new ArrowType.Int(32, true);
    private static final ArrowType INT8 = new ArrowType.Int(8, true);

    private ShardSchema() {}

    public static Schema blocks(int seqLen) {
        return new Schema(List.of(
                fixedList(INPUT_IDS, INT32, seqLen + 1),
                fixedList(LOSS_MASK, INT8, seqLen + 1)), metadata());
    }

    public static Schema validationExamples() {
        Field item = new Field("item", FieldType.notNullable(INT32), null);
        return new Schema(List.of(
                new Field(PROMPT_IDS, FieldType.notNullable(ArrowType.List.INSTANCE), List.of(item)),
                new Field(LABEL, FieldType.notNullable(INT32), null)), metadata());
    }

    /** Fails, naming the shard and the first column that differs, unless {@code actual} is {@code expected}. */
    public static void check(Schema expected, Schema actual, String shard) throws IOException {
        String version = actual.getCustomMetadata() == null ? null : actual.getCustomMetadata().get(VERSION_KEY);
        if (!String.valueOf(VERSION).equals(version)) {
            throw new IOException("shard " + shard + ": schema version " + version + ", expected " + VERSION);
        }
        for (Field want : expected.getFields()) {
            Field got = actual.getFields().stream().filter(f -> f.getName().equals(want.getName())).findFirst().orElse(null);
            if (got == null) throw new IOException("shard " + shard + ": column " + want.getName() + " is missing");
            if (!got.equals(want)) {
                throw new IOException("shard " + shard + ": column " + want.getName() + " is " + describe(got)
                        + " but the manifest expects " + describe(want));
            }
        }
        for (Field got : actual.getFields()) {
            if (expected.getFields().stream().noneMatch(f -> f.getName().equals(got.getName()))) {
                throw new IOException("shard " + shard + ": unexpected column " + got.getName());
            }
        }
    }

    private static Field fixedList(String name, ArrowType item, int size) {
        return new Field(name, FieldType.notNullable(new ArrowType.FixedSizeList(size)),
                List.of(new Field("item", FieldType.notNullable(item), null)));
    }

    private static Map<String, String> metadata() {
        return Map.of(VERSION_KEY, String.valueOf(VERSION));
    }

    private static String describe(Field f) {
        StringBuilder s = new StringBuilder(f.getType().toString());
        if (!f.getChildren().isEmpty()) s.append('<').append(describe(f.getChildren().get(0))).append('>');
        if (f.isNullable()) s.append(" (nullable)");
        return s.toString();
    }
}
