package io.sparklora.data;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code manifest.json} of a directory of token shards: what the shards were made with and what they hold.
 *
 * <pre>
 * { "schema_version": 1, "dataset": "spam-assassin-demo",
 *   "tokenizer_fingerprint": "9f2c...", "vocab_size": 320, "eos_token_id": 319, "pad_token_id": 319,
 *   "seq_len": 128, "validation_fraction": 0.1, "seed": 0,
 *   "label_prompt": "\nLabel:",                       (null for a plain corpus)
 *   "objective": "label",                             (label | language_model: {@link TrainingObjective})
 *   "labels": [ {"name": "ham", "ids": [12, 40]}, ... ],  (ids: tokens of " " + name)
 *   "splits": { "train": [ {"file": "train/part-00000.arrow", "rows": 12, "documents": 30,
 *                           "tokens": 1500, "targets": 1490, "sha256": "..."}, ... ],
 *               "validation": [...], "validation-examples": [...] },
 *   "sources": [ {"name": "events", "documents": 998, "skipped_empty": 2, "skipped_no_label": 0} ] }
 * </pre>
 *
 * {@code rows} is the number of Arrow rows (blocks, or examples); {@code tokens} the document tokens packed,
 * end-of-text tokens included; {@code targets} the positions that count in the loss. {@code sources} lists
 * the Spark sources (parquet, orc, csv, json, table) with the rows that passed their filter and became
 * documents, and the rows skipped for an empty text or a missing label; it is left out when the dataset
 * has none, and read as empty when absent. There are no
 * timestamps, so the same inputs give the same bytes.
 */
@JsonPropertyOrder({"schema_version", "dataset", "tokenizer_fingerprint", "vocab_size", "eos_token_id", "pad_token_id",
        "seq_len", "validation_fraction", "seed", "label_prompt", "objective", "labels", "splits", "sources"})
