package io.sparklora.spark.evaluate;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.GpuBinding;
import io.sparklora.spark.ShardSource;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TrainSpec;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.CrossEntropyLoss;
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
 * labels correctly (the label whose tokens get the highest log-likelihood after the prompt).
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
        GpuBinding.bindCurrentTask();
        EvalSums out = new EvalSums();
        TokenBlocks data = blocks != null && partition < blocks.partitions() ? blocks.load(partition, conf.get()) : null;
        List<LabelledExample> ex = examples != null && partition < examples.partitions() ? examples.load(partition, conf.get()) : List.of();
        for (EvalTarget t : targets) {
            TransformerLM model = build(t);
            double[] s = out.of(t.name());
            if (data != null) {
                for (int start = 0; start < data.size(); start += batchSize) {
                    int n = Math.min(batchSize, data.size() - start);
                    int[] idx = new int[n];
                    for (int i = 0; i < n; i++) idx[i] = start + i;
                    CrossEntropyLoss.Result r = model.loss(data.batch(idx));
                    s[0] += r.sumLoss();
                    s[1] += r.count();
                }
            }
            for (LabelledExample e : ex) {
                if (predict(model, e.prompt(), examples.labelTokens()) == e.label()) s[2]++;
                s[3]++;
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
        if (t.mode() == EvalTarget.Mode.MERGED) a.merge();
        return model;
    }

    /** The label whose continuation tokens have the highest total log-likelihood after {@code prompt}. */
    public static int predict(TransformerLM model, int[] prompt, List<int[]> labels) {
        int best = -1;
        double bestNll = Double.POSITIVE_INFINITY;
        for (int l = 0; l < labels.size(); l++) {
            int[] lab = labels.get(l);
            int[] ids = Arrays.copyOf(prompt, prompt.length + lab.length);
            System.arraycopy(lab, 0, ids, prompt.length, lab.length);
            int[] in = Arrays.copyOf(ids, ids.length - 1);
            int[] tg = new int[in.length];
            Arrays.fill(tg, TokenBatch.IGNORE);
            for (int i = prompt.length - 1; i < in.length; i++) tg[i] = ids[i + 1];
            double nll = model.loss(TokenBatch.of(new int[][]{in}, new int[][]{tg})).sumLoss();
            if (nll < bestNll) {
                bestNll = nll;
                best = l;
            }
        }
        return best;
    }
}
