package io.sparklora.ml;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
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
import java.util.List;

/**
 * {@link LoraModel#transform} on one partition, on the executor: the base comes from the executor's
 * {@link BaseModelCache} (loaded once per JVM, shared read-only), the adapter tensors from a broadcast,
 * the tokenizer from {@link TokenizerCache}. Each input row gets its output value(s) appended: the greedy
 * continuation, or the most likely label and its probability. Rows are processed as they are pulled, so a
 * partition is never held in memory; a null input gives null outputs.
 */
final class TransformTask implements FlatMapFunction<Iterator<Row>, Row> {
    private static final long serialVersionUID = 1L;
    private final BaseModelRef base;
    private final String tokenizerUri;
    private final String tokenizerFingerprint;
    private final SerializableConfiguration conf;
    private final AdapterConfig adapterConfig;
    private final Broadcast<AdapterTensors> adapter;
    private final int inputIndex;
    private final List<String> labels;          // empty: generate
    private final String labelPrompt;
    private final boolean withProbability;
    private final int maxNewTokens;

    TransformTask(BaseModelRef base, String tokenizerUri, String tokenizerFingerprint, SerializableConfiguration conf, AdapterConfig adapterConfig,
                  Broadcast<AdapterTensors> adapter, int inputIndex, List<String> labels, String labelPrompt, boolean withProbability, int maxNewTokens) {
        this.base = base;
        this.tokenizerUri = tokenizerUri;
        this.tokenizerFingerprint = tokenizerFingerprint;
        this.conf = conf;
        this.adapterConfig = adapterConfig;
        this.adapter = adapter;
        this.inputIndex = inputIndex;
        this.labels = labels;
        this.labelPrompt = labelPrompt;
        this.withProbability = withProbability;
        this.maxNewTokens = maxNewTokens;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
        return new Iterator<>() {
            private TransformerLM model;
            private TextTokenizer tokenizer;
            private int[][] labelIds;

            @Override public boolean hasNext() { return rows.hasNext(); }

            @Override public Row next() {
                Row r = rows.next();
                if (model == null) open();
                int extra = labels.isEmpty() || !withProbability ? 1 : 2;
                Object[] values = new Object[r.length() + extra];
                for (int i = 0; i < r.length(); i++) values[i] = r.get(i);
                String text = r.isNullAt(inputIndex) ? null : r.getString(inputIndex);
                if (text != null) {
                    if (labels.isEmpty()) {
                        values[r.length()] = continuation(text);
                    } else {
                        double[] p = LabelScorer.probabilities(LabelScorer.logLikelihoods(model, tokenizer.encode(text + labelPrompt), labelIds));
                        int best = LabelScorer.argmax(p);
                        values[r.length()] = labels.get(best);
                        if (withProbability) values[r.length() + 1] = p[best];
                    }
                }
                return RowFactory.create(values);
            }

            private void open() {
                TaskEngine.bind();
                try {
                    tokenizer = TokenizerCache.get(conf.get(), tokenizerUri, tokenizerFingerprint);
                } catch (IOException e) {
                    throw new UncheckedIOException(e.getMessage(), e);
                }
                model = adapted(base, conf, adapterConfig, adapter.value());
                labelIds = labels.isEmpty() ? null : DocumentEncoder.labelIds(tokenizer, labels);
            }

            private String continuation(String text) {
                int[] ids = tokenizer.encode(text);
                if (ids.length == 0) ids = new int[]{tokenizer.eosTokenId()};
                return tokenizer.decode(Generator.greedy(model, ids, maxNewTokens, tokenizer.eosTokenId()));
            }
        };
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
         * Total log-likelihood of each label's tokens following {@code prompt} (the same quantity the
         * evaluate stage ranks labels by). A prompt too long for the model's context keeps its end.
         */
        static double[] logLikelihoods(TransformerLM model, int[] prompt, int[][] labels) {
            double[] ll = new double[labels.length];
            int ctx = model.config().maxPositions();
            for (int l = 0; l < labels.length; l++) {
                int[] lab = labels[l];
                int keep = Math.max(1, Math.min(prompt.length, ctx + 1 - lab.length));
                int[] p = Arrays.copyOfRange(prompt, prompt.length - keep, prompt.length);
                ll[l] = -EvalTask.labelNll(model, p, List.of(lab))[0];
            }
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
