package io.sparklora.ml;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.api.AdapterSet;
import io.sparklora.api.AdapterSetTask;
import io.sparklora.checkpoint.BaseModelRef;
import io.sparklora.data.DocumentEncoder;
import io.sparklora.model.TransformerLM;
import io.sparklora.spark.evaluate.EvalTask;
import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;
import io.sparklora.spark.TokenizerCache;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.Generator;
import io.sparklora.train.TrainSpec;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * {@link LoraModel#transform} on one partition with one adapter for every row, on the executor: the base comes from the
 * executor's {@link BaseModelCache} (loaded once per JVM, shared read-only), the adapter tensors from a broadcast,
 * the tokenizer from {@link TokenizerCache}. Each input row gets its output value(s) appended ({@link Outputs}): the
 * greedy continuation, or the most likely label and its probability. Rows are processed one at a time as they are
 * pulled, so a partition is never held in memory; a null input gives null outputs.
 *
 * <p>With an adapter column, {@link LoraModel#transform} runs an {@link AdapterSetTask} instead: the same
 * {@link Outputs} over batches of rows, each batch one mixed-adapter pass ({@link SetSource} builds the set).
 */
final class TransformTask implements FlatMapFunction<Iterator<Row>, Row> {
    private static final long serialVersionUID = 1L;
    private final BaseModelRef base;
    private final SerializableConfiguration conf;
    private final AdapterConfig adapterConfig;
    private final Broadcast<AdapterTensors> adapter;
    private final int inputIndex;
    private final Outputs outputs;

    TransformTask(BaseModelRef base, SerializableConfiguration conf, AdapterConfig adapterConfig, Broadcast<AdapterTensors> adapter,
                  int inputIndex, Outputs outputs) {
        this.base = base;
        this.conf = conf;
        this.adapterConfig = adapterConfig;
        this.adapter = adapter;
        this.inputIndex = inputIndex;
        this.outputs = outputs;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
        return new Iterator<>() {
            private TransformerLM model;

            @Override public boolean hasNext() { return rows.hasNext(); }

            @Override public Row next() {
                Row r = rows.next();
                Object[] values = new Object[r.length() + outputs.width()];
                for (int i = 0; i < r.length(); i++) values[i] = r.get(i);
                if (!r.isNullAt(inputIndex)) {
                    if (model == null) {
                        TaskEngine.bind();
                        model = adapted(base, conf, adapterConfig, adapter.value());
                    }
                    Object[] out = outputs.compute(model, null, List.of(r.getString(inputIndex)))[0];
                    System.arraycopy(out, 0, values, r.length(), out.length);
                }
                return RowFactory.create(values);
            }
        };
    }

    /**
     * What transform appends to a row, for a batch of n texts: the greedy continuation of up to {@code maxNewTokens}
     * tokens (an empty text continues from end-of-text); or, with labels, the label whose tokens are most likely after
     * {@code text + labelPrompt} and (withProbability) its softmax probability among the labels. Row k runs with
     * adapter {@code adapters[k]} alone, in one mixed-adapter pass (null: the model's active adapter for every row);
     * generation decodes the batch together over one KV cache, rows of any lengths.
     */
    record Outputs(String tokenizerUri, String tokenizerFingerprint, SerializableConfiguration conf, List<String> labels, String labelPrompt,
                   boolean withProbability, int maxNewTokens) implements AdapterSetTask.Batch {

        /** Values appended per row: 1 (continuation or label), or 2 (label and probability). */
        int width() { return labels.isEmpty() || !withProbability ? 1 : 2; }

        /** out[n][width()], row k's values. */
        Object[][] compute(TransformerLM model, String[] adapters, List<String> texts) {
            TextTokenizer tokenizer;
            try {
                tokenizer = TokenizerCache.get(conf.get(), tokenizerUri, tokenizerFingerprint);
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
            int n = texts.size();
            Object[][] out = new Object[n][width()];
            if (labels.isEmpty()) {
                int[][] ids = new int[n][];
                for (int k = 0; k < n; k++) {
                    ids[k] = tokenizer.encode(texts.get(k));
                    if (ids[k].length == 0) ids[k] = new int[]{tokenizer.eosTokenId()};
                }
                int[][] made = Generator.sampleBatch(model, ids, adapters, maxNewTokens, tokenizer.eosTokenId(), 0, 1, new long[n]);
                for (int k = 0; k < n; k++) out[k][0] = tokenizer.decode(made[k]);
            } else {
                int[][] prompts = new int[n][];
                for (int k = 0; k < n; k++) prompts[k] = tokenizer.encode(texts.get(k) + labelPrompt);
                double[][] ll = LabelScorer.logLikelihoods(model, prompts, adapters, DocumentEncoder.labelIds(tokenizer, labels));
                for (int k = 0; k < n; k++) {
                    double[] p = LabelScorer.probabilities(ll[k]);
                    int best = LabelScorer.argmax(p);
                    out[k][0] = labels.get(best);
                    if (withProbability) out[k][1] = p[best];
                }
            }
            return out;
        }

        @Override
        public Object[][] apply(AdapterSet set, List<String> texts, List<String> names) {
            return compute(set.model(), names.toArray(new String[0]), texts);
        }
    }

    /**
     * The named adapters of a {@link LoraModel} with an adapter column, rebuilt on the executor as one
     * {@link AdapterSet} over the JVM's cached base: {@code configs} by name, their tensors from one broadcast, in the
     * same order.
     */
    record SetSource(BaseModelRef base, SerializableConfiguration conf, LinkedHashMap<String, AdapterConfig> configs,
                     Broadcast<List<AdapterTensors>> tensors) implements AdapterSetTask.Source {
        @Override
        public AdapterSet open() {
            AdapterSet set = AdapterSet.on(conf.get(), base);
            List<AdapterTensors> values = tensors.value();
            int i = 0;
            for (var e : configs.entrySet()) set.add(e.getKey(), e.getValue(), values.get(i++));
            return set;
        }
    }

    /** A model over the JVM's cached base with the adapter attached and its tensors loaded. */
    static TransformerLM adapted(BaseModelRef base, SerializableConfiguration conf, AdapterConfig adapterConfig, AdapterTensors tensors) {
        TransformerLM model = BaseModelCache.model(base, conf.get());
        AttachedAdapter a = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, adapterConfig, 0);
        tensors.copyInto(a.stateTensors());
        return model;
    }

    /** The log-likelihood of each label's tokens after a prompt, and what follows from it. */
    static final class LabelScorer {
        private LabelScorer() {}

        /**
         * ll[k][l]: total log-likelihood of label l's tokens following {@code prompts[k]} (the same quantity the
         * evaluate stage ranks labels by), row k under adapter {@code adapters[k]} (null: the active adapter), all n·L
         * (prompt, label) pairs in one forward pass ({@link EvalTask#continuationNll}). A prompt too long for the
         * model's context keeps its end.
         */
        static double[][] logLikelihoods(TransformerLM model, int[][] prompts, String[] adapters, int[][] labels) {
            int n = prompts.length, nl = labels.length;
            int ctx = model.config().maxPositions();
            int[][] p = new int[n * nl][], c = new int[n * nl][];
            String[] names = adapters == null ? null : new String[n * nl];
            for (int k = 0; k < n; k++) {
                for (int l = 0; l < nl; l++) {
                    int[] lab = labels[l];
                    int keep = Math.max(1, Math.min(prompts[k].length, ctx + 1 - lab.length));
                    p[k * nl + l] = Arrays.copyOfRange(prompts[k], prompts[k].length - keep, prompts[k].length);
                    c[k * nl + l] = lab;
                    if (names != null) names[k * nl + l] = adapters[k];
                }
            }
            double[] nll = EvalTask.continuationNll(model, p, c, names);
            double[][] ll = new double[n][nl];
            for (int k = 0; k < n; k++) for (int l = 0; l < nl; l++) ll[k][l] = -nll[k * nl + l];
            return ll;
        }

        /** Softmax of the log-likelihoods: the labels' probabilities relative to each other. */
        static double[] probabilities(double[] ll) {
            double max = Arrays.stream(ll).max().orElse(0);
            double[] p = new double[ll.length];
            double sum = 0;
            for (int i = 0; i < p.length; i++) sum += p[i] = Math.exp(ll[i] - max);
            for (int i = 0; i < p.length; i++) p[i] /= sum;
            return p;
        }

        static int argmax(double[] v) {
            int best = 0;
            for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
            return best;
        }
    }
}
