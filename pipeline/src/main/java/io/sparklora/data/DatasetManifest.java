package io.sparklora.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.util.PathScope;
import io.sparklora.util.SafeYaml;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * A dataset manifest: what the corpus is and where its files are. Read from YAML or JSON (JSON is YAML):
 *
 * <pre>
 * name: spam-assassin-demo
 * description: free text
 * licence: free text                   # optional
 * labels: [ham, spam]                  # optional: a label set (classification); absent = plain LM corpus
 * label_prompt: "\nLabel:"             # optional; between a labelled document and its label
 * chat_template: tokenizer             # optional: render prompt/response pairs through a chat template: "tokenizer"
 *                                      #   (tokenizer_config.json / chat_template.jinja beside tokenizer.json) or a
 *                                      #   .jinja file (relative to the manifest or any Hadoop URI); loss on the
 *                                      #   assistant's tokens only
 * system_prompt: "You are ..."         # optional, with chat_template: a system turn before each pair
 * allow_outside: false                # optional: true lets relative uris and chat_template lead outside the
 *                                      #   manifest's directory (by '..' or a symbolic link); see util.PathScope
 * sources:
 *   - name: ham                        # unique within the manifest
 *     uri: demo/spam-assassin-ham.jsonl  # relative to the manifest's directory, or any Hadoop URI; file or directory
 *     format: jsonl                    # text | jsonl | labelled_dir
 *     text_field: text                 # jsonl: the document text (default "text")
 *     prompt_field: prompt             # jsonl alternative: prompt/response (prompt tokens are not targets)
 *     response_field: response
 *     label_field: label               # jsonl: each record's label (must be in labels)
 *     label: ham                       # optional fixed label for every document of the source
 *     sha256: 1cfc...                  # optional; a single file's content is verified while it is read
 *   - name: events                     # a Spark source: read as a DataFrame on the executors
 *     uri: events                      # file, directory or glob; Hive-style folders (lang=en/) become columns
 *     format: parquet                  # parquet | orc | csv | json (csv: csv_header, default true)
 *     text_field: body                 # a column; or prompt_field/response_field; label_field a label column
 *     filter: "lang = 'en'"            # optional Spark SQL condition on any column
 *   - name: curated
 *     table: db.curated                # instead of uri and format: a table or view of the session catalog
 * </pre>
 *
 * Unknown keys are errors (a misspelt {@code lable:} would otherwise silently drop the labels). A relative path
 * ({@code uri}, {@code chat_template}) must stay inside the manifest's directory, symbolic links followed, unless
 * {@code allow_outside: true}; an absolute path or a URI with a scheme is taken as written ({@link PathScope}).
 * Serializable so that executors get it inside the task closure.
 *
 * @param uri the manifest file itself, fully qualified (error messages name it)
 * @param labels the label set, empty for a plain language-modelling corpus
 */
