package io.sparklora.spark.tokenize;

import io.sparklora.data.DatasetManifest;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.SplitAssignment;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.DataFrameReader;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

import static org.apache.spark.sql.functions.coalesce;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.min;
import static org.apache.spark.sql.functions.not;
import static org.apache.spark.sql.functions.sum;
import static org.apache.spark.sql.functions.when;

/**
 * Driver side of the tokenize stage for a manifest's Spark sources (parquet, orc, csv, json, table):
 * each becomes a DataFrame, read on the executors with only the columns it needs.
 *
 * <ol>
 *   <li>{@link #prepare}: loads each source lazily (a path or glob through {@code spark.read()}, Hive-style
 *       {@code key=value} folders becoming columns; a table or view through {@code SparkSession.table}),
 *       resolves its text, prompt/response and label columns and checks their types against the schema, and
 *       applies its {@code filter}. A missing column, a wrong type or a bad filter is an error naming the
 *       column, the source, the manifest and the columns there are, before any job runs.</li>
 *   <li>{@link #count}: one aggregate job per source counts the rows kept and skipped (null, empty or
 *       whitespace-only text; null prompt; null or blank response; null label cell) and fails on a label
 *       value that is not in the manifest's labels, naming the value and the source. The counts go to
 *       {@code manifest.json}; being computed by SQL rather than by task side effects, task retries
 *       cannot inflate them.</li>
 *   <li>{@link #read}: the kept rows through {@link TokenizeReadTables}, keyed by content hash.</li>
 * </ol>
 */
final class TokenizeTables {
    /** Types accepted for a label column; its values are compared with the labels as strings. */
    private static final Set<DataType> LABEL_TYPES = Set.of(DataTypes.StringType, DataTypes.ByteType, DataTypes.ShortType,
            DataTypes.IntegerType, DataTypes.LongType, DataTypes.BooleanType);

    /** One Spark source, ready to read. */
    private record Table(int sourceIndex, String name, String where, boolean promptResponse, boolean labelColumn, int fixedLabel,
                         Dataset<Row> filtered, Column empty, Column noLabel, Column label, Dataset<Row> kept) {}

    private final DatasetManifest manifest;
    private final List<Table> tables;

    private TokenizeTables(DatasetManifest manifest, List<Table> tables) {
        this.manifest = manifest;
        this.tables = tables;
    }

    boolean isEmpty() {
        return tables.isEmpty();
    }

    /**
     * Loads and checks every Spark source of {@code manifest}; file sources are left to {@link TokenizeReadFiles}.
     * Without Spark sources no SparkSession is made.
     */
    static TokenizeTables prepare(JavaSparkContext sc, DatasetManifest manifest) throws IOException {
        List<Table> tables = new ArrayList<>();
        SparkSession session = null;
        for (int i = 0; i < manifest.sources().size(); i++) {
            DatasetManifest.Source s = manifest.source(i);
            if (!s.format().spark()) continue;
            if (session == null) session = session(sc);
            tables.add(table(session, manifest, i, s));
        }
        return new TokenizeTables(manifest, tables);
    }

    /** The session of {@code sc}: the thread's active or the default session when it wraps {@code sc}, else a new one. */
    static SparkSession session(JavaSparkContext sc) {
        if (sc.sc().isStopped()) throw new IllegalStateException("the SparkContext is stopped");
        // builder().getOrCreate() returns the active (or default) session, or makes one on the running context
        SparkSession session = SparkSession.builder().getOrCreate();
        if (session.sparkContext() != sc.sc()) {
            throw new IllegalStateException("the SparkSession found wraps another SparkContext than the stage's");
        }
        return session;
    }