public record ShardManifest(
        @JsonProperty(value = "schema_version", required = true) int schemaVersion,
        @JsonProperty(value = "dataset", required = true) String dataset,
        @JsonProperty(value = "tokenizer_fingerprint", required = true) String tokenizerFingerprint,
        @JsonProperty(value = "vocab_size", required = true) int vocabSize,
        @JsonProperty(value = "eos_token_id", required = true) int eosTokenId,
        @JsonProperty(value = "pad_token_id", required = true) int padTokenId,
        @JsonProperty(value = "seq_len", required = true) int seqLen,
        @JsonProperty(value = "validation_fraction", required = true) double validationFraction,
        @JsonProperty(value = "seed", required = true) long seed,
        @JsonProperty(value = "label_prompt", required = true) String labelPrompt,
        @JsonProperty(value = "labels", required = true) List<Label> labels,
        @JsonProperty(value = "splits", required = true) Map<String, List<Shard>> splits,
        @JsonProperty(value = "sources", required = true) @JsonInclude(JsonInclude.Include.NON_EMPTY) List<SourceCounts> sources,
        @JsonProperty(value = "objective") String objective) implements Serializable {

    public static final String FILE_NAME = "manifest.json";
    public static final String TRAIN = "train";
    public static final String VALIDATION = "validation";
    public static final String VALIDATION_EXAMPLES = "validation-examples";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);

    /** A label and its tokens ({@code " " + name}), which an evaluator scores after a prompt. */
    @JsonPropertyOrder({"name", "ids"})
    public record Label(@JsonProperty(value = "name", required = true) String name,
                        @JsonProperty(value = "ids", required = true) int[] ids) implements Serializable {}

    /** One Arrow file; {@code file} is relative to the manifest's directory. */
    @JsonPropertyOrder({"file", "rows", "documents", "tokens", "targets", "sha256"})
    public record Shard(@JsonProperty(value = "file", required = true) String file,
                        @JsonProperty(value = "rows", required = true) long rows,
                        @JsonProperty(value = "documents", required = true) long documents,
                        @JsonProperty(value = "tokens", required = true) long tokens,
                        @JsonProperty(value = "targets", required = true) long targets,
                        @JsonProperty(value = "sha256", required = true) String sha256) implements Serializable {}

    /**
     * Rows of one Spark source: {@code documents} passed its filter and were tokenized; {@code skippedEmpty}
     * had a null, empty or whitespace-only text (or a null prompt, or a null or blank response);
     * {@code skippedNoLabel} had a null label cell.
     */
    @JsonPropertyOrder({"name", "documents", "skipped_empty", "skipped_no_label"})
    public record SourceCounts(@JsonProperty(value = "name", required = true) String name,
                               @JsonProperty(value = "documents", required = true) long documents,
                               @JsonProperty(value = "skipped_empty", required = true) long skippedEmpty,
                               @JsonProperty(value = "skipped_no_label", required = true) long skippedNoLabel) implements Serializable {}

    /** A manifest without Spark-source counts, of a plain corpus or of the language-model objective. */
    public ShardManifest(int schemaVersion, String dataset, String tokenizerFingerprint, int vocabSize, int eosTokenId, int padTokenId,
                         int seqLen, double validationFraction, long seed, String labelPrompt, List<Label> labels,
                         Map<String, List<Shard>> splits) {
        this(schemaVersion, dataset, tokenizerFingerprint, vocabSize, eosTokenId, padTokenId, seqLen, validationFraction, seed,
                labelPrompt, labels, splits, List.of(), TrainingObjective.LANGUAGE_MODEL.configName());
    }

    @JsonCreator
    public ShardManifest {
        // manifests written before the objective existed were language-modelled
        if (objective == null) objective = TrainingObjective.LANGUAGE_MODEL.configName();
        // fixed split order, so the JSON does not depend on how the map was built
        Map<String, List<Shard>> ordered = new LinkedHashMap<>();
        for (String s : List.of(TRAIN, VALIDATION, VALIDATION_EXAMPLES)) if (splits.containsKey(s)) ordered.put(s, List.copyOf(splits.get(s)));
        for (Map.Entry<String, List<Shard>> e : splits.entrySet()) ordered.putIfAbsent(e.getKey(), List.copyOf(e.getValue()));
        splits = ordered;
        labels = List.copyOf(labels);
        sources = sources == null ? List.of() : List.copyOf(sources);
    }

    /** The shards of {@code split}, or an empty list. */
    public List<Shard> split(String split) {
        return splits.getOrDefault(split, List.of());
    }

    public long rows(String split) {
        return split(split).stream().mapToLong(Shard::rows).sum();
    }

    public long documents(String split) {
        return split(split).stream().mapToLong(Shard::documents).sum();
    }

    public boolean labelled() {
        return !labels.isEmpty();
    }

    /** Fails unless {@code fingerprint} ({@code TextTokenizer.fingerprint()}) is the one the shards were made with. */
    public void checkTokenizer(String fingerprint) {
        if (!tokenizerFingerprint.equals(fingerprint)) {
            throw new IllegalArgumentException("token shards of dataset '" + dataset + "' were made with tokenizer sha256 "
                    + tokenizerFingerprint + ", but the tokenizer given has sha256 " + fingerprint
                    + "; use the tokenizer the shards were made with, or re-run the tokenize stage");
        }
    }

    public byte[] toJson() {
        try {
            DefaultPrettyPrinter pretty = new DefaultPrettyPrinter().withObjectIndenter(new DefaultIndenter("  ", "\n"));
            return (JSON.writer(pretty).writeValueAsString(this) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write the shard manifest: " + e.getMessage(), e);
        }
    }

    /** Writes {@code dirUri/manifest.json} atomically. */
    public void write(Configuration conf, String dirUri) throws IOException {
        byte[] json = toJson();
        HadoopFiles.write(conf, HadoopFiles.resolve(dirUri, FILE_NAME), out -> out.write(json));
    }

    /** Reads {@code dirUri/manifest.json}. (The tokenize stage also writes {@code _SUCCESS} once the directory is complete.) */
    public static ShardManifest read(Configuration conf, String dirUri) throws IOException {
        String uri = HadoopFiles.resolve(dirUri, FILE_NAME);
        if (!HadoopFiles.exists(conf, uri)) throw new FileNotFoundException("no token shards at " + dirUri + " (" + uri + " does not exist)");
        ShardManifest m;
        try {
            JsonNode tree = JSON.readTree(HadoopFiles.readBytes(conf, uri));
            // written without "sources" when the dataset has no Spark source (and by versions before them)
            if (tree instanceof ObjectNode o && !o.has("sources")) o.putArray("sources");
            // written before the objective was recorded: those shards were language-modelled
            if (tree instanceof ObjectNode o && !o.has("objective")) o.put("objective", TrainingObjective.LANGUAGE_MODEL.configName());
            m = JSON.treeToValue(tree, ShardManifest.class);
        } catch (JsonProcessingException e) {
            String line = e.getLocation() == null ? "" : ":" + e.getLocation().getLineNr();
            throw new IOException("shard manifest " + uri + line + ": " + e.getOriginalMessage(), e);
        } catch (java.io.CharConversionException e) {
            // Jackson guesses the encoding from the first bytes; bytes that are no text in it fail below the JSON level
            throw new IOException("shard manifest " + uri + ": not JSON text: " + e.getMessage(), e);
        }
        if (m.schemaVersion() != ShardSchema.VERSION) {
            throw new IOException("shard manifest " + uri + ": schema version " + m.schemaVersion() + " is not supported (expected "
                    + ShardSchema.VERSION + "); re-run the tokenize stage");
        }
        for (Map.Entry<String, List<Shard>> split : m.splits().entrySet()) {
            for (Shard s : split.getValue()) {
                if (!io.sparklora.util.PathScope.staysBelow(s.file())) {
                    throw new IOException("shard manifest " + uri + ": split '" + split.getKey() + "' lists shard file '" + s.file()
                            + "', which is not a relative path inside " + dirUri);
                }
            }
        }
        return m;
    }
}
