package io.sparklora.spark.evaluate;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.Tensors;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TokenBlocks;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * One partition of {@link MixedEvaluateStage} on the executor. Every adapter attaches, under its job's name, to one
 * model over the JVM's cached base. The work is a list of rows, each naming the adapter it runs with
 * ({@link TransformerLM#BASE_ONLY}: none) and the sums it adds to:
 * <ul>
 *   <li>every validation block of every job, once with the job's adapter and once with the base: token NLL;</li>
 *   <li>every labelled example of every job, likewise: one row per label (prompt, then the label's tokens but the
 *       last), whose label-position logits give each label's NLL; the example counts as correct when its own label
 *       has the smallest total NLL ({@code acc}) or the smallest NLL per label byte ({@code acc_norm}).</li>
 * </ul>
 * The rows go through the model {@code batchSize} at a time (labelled examples: {@code batchSize} examples' rows), one
 * mixed-adapter forward per batch: the base matmuls once for all rows, each row with its own adapter only.
 */
public final class MixedEvalTask implements Function2<Integer, Iterator<Integer>, Iterator<EvalSums>> {
    private static final long serialVersionUID = 1L;
    private final BaseModelRef base;
    private final List<EvalJob> jobs;
    private final Broadcast<LinkedHashMap<String, AdapterTensors>> tensors;
    private final int batchSize;
    private final SerializableConfiguration conf;

    MixedEvalTask(BaseModelRef base, List<EvalJob> jobs, Broadcast<LinkedHashMap<String, AdapterTensors>> tensors, int batchSize,
                  SerializableConfiguration conf) {
        this.base = base;
        this.jobs = List.copyOf(jobs);
        this.tensors = tensors;
        this.batchSize = Math.max(1, batchSize);
        this.conf = conf;
    }

    /** A validation block to score: its tokens and loss mask, the adapter it runs with, the sums it adds to. */
    private record BlockRow(int[] tokens, boolean[] mask, String adapter, String key) {}

    /** A labelled example to score: prompt, its label, its job (for the label tokens), the adapter it runs with, the sums it adds to. */
    private record ExampleRow(int[] prompt, int label, EvalJob job, String adapter, String key) {}

    @Override
    public Iterator<EvalSums> call(Integer partition, Iterator<Integer> ignored) {
        TaskEngine.bind();
        Configuration c = conf.get();
        EvalSums out = new EvalSums();
        TransformerLM model = BaseModelCache.model(base, c);
        for (EvalJob j : jobs) {
            AttachedAdapter a = AttachedAdapter.attach(model, j.name(), j.config(), 0);
            tensors.value().get(j.name()).copyInto(a.stateTensors());
        }
        List<BlockRow> blocks = new ArrayList<>();
        List<ExampleRow> examples = new ArrayList<>();
        for (EvalJob j : jobs) {
            String adapted = MixedEvaluateStage.adaptedKey(j.name()), baseOnly = MixedEvaluateStage.baseKey(j.name());
            out.of(adapted);
            out.of(baseOnly);
            if (j.blocks() != null && partition < j.blocks().partitions()) {
                TokenBlocks d = j.blocks().load(partition, c);
                // the job's rows with its adapter, then the same rows with the base: consecutive runs of one adapter each
                for (int i = 0; i < d.size(); i++) blocks.add(new BlockRow(d.block(i), d.mask(i), j.name(), adapted));
                for (int i = 0; i < d.size(); i++) blocks.add(new BlockRow(d.block(i), d.mask(i), TransformerLM.BASE_ONLY, baseOnly));
            }
            if (j.examples() != null && partition < j.examples().partitions()) {
                List<LabelledExample> ex = j.examples().load(partition, c);
                for (LabelledExample e : ex) out.countLabel(j.name(), e.label());
                for (LabelledExample e : ex) examples.add(new ExampleRow(e.prompt(), e.label(), j, j.name(), adapted));
                for (LabelledExample e : ex) examples.add(new ExampleRow(e.prompt(), e.label(), j, TransformerLM.BASE_ONLY, baseOnly));
            }
        }
        for (int start = 0; start < blocks.size(); start += batchSize) scoreBlocks(model, blocks.subList(start, Math.min(blocks.size(), start + batchSize)), out);
        for (int start = 0; start < examples.size(); start += batchSize) scoreExamples(model, examples.subList(start, Math.min(examples.size(), start + batchSize)), out);
        return List.of(out).iterator();
    }

    /** Token NLL of each block under its own adapter, in one mixed forward. */
    private static void scoreBlocks(TransformerLM model, List<BlockRow> rows, EvalSums out) {
        int n = rows.size();
        int[][] t = new int[n][];
        boolean[][] m = new boolean[n][];
        String[] names = new String[n];
        for (int i = 0; i < n; i++) {
            t[i] = rows.get(i).tokens();
            m[i] = rows.get(i).mask();
            names[i] = rows.get(i).adapter();
        }
        TokenBatch batch = TokenBatch.shifted(t, m);
        INDArray logits = model.logits(batch, names);                                    // [n·T, V]
        long seq = batch.seq();
        for (int i = 0; i < n; i++) {
            INDArray rowLogits = logits.get(NDArrayIndex.interval(i * seq, (i + 1) * seq), NDArrayIndex.all());
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(rowLogits, batch.targets().getRow(i), false);
            double[] s = out.of(rows.get(i).key());
            s[EvalSums.NLL] += r.sumLoss();
            s[EvalSums.TOKENS] += r.count();
        }
        Tensors.release(logits);
    }

    /**
     * Each example's label NLLs under its own adapter, in one mixed forward: example e contributes one row per label of
     * its dataset, prompt then label (but its last token), right-padded to the batch's longest row (causal attention
     * keeps padding from reaching the positions read). As {@link EvalTask#labelNll}, for several examples at once.
     */
    private static void scoreExamples(TransformerLM model, List<ExampleRow> items, EvalSums out) {
        int len = 0, rowsTotal = 0, count = 0;
        for (ExampleRow it : items) {
            List<int[]> labels = it.job().examples().labelTokens();
            for (int[] lab : labels) {
                len = Math.max(len, it.prompt().length + lab.length - 1);
                count += lab.length;
            }
            rowsTotal += labels.size();
        }
        int[][] in = new int[rowsTotal][len];
        String[] names = new String[rowsTotal];
        int[] picks = new int[count], targets = new int[count], ownerItem = new int[count], ownerLabel = new int[count];
        int row = 0, k = 0;
        for (int e = 0; e < items.size(); e++) {
            ExampleRow it = items.get(e);
            List<int[]> labels = it.job().examples().labelTokens();
            for (int l = 0; l < labels.size(); l++, row++) {
                int[] lab = labels.get(l);
                System.arraycopy(it.prompt(), 0, in[row], 0, it.prompt().length);
                System.arraycopy(lab, 0, in[row], it.prompt().length, lab.length - 1);
                names[row] = it.adapter();
                for (int j = 0; j < lab.length; j++) {
                    picks[k] = row * len + it.prompt().length - 1 + j;     // the position whose next token is lab[j]
                    targets[k] = lab[j];
                    ownerItem[k] = e;
                    ownerLabel[k++] = l;
                }
            }
        }
        INDArray logits = model.logits(TokenBatch.of(in, new int[rowsTotal][len]), names);   // [rows·len, V]
        INDArray picked = logits.getRows(picks);                                                // [K, V]
        INDArray max = picked.max(true, 1);
        INDArray lse = Transforms.log(Transforms.exp(picked.subColumnVector(max), false).sum(true, 1), false).addi(max);
        float[][] z = picked.toFloatMatrix();
        double[] lseRows = lse.toDoubleVector();
        double[][] nll = new double[items.size()][];
        for (int e = 0; e < items.size(); e++) nll[e] = new double[items.get(e).job().examples().labelTokens().size()];
        for (int i = 0; i < count; i++) nll[ownerItem[i]][ownerLabel[i]] += lseRows[i] - z[i][targets[i]];
        Tensors.release(logits, picked, max, lse);
        for (int e = 0; e < items.size(); e++) {
            ExampleRow it = items.get(e);
            double[] s = out.of(it.key());
            if (EvalTask.argmin(nll[e], null) == it.label()) s[EvalSums.CORRECT]++;
            if (EvalTask.argmin(nll[e], EvalTask.labelBytes(it.job().examples().labelNames())) == it.label()) s[EvalSums.CORRECT_NORM]++;
            s[EvalSums.EXAMPLES]++;
        }
    }
}