    private static Table table(SparkSession session, DatasetManifest manifest, int index, DatasetManifest.Source s) throws IOException {
        String what = "dataset manifest " + manifest.uri() + ": source '" + s.name() + "'";
        Dataset<Row> df = load(session, s, what);
        StructType schema = df.schema();
        boolean pair;
        String textCol = null, promptCol = null, responseCol = null;
        if (s.promptResponse()) {
            pair = true;
            promptCol = s.promptField();
            responseCol = s.responseField();
        } else if (s.textField() != null) {
            pair = false;
            textCol = s.textField();
        } else if (has(schema, "text")) {
            pair = false;
            textCol = "text";
        } else if (has(schema, "prompt") && has(schema, "response")) {
            pair = true;
            promptCol = "prompt";
            responseCol = "response";
        } else {
            throw new IOException(what + ": has no column 'text' (or 'prompt' and 'response') and names none with text_field"
                    + " (or prompt_field/response_field); columns: " + columns(schema));
        }
        if (pair && (s.label() != null || s.labelField() != null)) {
            throw new IOException(what + ": prompt/response documents cannot have labels");
        }
        Column empty;
        if (pair) {
            Column prompt = column(schema, promptCol, "prompt_field", what), response = column(schema, responseCol, "response_field", what);
            empty = prompt.isNull().or(blank(response));
        } else {
            empty = blank(column(schema, textCol, "text_field", what));
        }
        Column label = null;
        if (s.labelField() != null) {
            StructField f = field(schema, s.labelField(), "label_field", what);
            if (!LABEL_TYPES.contains(f.dataType())) {
                throw new IOException(what + ": label_field column '" + f.name() + "' is " + f.dataType().simpleString()
                        + ", expected string, an integer type or boolean; columns: " + columns(schema));
            }
            label = quoted(f.name()).cast(DataTypes.StringType);
        }
        Dataset<Row> filtered = df;
        if (s.filter() != null) {
            try {
                filtered = df.filter(s.filter());
            } catch (Exception e) {
                throw new IOException(what + ": filter \"" + s.filter() + "\" is not a valid Spark SQL condition on columns "
                        + columns(schema) + ": " + firstLine(e), e);
            }
        }
        Column noLabel = label == null ? lit(false) : not(empty).and(label.isNull());
        List<Column> select = new ArrayList<>();
        if (pair) {
            select.add(quoted(promptCol));
            select.add(quoted(responseCol));
        } else {
            select.add(quoted(textCol));
            if (label != null) select.add(label);
        }
        Dataset<Row> kept = filtered.where(not(empty).and(not(noLabel))).select(select.toArray(Column[]::new));
        int fixed = s.label() == null ? -1 : manifest.labelIndex(s.label());
        return new Table(index, s.name(), what, pair, label != null, fixed, filtered, empty, noLabel, label, kept);
    }

    /** The source as a lazy DataFrame (reading the schema may list files and read footers, but runs no job over the data). */
    private static Dataset<Row> load(SparkSession session, DatasetManifest.Source s, String what) throws IOException {
        if (s.format() == DatasetManifest.Format.TABLE) {
            try {
                return session.table(s.table());
            } catch (Exception e) {
                throw new IOException(what + ": cannot read table '" + s.table() + "' from the session catalog: " + firstLine(e), e);
            }
        }
        String format = s.format().name().toLowerCase(Locale.ROOT);
        DataFrameReader reader = session.read().format(format);
        if (s.format() == DatasetManifest.Format.CSV) {
            // RFC 4180: quoted cells may hold line breaks, and "" is a quote inside a quoted cell
            reader = reader.option("header", s.csvHeader()).option("multiLine", true).option("escape", "\"");
        }
        if (s.format() == DatasetManifest.Format.CSV || s.format() == DatasetManifest.Format.JSON) {
            reader = reader.option("mode", "FAILFAST"); // a malformed record is an error, not a row of nulls
        }
        String base = basePath(s.uri());
        if (base != null) reader = reader.option("basePath", base);
        try {
            return reader.load(s.uri());
        } catch (Exception e) {
            throw new IOException(what + ": cannot read " + s.uri() + " as " + format + ": " + firstLine(e), e);
        }
    }

    /**
     * For a glob, the deepest folder above its first wildcard, so that Spark's partition discovery sees
     * {@code key=value} folders below it as columns; null for a plain path (Spark then uses the path itself).
     */
    static String basePath(String uri) {
        Path p = new Path(uri);
        if (!isGlob(p.toUri().getPath())) return null;
        while (p != null && isGlob(p.toUri().getPath())) p = p.getParent();
        return p == null ? null : p.toString();
    }

