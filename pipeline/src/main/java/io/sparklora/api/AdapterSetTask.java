package io.sparklora.api;

import io.sparklora.spark.TaskEngine;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * {@link AdapterSet#transform} on one partition, on the executor: the set is rebuilt once per task from the base and
 * adapter locations (the base through the executor's cache, loaded once per JVM), and the partition's rows are pulled
 * {@code batchRows} at a time, each batch one mixed-adapter pass ({@link AdapterSet#generate} or
 * {@link AdapterSet#meanLoss}). Each row gets one value appended; a null input gives null, a null adapter name means
 * the base model.
 */
final class AdapterSetTask implements FlatMapFunction<Iterator<Row>, Row> {
    private static final long serialVersionUID = 1L;
    private final String baseUri;
    private final LinkedHashMap<String, String> adapterUris;
    private final SerializableConfiguration conf;
    private final int inputIndex, adapterIndex, batchRows, maxNewTokens;   // maxNewTokens < 0: score (mean loss) instead

    AdapterSetTask(String baseUri, LinkedHashMap<String, String> adapterUris, SerializableConfiguration conf, int inputIndex, int adapterIndex,
                   int batchRows, int maxNewTokens) {
        this.baseUri = baseUri;
        this.adapterUris = adapterUris;
        this.conf = conf;
        this.inputIndex = inputIndex;
        this.adapterIndex = adapterIndex;
        this.batchRows = batchRows;
        this.maxNewTokens = maxNewTokens;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
        return new Iterator<>() {
            private AdapterSet set;
            private Iterator<Row> ready = java.util.Collections.emptyIterator();

            @Override public boolean hasNext() { return ready.hasNext() || rows.hasNext(); }

            @Override public Row next() {
                if (!ready.hasNext()) {
                    if (!rows.hasNext()) throw new NoSuchElementException();
                    ready = nextBatch().iterator();
                }
                return ready.next();
            }

            private List<Row> nextBatch() {
                List<Row> batch = new ArrayList<>();
                while (rows.hasNext() && batch.size() < batchRows) batch.add(rows.next());
                List<String> texts = new ArrayList<>(), names = new ArrayList<>();
                List<Integer> which = new ArrayList<>();
                for (int i = 0; i < batch.size(); i++) {
                    Row r = batch.get(i);
                    if (r.isNullAt(inputIndex)) continue;
                    texts.add(r.getString(inputIndex));
                    names.add(r.isNullAt(adapterIndex) ? AdapterSet.BASE : r.getString(adapterIndex));
                    which.add(i);
                }
                Object[] results = new Object[batch.size()];
                if (!texts.isEmpty()) {
                    if (set == null) open();
                    if (maxNewTokens >= 0) {
                        List<String> out = set.generate(texts, names, maxNewTokens);
                        for (int k = 0; k < which.size(); k++) results[which.get(k)] = out.get(k);
                    } else {
                        double[] loss = set.meanLoss(texts, names);
                        for (int k = 0; k < which.size(); k++) results[which.get(k)] = loss[k];
                    }
                }
                List<Row> out = new ArrayList<>();
                for (int i = 0; i < batch.size(); i++) {
                    Row r = batch.get(i);
                    Object[] values = new Object[r.length() + 1];
                    for (int c = 0; c < r.length(); c++) values[c] = r.get(c);
                    values[r.length()] = results[i];
                    out.add(RowFactory.create(values));
                }
                return out;
            }

            private void open() {
                TaskEngine.bind();
                set = AdapterSet.on(conf.get(), baseUri);
                adapterUris.forEach(set::add);
            }
        };
    }
}
