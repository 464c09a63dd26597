package io.sparklora.spark.tokenize;

import io.sparklora.data.CorpusReader;
import io.sparklora.data.TrainingObjective;

/**
 * What the tokenize stage does.
 *
 * @param datasetManifestUri the dataset manifest (YAML or JSON; {@link io.sparklora.data.DatasetManifest})
 * @param tokenizerUri a Hugging Face {@code tokenizer.json} on any Hadoop file system
 * @param seqLen tokens per training sequence; blocks hold {@code seqLen + 1}
 * @param validationFraction share of documents held out for validation, in [0, 1)
 * @param partitions number of shards per split (and of writing tasks per split)
 * @param outputUri the directory to write; replaced whole when the stage succeeds, untouched when it fails
 * @param maxLineBytes longest input line accepted ({@link CorpusReader#DEFAULT_MAX_LINE_BYTES} = 4 MiB)
 * @param seed mixed into the split hash; another seed gives another train/validation split
 * @param objective what a labelled dataset is trained on ({@link TrainingObjective}; a plain corpus is always
 *                  language-modelled)
 */
public record TokenizeSpec(String datasetManifestUri, String tokenizerUri, int seqLen, double validationFraction,
                           int partitions, String outputUri, long maxLineBytes, long seed, TrainingObjective objective) {

    /** The default objective ({@link TrainingObjective#AUTO}: text → label for a labelled dataset). */
    public TokenizeSpec(String datasetManifestUri, String tokenizerUri, int seqLen, double validationFraction,
                        int partitions, String outputUri, long maxLineBytes, long seed) {
        this(datasetManifestUri, tokenizerUri, seqLen, validationFraction, partitions, outputUri, maxLineBytes, seed, TrainingObjective.AUTO);
    }

    public TokenizeSpec {
        require(objective != null, "objective is missing");
        require(datasetManifestUri != null && !datasetManifestUri.isBlank(), "dataset manifest URI is missing");
        require(tokenizerUri != null && !tokenizerUri.isBlank(), "tokenizer URI is missing");
        require(outputUri != null && !outputUri.isBlank(), "output URI is missing");
        require(seqLen >= 2, "sequence length must be at least 2, got " + seqLen);
        require(validationFraction >= 0 && validationFraction < 1, "validation fraction must be in [0, 1), got " + validationFraction);
        require(partitions >= 1 && partitions <= 99_999, "partitions must be in [1, 99999], got " + partitions);
        require(maxLineBytes >= 1 && maxLineBytes <= Integer.MAX_VALUE - 16, "max line bytes must be in [1, 2^31 - 17], got " + maxLineBytes);
    }

    /** The usual settings: 4 MiB lines, seed 0. */
    public static TokenizeSpec of(String datasetManifestUri, String tokenizerUri, int seqLen, double validationFraction,
                                  int partitions, String outputUri) {
        return new TokenizeSpec(datasetManifestUri, tokenizerUri, seqLen, validationFraction, partitions, outputUri,
                CorpusReader.DEFAULT_MAX_LINE_BYTES, 0L);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException("tokenize: " + message);
    }
}
