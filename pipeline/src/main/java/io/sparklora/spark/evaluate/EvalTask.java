package io.sparklora.spark.evaluate;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;
import io.sparklora.spark.ShardSource;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TrainSpec;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.TokenBlocks;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;

import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Evaluation of one partition on the executor: for every target (base, adapted, merged, ...) the summed
 * token NLL over the partition's validation blocks and, where labels exist, how many examples the model
 * labels correctly: by the label whose tokens get the highest total log-likelihood after the prompt
 * ({@code acc}), and by the highest log-likelihood per byte of the label's text ({@code acc_norm}, as
 * lm-evaluation-harness defines it, which does not favour short labels).
 */
public final class EvalTask implements Function2<Integer, Iterator<Integer>, Iterator<EvalSums>> {
    private static final long serialVersionUID = 1L;
    private final List<EvalTarget> targets;
    private final AdapterConfig adapterConfig;
    private final Map<String, String> shareGroups;
    private final Broadcast<AdapterTensors> adapter;
    private final ShardSource blocks;           // may be null
    private final ExampleSource examples;       // may be null
    private final int batchSize;
    private final SerializableConfiguration conf;

    public EvalTask(List<EvalTarget> targets, AdapterConfig adapterConfig, Map<String, String> shareGroups, Broadcast<AdapterTensors> adapter,
                    ShardSource blocks, ExampleSource examples, int batchSize, SerializableConfiguration conf) {
        this.targets = targets;
        this.adapterConfig = adapterConfig;
        this.shareGroups = shareGroups;
        this.adapter = adapter;
        this.blocks = blocks;
        this.examples = examples;
        this.batchSize = batchSize;
        this.conf = conf;
    }

    @Override
    public Iterator<EvalSums> call(Integer partition, Iterator<Integer> ignored) {
        TaskEngine.bind();
        EvalSums out = new EvalSums();
        TokenBlocks data = blocks != null && partition < blocks.partitions() ? blocks.load(partition, conf.get()) : null;
        List<LabelledExample> ex = examples != null && partition < examples.partitions() ? examples.load(partition, conf.get()) : List.of();
        for (LabelledExample e : ex) out.countLabel(e.label());
        double[] labelBytes = ex.isEmpty() ? null : labelBytes(examples.labelNames());
        for (EvalTarget t : targets) {
            TransformerLM model = build(t);
            double[] s = out.of(t.name());
            if (data != null) {
                for (int start = 0; start < data.size(); start += batchSize) {
                    int n = Math.min(batchSize, data.size() - start);
                    int[] idx = new int[n];
                    for (int i = 0; i < n; i++) idx[i] = start + i;
                    CrossEntropyLoss.Result r = model.loss(data.batch(idx));
                    s[EvalSums.NLL] += r.sumLoss();
                    s[EvalSums.TOKENS] += r.count();
                }
            }
            for (LabelledExample e : ex) {
                double[] nll = labelNll(model, e.prompt(), examples.labelTokens());
                if (argmin(nll, null) == e.label()) s[EvalSums.CORRECT]++;
                if (argmin(nll, labelBytes) == e.label()) s[EvalSums.CORRECT_NORM]++;
                s[EvalSums.EXAMPLES]++;
            }
        }
        return List.of(out).iterator();
    }