public record DatasetManifest(String uri, String name, String description, String licence, List<String> labels,
                              String labelPrompt, List<Source> sources, String chatTemplate, String systemPrompt)
        implements Serializable {

    /** {@code chat_template: tokenizer}: the template stored beside the tokenizer. */
    public static final String CHAT_TEMPLATE_OF_TOKENIZER = "tokenizer";

    public static final String DEFAULT_LABEL_PROMPT = "\nLabel:";

    private static final ObjectMapper YAML = new ObjectMapper(SafeYaml.factory());

    private static final Set<String> TOP_KEYS = Set.of("name", "description", "licence", "labels", "label_prompt", "sources",
            "chat_template", "system_prompt", PathScope.ALLOW_OUTSIDE);
    private static final Set<String> SOURCE_KEYS = Set.of("name", "uri", "format", "text_field", "prompt_field",
            "response_field", "label_field", "label", "sha256", "table", "filter", "csv_header");

    public enum Format {
        /** UTF-8 text; documents are separated by blank lines. */
        TEXT,
        /** JSON Lines: one object per line. */
        JSONL,
        /** A directory whose immediate subfolders are label names, each holding text files (one document per file). */
        LABELLED_DIR,
        /** Spark sources, read as DataFrames ({@code spark.read().format(...)}): Apache Parquet. */
        PARQUET,
        /** Apache ORC. */
        ORC,
        /** CSV with RFC 4180 quoting; a header row unless {@code csv_header: false}. */
        CSV,
        /** JSON Lines read by Spark's JSON reader (schema inferred), unlike {@link #JSONL}. */
        JSON,
        /** A table or view of the Spark session catalog ({@code table:} instead of {@code uri:}). */
        TABLE;

        /** True for the formats Spark reads as DataFrames (see {@code spark.tokenize.TokenizeTables}). */
        public boolean spark() {
            return this == PARQUET || this == ORC || this == CSV || this == JSON || this == TABLE;
        }
    }

    /**
     * One source of documents.
     *
     * @param uri fully qualified file, directory or glob URI; null for a {@code table} source
     * @param textField jsonl: the configured text field (Spark sources: column), or null. With neither
     *                  {@code text_field} nor {@code prompt_field}/{@code response_field} configured, each record
     *                  is read from {@code text}, or else from {@code prompt} and {@code response}
     * @param promptField jsonl: the prompt field when the source is configured as prompt/response pairs, else null
     * @param label fixed label of every document, or null
     * @param labelField jsonl: field holding each record's label, or null
     * @param sha256 expected lower-case hex SHA-256 of the (single) file, or null
     * @param table {@link Format#TABLE}: the catalog name ({@code db.name} or a view), else null
     * @param filter Spark sources: a Spark SQL condition rows must meet, or null
     * @param csvHeader {@link Format#CSV}: whether the first line of each file names the columns
     */
    public record Source(String name, String uri, Format format, String textField, String promptField,
                         String responseField, String labelField, String label, String sha256,
                         String table, String filter, boolean csvHeader) implements Serializable {

        /** True when the source's jsonl records are prompt/response pairs by configuration. */
        public boolean promptResponse() {
            return promptField != null;
        }
    }

    public boolean labelled() {
        return !labels.isEmpty();
    }

    /** Index of {@code label} in the label set, or -1. */
    public int labelIndex(String label) {
        return labels.indexOf(label);
    }

    public Source source(int index) {
        return sources.get(index);
    }

    /** Reads and validates the manifest at {@code uri} (a bare path is local). */
    public static DatasetManifest read(Configuration conf, String uri) throws IOException {
        Path file = HadoopFiles.path(uri);
        String where = file.toString();
        if (!HadoopFiles.exists(conf, where)) throw new FileNotFoundException("dataset manifest " + where + " does not exist");
        JsonNode root;
        try {
            root = SafeYaml.readTree(YAML, HadoopFiles.readBytes(conf, where));
        } catch (JsonProcessingException e) {
            String line = e.getLocation() == null ? "" : ":" + e.getLocation().getLineNr();
            throw new IOException("dataset manifest " + where + line + ": not valid YAML/JSON: " + e.getOriginalMessage(), e);
        } catch (java.io.CharConversionException e) {
            throw new IOException("dataset manifest " + where + ": not valid YAML/JSON text: " + e.getMessage(), e);
        }
        return parse(root, file, conf);
    }

    private static DatasetManifest parse(JsonNode root, Path file, Configuration conf) throws IOException {
        String where = file.toString();
        if (root == null || !root.isObject()) throw new IOException("dataset manifest " + where + " is not a mapping of keys");
        checkKeys(root, TOP_KEYS, "", where);
        String name = requiredString(root, "name", "", where);
        String description = optionalString(root, "description", "", where);
        String licence = optionalString(root, "licence", "", where);
        List<String> labels = labels(root, where);
        String labelPrompt = optionalString(root, "label_prompt", "", where);
        if (labelPrompt == null) labelPrompt = DEFAULT_LABEL_PROMPT;
        if (root.has("label_prompt") && labels.isEmpty()) {
            throw new IOException("dataset manifest " + where + ": label_prompt is given but there are no labels");
        }
        JsonNode sourcesNode = root.get("sources");
        if (sourcesNode == null || !sourcesNode.isArray() || sourcesNode.isEmpty()) {
            throw new IOException("dataset manifest " + where + ": 'sources' must be a non-empty list");
        }
        Path dir = file.getParent();
        String allowOutside = optionalString(root, PathScope.ALLOW_OUTSIDE, "", where);
        if (allowOutside != null && !allowOutside.equals("true") && !allowOutside.equals("false")) {
            throw new IOException("dataset manifest " + where + ": " + PathScope.ALLOW_OUTSIDE + " must be true or false, not '" + allowOutside + "'");
        }
        PathScope scope = new PathScope(dir, "dataset manifest " + where, "the manifest's directory", "true".equals(allowOutside), conf);
        List<Source> sources = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (int i = 0; i < sourcesNode.size(); i++) {
            Source s = source(sourcesNode.get(i), "sources[" + i + "]", scope, labels, where);
            if (!names.add(s.name())) {
                throw new IOException("dataset manifest " + where + ": source name '" + s.name() + "' is used twice");
            }
            sources.add(s);
        }
        String chatTemplate = optionalString(root, "chat_template", "", where);
        if (chatTemplate != null && !chatTemplate.equals(CHAT_TEMPLATE_OF_TOKENIZER)) {
            if (chatTemplate.isBlank()) throw new IOException("dataset manifest " + where + ": 'chat_template' is blank");
            chatTemplate = scope.resolve("chat_template", chatTemplate);
        }
        String systemPrompt = optionalString(root, "system_prompt", "", where);
        if (systemPrompt != null && chatTemplate == null) {
            throw new IOException("dataset manifest " + where + ": system_prompt is given but there is no chat_template");
        }
        if (chatTemplate != null && !labels.isEmpty()) {
            throw new IOException("dataset manifest " + where + ": chat_template applies to prompt/response pairs; a labelled dataset has none");
        }
        return new DatasetManifest(where, name, description, licence, List.copyOf(labels), labelPrompt, List.copyOf(sources),
                chatTemplate, systemPrompt);
    }

    private static List<String> labels(JsonNode root, String where) throws IOException {
        JsonNode node = root.get("labels");
        List<String> labels = new ArrayList<>();
        if (node == null || node.isNull()) return labels;
        if (!node.isArray() || node.isEmpty()) throw new IOException("dataset manifest " + where + ": 'labels' must be a non-empty list");
        for (JsonNode l : node) {
            // a scalar such as 1 or true is taken as its text; YAML readers differ on which words are booleans
            if (!l.isValueNode() || l.isNull() || l.asText().isBlank()) {
                throw new IOException("dataset manifest " + where + ": label " + l + " is not a non-blank string");
            }
            if (labels.contains(l.asText())) throw new IOException("dataset manifest " + where + ": label '" + l.asText() + "' is listed twice");
            labels.add(l.asText());
        }
        return labels;
    }

    private static Source source(JsonNode node, String at, PathScope scope, List<String> labels, String where) throws IOException {
        if (!node.isObject()) throw new IOException("dataset manifest " + where + ": " + at + " is not a mapping of keys");
        checkKeys(node, SOURCE_KEYS, at + ".", where);
        String name = requiredString(node, "name", at + ".", where);
        String at2 = "source '" + name + "'";
        String table = optionalString(node, "table", at + ".", where);
        if (table != null && (node.has("uri") || node.has("format"))) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": give either table, or uri and format, not both");
        }
        if (table != null && table.isBlank()) throw new IOException("dataset manifest " + where + ": " + at2 + ": 'table' is blank");
        String rawUri = table != null ? null : requiredString(node, "uri", at + ".", where);
        String formatName = table != null ? "table" : requiredString(node, "format", at + ".", where);
        Format format;
        try {
            format = Format.valueOf(formatName.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            format = null;
        }
        if (format == null || (format == Format.TABLE && table == null)) {
            throw new IOException("dataset manifest " + where + ": " + at2 + " has format '" + formatName
                    + "'; expected text, jsonl, labelled_dir, parquet, orc, csv or json (or 'table:' instead of uri and format)");
        }
        String filter = optionalString(node, "filter", at + ".", where);
        String csvHeader = optionalString(node, "csv_header", at + ".", where);
        if (filter != null && !format.spark()) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": filter applies to parquet, orc, csv, json and table sources only");
        }
        if (filter != null && filter.isBlank()) throw new IOException("dataset manifest " + where + ": " + at2 + ": 'filter' is blank");
        if (csvHeader != null && format != Format.CSV) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": csv_header applies to the csv format only");
        }
        if (csvHeader != null && !csvHeader.equals("true") && !csvHeader.equals("false")) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": csv_header must be true or false, not '" + csvHeader + "'");
        }
        String textField = optionalString(node, "text_field", at + ".", where);
        String promptField = optionalString(node, "prompt_field", at + ".", where);
        String responseField = optionalString(node, "response_field", at + ".", where);
        String labelField = optionalString(node, "label_field", at + ".", where);
        String label = optionalString(node, "label", at + ".", where);
        String sha256 = optionalString(node, "sha256", at + ".", where);

        if (format != Format.JSONL && !format.spark() && (textField != null || promptField != null || responseField != null || labelField != null)) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": text_field, prompt_field, response_field"
                    + " and label_field apply to jsonl and Spark (parquet, orc, csv, json, table) sources only");
        }
        if (textField != null && (promptField != null || responseField != null)) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": give either text_field or prompt_field/response_field, not both");
        }
        if (promptField != null || responseField != null) {
            // one of the pair named: the other keeps its default name
            if (promptField == null) promptField = "prompt";
            if (responseField == null) responseField = "response";
        }
        if (label != null && !labels.contains(label)) {
            throw new IOException("dataset manifest " + where + ": " + at2 + " has label '" + label + "', which is not in labels " + labels);
        }
        if ((label != null || labelField != null) && promptField != null) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": prompt/response documents cannot have labels");
        }
        if (label != null && labelField != null) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": give either label or label_field, not both");
        }
        if (labelField != null && labels.isEmpty()) {
            throw new IOException("dataset manifest " + where + ": " + at2 + " has label_field but the manifest has no labels");
        }
        if (format == Format.LABELLED_DIR) {
            if (labels.isEmpty()) throw new IOException("dataset manifest " + where + ": " + at2 + " is labelled_dir but the manifest has no labels");
            if (label != null) throw new IOException("dataset manifest " + where + ": " + at2 + ": labelled_dir takes its labels from folder names, not 'label'");
            if (sha256 != null) throw new IOException("dataset manifest " + where + ": " + at2 + ": sha256 applies to a single file, not a labelled_dir");
        }
        if (format.spark() && sha256 != null) {
            throw new IOException("dataset manifest " + where + ": " + at2 + ": sha256 applies to text and jsonl files, not to " + formatName + " sources");
        }
        if (sha256 != null) {
            sha256 = sha256.toLowerCase(Locale.ROOT);
            if (!sha256.matches("[0-9a-f]{64}")) {
                throw new IOException("dataset manifest " + where + ": " + at2 + ": sha256 '" + sha256 + "' is not 64 hex digits");
            }
        }
        // Hadoop's Path(parent, child) keeps a child with a scheme as it is and puts a relative one under parent
        String uri = rawUri == null ? null : scope.resolve(at + ".uri", rawUri);
        return new Source(name, uri, format, textField, promptField, responseField, labelField, label, sha256,
                table, filter, !"false".equals(csvHeader));
    }

    private static void checkKeys(JsonNode node, Set<String> allowed, String prefix, String where) throws IOException {
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!allowed.contains(key)) {
                throw new IOException("dataset manifest " + where + ": unknown key '" + prefix + key + "' (known: "
                        + allowed.stream().sorted().toList() + ")");
            }
        }
    }

    private static String requiredString(JsonNode node, String key, String prefix, String where) throws IOException {
        String s = optionalString(node, key, prefix, where);
        if (s == null || s.isBlank()) throw new IOException("dataset manifest " + where + ": missing '" + prefix + key + "'");
        return s;
    }

    private static String optionalString(JsonNode node, String key, String prefix, String where) throws IOException {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) return null;
        if (!v.isValueNode()) throw new IOException("dataset manifest " + where + ": '" + prefix + key + "' must be a string");
        return v.asText();
    }
}