    private static boolean isGlob(String path) {
        return path.chars().anyMatch(c -> c == '*' || c == '?' || c == '[' || c == '{');
    }

    /** Counts each source's kept and skipped rows (one job per source) and checks its label values. */
    List<ShardManifest.SourceCounts> count() throws IOException {
        List<ShardManifest.SourceCounts> counts = new ArrayList<>();
        for (Table t : tables) {
            Column bad = t.label() == null ? lit(false)
                    : not(t.empty()).and(t.label().isNotNull()).and(not(t.label().isin(manifest.labels().toArray())));
            Row r;
            try {
                r = t.filtered().agg(org.apache.spark.sql.functions.count(lit(1)), ones(t.empty()), ones(t.noLabel()), ones(bad),
                        min(when(bad, t.label() == null ? lit(null).cast(DataTypes.StringType) : t.label()))).first();
            } catch (Exception e) {
                throw new IOException(t.where() + ": " + firstLine(e), e);
            }
            long rows = r.getLong(0), empty = r.getLong(1), noLabel = r.getLong(2), badRows = r.getLong(3);
            if (badRows > 0) {
                throw new IOException(t.where() + ": label '" + r.getString(4) + "' in label_field column is not in labels "
                        + manifest.labels() + " (" + badRows + " row" + (badRows == 1 ? "" : "s") + " with labels not in the list)");
            }
            counts.add(new ShardManifest.SourceCounts(t.name(), rows - empty - noLabel, empty, noLabel));
        }
        return counts;
    }

    /** The documents of every Spark source, tokenized and keyed, as one RDD (no documents reach the driver). */
    JavaPairRDD<TokenizeKey, EncodedDocument> read(SerializableConfiguration conf, String tokenizerUri, String tokenizerFingerprint,
                                                    SplitAssignment assignment, io.sparklora.tokenize.ChatTemplate chatTemplate) {
        JavaPairRDD<TokenizeKey, EncodedDocument> all = null;
        for (Table t : tables) {
            DatasetManifest.Source s = manifest.source(t.sourceIndex());
            String where = "source '" + s.name() + "' (" + (s.table() != null ? "table " + s.table() : s.uri()) + ") of " + manifest.uri();
            JavaPairRDD<TokenizeKey, EncodedDocument> one = t.kept().javaRDD().mapPartitionsToPair(new TokenizeReadTables(conf,
                    t.sourceIndex(), where, t.promptResponse(), t.labelColumn(), t.fixedLabel(), manifest.labels(),
                    manifest.labelPrompt(), tokenizerUri, tokenizerFingerprint, assignment, chatTemplate, manifest.systemPrompt()));
            all = all == null ? one : all.union(one);
        }
        return all;
    }

    private static Column ones(Column condition) {
        return coalesce(sum(when(condition, 1L).otherwise(0L)), lit(0L));
    }

    /** Null, empty or whitespace only. */
    private static Column blank(Column c) {
        return c.isNull().or(c.rlike("^\\s*$"));
    }

    private static boolean has(StructType schema, String name) {
        return Arrays.asList(schema.fieldNames()).contains(name);
    }

    private static StructField field(StructType schema, String name, String key, String what) throws IOException {
        if (!has(schema, name)) {
            throw new IOException(what + ": " + key + " column '" + name + "' does not exist; columns: " + columns(schema));
        }
        return schema.apply(name);
    }

    /** A string column {@code name}, checked against the schema. */
    private static Column column(StructType schema, String name, String key, String what) throws IOException {
        StructField f = field(schema, name, key, what);
        if (!f.dataType().equals(DataTypes.StringType)) {
            throw new IOException(what + ": " + key + " column '" + name + "' is " + f.dataType().simpleString()
                    + ", expected string; columns: " + columns(schema));
        }
        return quoted(name);
    }

    /** A top-level column by its exact name (dots and spaces in names are not paths). */
    private static Column quoted(String name) {
        return col("`" + name.replace("`", "``") + "`");
    }

    private static String columns(StructType schema) {
        return Arrays.stream(schema.fields()).map(f -> f.name() + " " + f.dataType().simpleString())
                .collect(Collectors.joining(", ", "[", "]"));
    }

    private static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
