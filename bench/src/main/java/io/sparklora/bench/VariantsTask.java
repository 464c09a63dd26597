package io.sparklora.bench;

import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.ValidationExample;
import io.sparklora.model.Tensors;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The comparison's task, read through the project's own data path from a pipeline run directory (by default
 * {@code runs/demo}, which {@code bin/spark-lora train} writes): the pretrained base ({@code base/}, a Hugging
 * Face checkpoint) and the tokenized shards of the labelled dataset ({@code shards/adapt/}: train and
 * validation blocks, and the labelled held-out examples). The shards must have been made with the base's
 * tokenizer (checked by fingerprint, as the pipeline's stages check it).
 *
 * <p>Scoring is the evaluate stage's: the mean token loss over the validation blocks
 * ({@link Evaluator}), and the label accuracy over the held-out examples, each label scored by the
 * log-likelihood of its tokens after the prompt, the highest winning — the rule of
 * {@link io.sparklora.spark.evaluate.EvalTask#predict}.
 * {@link #accuracy(TransformerLM)} scores many candidates per forward pass (one pass per example and label
 * took most of a row's time); {@code VariantsBenchmark row --check-accuracy true} checks it against
 * {@link #accuracyOneByOne}.
 */
final class VariantsTask {
    final Path runDir;
    final Path baseDir;
    final ShardManifest manifest;
    final TokenBlocks train;
    final TokenBlocks validation;
    final List<ValidationExample> examples;
    final List<int[]> labelIds;
    final List<String> labelNames;

    private VariantsTask(Path runDir, Path baseDir, ShardManifest manifest, TokenBlocks train, TokenBlocks validation,
                         List<ValidationExample> examples) {
        this.runDir = runDir;
        this.baseDir = baseDir;
        this.manifest = manifest;
        this.train = train;
        this.validation = validation;
        this.examples = examples;
        this.labelIds = new ArrayList<>();
        this.labelNames = new ArrayList<>();
        for (ShardManifest.Label l : manifest.labels()) {
            labelIds.add(l.ids());
            labelNames.add(l.name());
        }
    }

    /** Reads the task from a run directory ({@code base/} and {@code shards/<dataset>/}). */
    static VariantsTask load(Path runDir, String dataset) throws IOException {
        Path base = runDir.resolve("base"), shards = runDir.resolve("shards").resolve(dataset);
        if (!Files.exists(base.resolve("config.json"))) {
            throw new IllegalArgumentException(base + " holds no model: run `bin/spark-lora train` (or bench/run-variants.sh, which does) first");
        }
        if (!Files.exists(shards.resolve("_SUCCESS"))) {
            throw new IllegalArgumentException(shards + " holds no finished tokenized shards: run `bin/spark-lora tokenize` first");
        }
        Configuration conf = new Configuration();
        String uri = shards.toAbsolutePath().toUri().toString();
        ShardManifest m = ShardManifest.read(conf, uri);
        if (!m.labelled()) throw new IllegalArgumentException("dataset " + m.dataset() + " has no labels: the comparison needs a labelled task");
        Path tok = base.resolve("tokenizer.json");
        if (Files.exists(tok)) m.checkTokenizer(TextTokenizer.fingerprintOf(Files.readAllBytes(tok)));
        TokenBlocks train = ArrowShardReader.readSplit(conf, uri, m, ShardManifest.TRAIN);
        TokenBlocks val = ArrowShardReader.readSplit(conf, uri, m, ShardManifest.VALIDATION);
        List<ValidationExample> ex = ArrowShardReader.readValidationExamples(conf, uri, m);
        return new VariantsTask(runDir, base, m, train, val, ex);
    }

    /** A fresh copy of the base model (its own arrays: full fine-tuning may write into it). */
    TransformerLM loadBase() {
        return HfModelDirectory.load(baseDir);
    }

    /** The ids of the label prompt and of every label's tokens (the pipeline's {@code trainable_token_indices: labels}). */
    int[] labelRowIds() {
        java.util.LinkedHashSet<Integer> ids = new java.util.LinkedHashSet<>();
        try (io.sparklora.tokenize.TextTokenizer tok = io.sparklora.tokenize.TextTokenizer.fromModelDir(baseDir)) {
            for (int id : tok.encode(manifest.labelPrompt())) ids.add(id);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        for (ShardManifest.Label l : manifest.labels()) for (int id : l.ids()) ids.add(id);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Mean token loss over the validation blocks. */
    Evaluator.Result validationLoss(TransformerLM model, int batchSize) {
        return Evaluator.evaluate(model, validation, batchSize);
    }

    /** How many held-out examples each label has. */
    int[] labelCounts() {
        int[] c = new int[labelIds.size()];
        for (ValidationExample e : examples) c[e.label()]++;
        return c;
    }

    /** Accuracy figures: correct predictions and how often each label was predicted. */
    record Accuracy(int correct, int total, int[] predicted) {
        double accuracy() { return total == 0 ? Double.NaN : (double) correct / total; }
    }

    Accuracy accuracy(TransformerLM model) {
        return accuracy(model, 32);
    }

    /**
     * Scores every example's label candidates, {@code rowsPerForward} candidate rows per forward pass (rows of
     * one pass are right-padded to the longest; under the causal mask padding after a row's last target changes
     * nothing before it). The same figure as {@link #predict} per example, in far fewer ND4J calls.
     */
    Accuracy accuracy(TransformerLM model, int rowsPerForward) {
        int labels = labelIds.size();
        int perPass = Math.max(1, rowsPerForward / labels);
        int correct = 0;
        int[] predicted = new int[labels];
        for (int start = 0; start < examples.size(); start += perPass) {
            List<ValidationExample> chunk = examples.subList(start, Math.min(examples.size(), start + perPass));
            double[] nll = candidateNll(model, chunk);
            for (int e = 0; e < chunk.size(); e++) {
                int best = -1;
                double bestNll = Double.POSITIVE_INFINITY;
                for (int l = 0; l < labels; l++) {
                    if (nll[e * labels + l] < bestNll) {
                        bestNll = nll[e * labels + l];
                        best = l;
                    }
                }
                predicted[best]++;
                if (best == chunk.get(e).label()) correct++;
            }
        }
        return new Accuracy(correct, examples.size(), predicted);
    }

    /** Summed NLL of each (example, label) pair's label tokens after the example's prompt, row e·labels + l. */
    private double[] candidateNll(TransformerLM model, List<ValidationExample> chunk) {
        int labels = labelIds.size(), rows = chunk.size() * labels, len = 0;
        int[][] in = new int[rows][], tg = new int[rows][];
        for (int e = 0; e < chunk.size(); e++) {
            for (int l = 0; l < labels; l++) {
                int[] prompt = chunk.get(e).promptIds(), lab = labelIds.get(l);
                int n = prompt.length + lab.length - 1;
                int[] ids = Arrays.copyOf(prompt, prompt.length + lab.length);
                System.arraycopy(lab, 0, ids, prompt.length, lab.length);
                in[e * labels + l] = Arrays.copyOf(ids, n);
                int[] t = new int[n];
                Arrays.fill(t, TokenBatch.IGNORE);
                for (int i = prompt.length - 1; i < n; i++) t[i] = ids[i + 1];
                tg[e * labels + l] = t;
                len = Math.max(len, n);
            }
        }
        int pad = manifest.padTokenId();
        for (int r = 0; r < rows; r++) {
            int n = in[r].length;
            in[r] = Arrays.copyOf(in[r], len);
            Arrays.fill(in[r], n, len, pad);
            int[] t = Arrays.copyOf(tg[r], len);
            Arrays.fill(t, n, len, TokenBatch.IGNORE);
            tg[r] = t;
        }
        INDArray logits = model.logits(TokenBatch.of(in, tg));        // [rows·len, V]
        double[] nll = new double[rows];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < len; j++) {
                if (tg[r][j] == TokenBatch.IGNORE) continue;
                double[] z = logits.getRow((long) r * len + j).toDoubleVector();
                double max = Double.NEGATIVE_INFINITY;
                for (double v : z) max = Math.max(max, v);
                double sum = 0;
                for (double v : z) sum += Math.exp(v - max);
                nll[r] += max + Math.log(sum) - z[tg[r][j]];
            }
        }
        Tensors.release(logits);
        return nll;
    }

    /** The per-example rule, one forward per label: the reference the batched scoring is checked against. */
    Accuracy accuracyOneByOne(TransformerLM model) {
        int correct = 0;
        int[] predicted = new int[labelIds.size()];
        for (ValidationExample e : examples) {
            int p = io.sparklora.spark.evaluate.EvalTask.predict(model, e.promptIds(), labelIds);
            predicted[p]++;
            if (p == e.label()) correct++;
        }
        return new Accuracy(correct, examples.size(), predicted);
    }
}