    private TransformerLM build(EvalTarget t) {
        if (t.mode() == EvalTarget.Mode.BASE) return BaseModelCache.model(t.model(), conf.get());
        // merging writes into the targeted weights, and trained biases are loaded: both get private copies
        // (the cached base's tensors are copy-on-write), so the executor's shared base stays as loaded
        TransformerLM model = BaseModelCache.model(t.model(), conf.get());
        AttachedAdapter a = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, adapterConfig, 0, shareGroups);
        adapter.value().copyInto(a.stateTensors());
        if (t.rank() > 0 && !a.method().useRank(a, t.rank())) {
            throw new IllegalArgumentException("evaluate: adapter type '" + adapterConfig.method() + "' cannot be used at rank " + t.rank());
        }
        if (t.mode() == EvalTarget.Mode.MERGED) a.merge();
        return model;
    }

    /** The label whose continuation tokens have the highest total log-likelihood after {@code prompt}. */
    public static int predict(TransformerLM model, int[] prompt, List<int[]> labels) {
        return argmin(labelNll(model, prompt, labels), null);
    }

    /**
     * Negative log-likelihood of each label's tokens after {@code prompt}, in one forward pass: the
     * prompt followed by each label is one row of a batch ({@link #continuationNll}).
     */
    public static double[] labelNll(TransformerLM model, int[] prompt, List<int[]> labels) {
        int[][] prompts = new int[labels.size()][];
        java.util.Arrays.fill(prompts, prompt);
        return continuationNll(model, prompts, labels.toArray(new int[0][]), null);
    }

    /**
     * Negative log-likelihood of the tokens {@code continuations[b]} after {@code prompts[b]}, for B pairs in one forward
     * pass: pair b is row b of a batch [B, T], T = max_b(len(prompts[b]) + len(continuations[b]) − 1), holding the
     * prompt then the continuation but its last token. A shorter row is padded after its end, which causal attention
     * keeps from mattering; only the continuation positions' logits are read:
     * nll[b] = Σ_j (logsumexp(z[b, P_b − 1 + j]) − z[b, P_b − 1 + j, c_b[j]]).
     * Row b runs with adapter {@code adapters[b]} alone ({@link TransformerLM#BASE_ONLY}: the base), a mixed-adapter
     * batch; {@code adapters} null: the model's active adapters for every row.
     */
    public static double[] continuationNll(TransformerLM model, int[][] prompts, int[][] continuations, String[] adapters) {
        int pairs = prompts.length;
        int len = 0, count = 0;
        for (int b = 0; b < pairs; b++) {
            len = Math.max(len, prompts[b].length + continuations[b].length - 1);
            count += continuations[b].length;
        }
        int[][] in = new int[pairs][len];
        int[] rows = new int[count], targets = new int[count], owner = new int[count];
        int k = 0;
        for (int b = 0; b < pairs; b++) {
            int[] prompt = prompts[b], lab = continuations[b];
            System.arraycopy(prompt, 0, in[b], 0, prompt.length);
            System.arraycopy(lab, 0, in[b], prompt.length, lab.length - 1);
            for (int j = 0; j < lab.length; j++) {
                rows[k] = b * len + prompt.length - 1 + j;     // the position whose next token is lab[j]
                targets[k] = lab[j];
                owner[k++] = b;
            }
        }
        TokenBatch batch = TokenBatch.of(in, new int[pairs][len]);
        INDArray logits = adapters == null ? model.logits(batch) : model.logits(batch, adapters);   // [B·T, V]
        INDArray picked = logits.getRows(rows);                                         // [K, V]
        INDArray max = picked.max(true, 1);
        INDArray lse = Transforms.log(Transforms.exp(picked.subColumnVector(max), false).sum(true, 1), false).addi(max);
        float[][] z = picked.toFloatMatrix();
        double[] lseRows = lse.toDoubleVector();
        double[] nll = new double[pairs];
        for (int i = 0; i < count; i++) nll[owner[i]] += lseRows[i] - z[i][targets[i]];
        Tensors.release(logits, picked, max, lse);
        return nll;
    }

    /** The index of the smallest {@code nll[l] / norm[l]} ({@code norm} null: of {@code nll}); the first on ties. */
    public static int argmin(double[] nll, double[] norm) {
        int best = -1;
        double bestScore = Double.POSITIVE_INFINITY;
        for (int l = 0; l < nll.length; l++) {
            double score = norm == null ? nll[l] : nll[l] / norm[l];
            if (score < bestScore) {
                bestScore = score;
                best = l;
            }
        }
        return best;
    }

    /** UTF-8 bytes of each label's continuation text, {@code " " + name}: lm-eval's acc_norm divisor. */
    static double[] labelBytes(List<String> names) {
        double[] b = new double[names.size()];
        for (int i = 0; i < b.length; i++) b[i] = (" " + names.get(i)).getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        return b;
    }
}
