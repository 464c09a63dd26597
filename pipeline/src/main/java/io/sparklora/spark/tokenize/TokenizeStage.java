package io.sparklora.spark.tokenize;

import io.sparklora.spark.StageErrors;
import io.sparklora.spark.TokenizerCache;

import io.sparklora.data.DatasetManifest;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.SourceFile;
import io.sparklora.data.SplitAssignment;
import io.sparklora.data.TrainingObjective;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.tokenize.ChatTemplate;
import io.sparklora.tokenize.TextTokenizer;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * The {@code tokenize} stage: a dataset manifest's documents become Arrow token shards.
 *
 * <ol>
 *   <li>The driver lists the source files (sorted) and loads the tokenizer only for its facts (end-of-text
 *       id, label tokens, fingerprint). Spark sources (parquet, orc, csv, json, table) become DataFrames
 *       whose columns are checked against their schemas, and whose kept and skipped rows are counted
 *       ({@link TokenizeTables}).</li>
 *   <li>Executors read and tokenize the files ({@link TokenizeReadFiles}) and the DataFrames' rows
 *       ({@link TokenizeReadTables}); each document goes to train or
 *       validation, and to one of {@code partitions} shards, by a hash of its content
 *       ({@link SplitAssignment}).</li>
 *   <li>{@code repartitionAndSortWithinPartitions} brings each shard's documents together in input order
 *       ({@link TokenizeKey}; a Spark source's documents in content-hash order), spilling to disk as
 *       Spark's sort does, and each partition streams its shard ({@link TokenizeWriteShards}).</li>
 *   <li>The driver writes {@code manifest.json} from the collected per-shard counts, renames the hidden
 *       temporary directory to the output and writes {@code _SUCCESS}.</li>
 * </ol>
 *
 * Output layout ({@code NNNNN} = 00000 .. partitions-1; every shard file exists, possibly with no rows):
 * <pre>
 * OUT/train/part-NNNNN.arrow
 * OUT/validation/part-NNNNN.arrow
 * OUT/validation-examples/part-NNNNN.arrow   (labelled datasets only)
 * OUT/manifest.json
 * OUT/_SUCCESS
 * </pre>
 * The same inputs give byte-identical files. Neither documents nor tokens ever reach the driver. On any
 * error (an empty corpus, bad input, a missing file) nothing is left at the output location, and the
 * error a task raised is rethrown as it was raised, not as Spark's stage-failure report.
 */
public final class TokenizeStage {
    private TokenizeStage() {}

    public static ShardManifest run(JavaSparkContext sc, TokenizeSpec spec) throws IOException {
        Configuration conf = sc.hadoopConfiguration();
        DatasetManifest dataset = DatasetManifest.read(conf, spec.datasetManifestUri());
        List<SourceFile> files = SourceFile.list(conf, dataset);
        TokenizeTables tables = TokenizeTables.prepare(sc, dataset);
        TextTokenizer tokenizer = TokenizerCache.load(conf, spec.tokenizerUri());
        int eos = tokenizer.eosTokenId();
        ChatTemplate chat = dataset.chatTemplate() == null ? null : ChatTemplate.read(conf, dataset.chatTemplate(), spec.tokenizerUri());
        DocumentEncoder encoder = DocumentEncoder.of(tokenizer, dataset, chat);
        int[][] labelIds = encoder.labelIds();
        int longestLabel = 0;
        for (int[] ids : labelIds) longestLabel = Math.max(longestLabel, ids.length);
        int labelPromptTokens = encoder.labelPromptIds().length;
        if (dataset.labelled() && longestLabel + labelPromptTokens >= spec.seqLen()) {
            throw new IllegalArgumentException("dataset manifest " + dataset.uri() + ": the label prompt and the longest label take "
                    + labelPromptTokens + " + " + longestLabel + " tokens, which leaves no room for text in sequences of " + spec.seqLen());
        }
        TrainingObjective objective = spec.objective().resolve(dataset.labelled());
        List<ShardManifest.Label> labels = new ArrayList<>();
        for (int i = 0; i < labelIds.length; i++) labels.add(new ShardManifest.Label(dataset.labels().get(i), labelIds[i]));

        String out = HadoopFiles.path(spec.outputUri()).toString();
        SerializableConfiguration sconf = new SerializableConfiguration(conf);
        SplitAssignment assignment = new SplitAssignment(spec.validationFraction(), spec.partitions(), spec.seed(), dataset.labels());
        ShardManifest[] written = new ShardManifest[1];
        // prompt + label fill at most one block of seqLen + 1 tokens (and the evaluator's input, its last token dropped, seqLen)
        int maxPromptTokens = spec.seqLen() + 1 - longestLabel;
        HadoopFiles.writeDirectory(conf, out, (tmp, fs) -> {
            for (String split : List.of(ShardManifest.TRAIN, ShardManifest.VALIDATION, ShardManifest.VALIDATION_EXAMPLES)) {
                if (!split.equals(ShardManifest.VALIDATION_EXAMPLES) || dataset.labelled()) fs.mkdirs(new Path(tmp, split));
            }
            List<TokenizeShardResult> results;
            List<ShardManifest.SourceCounts> counts = tables.count();
            io.sparklora.spark.FailFast.install(sc.sc());
            try {
                JavaPairRDD<TokenizeKey, EncodedDocument> docs = sc.parallelize(IntStream.range(0, files.size()).boxed().toList(),
                                Math.max(1, Math.min(files.size(), 4 * sc.defaultParallelism())))
                        .mapPartitionsToPair(new TokenizeReadFiles(sconf, dataset, files, spec.tokenizerUri(),
                                tokenizer.fingerprint(), spec.maxLineBytes(), assignment, chat));
                if (!tables.isEmpty()) docs = docs.union(tables.read(sconf, spec.tokenizerUri(), tokenizer.fingerprint(), assignment, chat));
                results = docs.repartitionAndSortWithinPartitions(new TokenizePartitioner(spec.partitions()))
                        .mapPartitionsWithIndex(new TokenizeWriteShards(sconf, tmp.toString(), spec.partitions(), spec.seqLen(),
                                eos, eos, dataset.labelled(), objective == TrainingObjective.LABEL, maxPromptTokens), false)
                        .collect();
            } catch (Exception e) {
                var input = io.sparklora.spark.FailFast.takeInputError(sc.sc());     // bad input: its own message, not retried
                if (input.isPresent()) throw new IllegalArgumentException(input.get(), e);
                throw StageErrors.unwrap(e);
            }
            ShardManifest manifest = new ShardManifest(1, dataset.name(), tokenizer.fingerprint(), tokenizer.vocabSize(), eos, eos,
                    spec.seqLen(), spec.validationFraction(), spec.seed(), dataset.labelled() ? dataset.labelPrompt() : null,
                    labels, splits(results), counts, objective.configName());
            long documents = manifest.documents(ShardManifest.TRAIN) + manifest.documents(ShardManifest.VALIDATION);
            if (documents == 0) {
                throw new IOException("dataset manifest " + dataset.uri() + ": its " + dataset.sources().size() + " sources ("
                        + files.size() + " files) hold no documents");
            }
            if (manifest.rows(ShardManifest.TRAIN) == 0) {
                throw new IOException("dataset manifest " + dataset.uri() + ": no training blocks (all " + documents
                        + " documents went to validation; lower the validation fraction " + spec.validationFraction() + ")");
            }
            manifest.write(conf, tmp.toString());
            written[0] = manifest;
        });
        HadoopFiles.markSuccess(conf, out);
        return written[0];
    }

    /** Shards by split, in part order. */
    private static Map<String, List<ShardManifest.Shard>> splits(List<TokenizeShardResult> results) {
        Map<String, List<ShardManifest.Shard>> splits = new LinkedHashMap<>();
        List<TokenizeShardResult> sorted = new ArrayList<>(results);
        sorted.sort(Comparator.comparing(TokenizeShardResult::split).thenComparingInt(TokenizeShardResult::part));
        for (TokenizeShardResult r : sorted) splits.computeIfAbsent(r.split(), k -> new ArrayList<>()).add(r.toShard());
        return splits;
    }
}
