package io.sparklora.api;

import io.sparklora.spark.TaskEngine;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * A per-row adapter column served on one partition, on the executor: the {@link AdapterSet} is built once per task by
 * its {@link Source} (the base through the executor's cache, loaded once per JVM), and the partition's rows are pulled
 * {@code batchRows} at a time, each batch one mixed-adapter pass computed by a {@link Batch}. Each row gets
 * {@code outputs} values appended; a null input gives nulls, a null adapter name means the base model
 * ({@link AdapterSet#BASE}), and a name outside the set fails the task with that name and the set's names.
 *
 * <p>Serves {@link AdapterSet#generate(org.apache.spark.sql.Dataset, String, String, String, int, int)},
 * {@link AdapterSet#meanLoss(org.apache.spark.sql.Dataset, String, String, String, int)} and the spark.ml
 * {@code LoraModel.transform} with an adapter column.
 */
public final class AdapterSetTask implements FlatMapFunction<Iterator<Row>, Row> {
    private static final long serialVersionUID = 1L;

    /** Builds the set on the executor (called at most once per task, on the first batch with a non-null input). */
    public interface Source extends Serializable {
        AdapterSet open();
    }

    /**
     * One batch's outputs: {@code texts} (non-null) and {@code names} (each {@link AdapterSet#BASE} or in the set), n
     * rows; returns out[n][outputs], row k's values.
     */
    public interface Batch extends Serializable {
        Object[][] apply(AdapterSet set, List<String> texts, List<String> names);
    }

    private final Source source;
    private final Batch batch;
    private final int inputIndex, adapterIndex, batchRows, outputs;

    public AdapterSetTask(Source source, Batch batch, int inputIndex, int adapterIndex, int batchRows, int outputs) {
        if (batchRows < 1) throw new IllegalArgumentException("batchRows must be at least 1, got " + batchRows);
        this.source = source;
        this.batch = batch;
        this.inputIndex = inputIndex;
        this.adapterIndex = adapterIndex;
        this.batchRows = batchRows;
        this.outputs = outputs;
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
                List<Row> rowsIn = new ArrayList<>();
                while (rows.hasNext() && rowsIn.size() < batchRows) rowsIn.add(rows.next());
                List<String> texts = new ArrayList<>(), names = new ArrayList<>();
                List<Integer> which = new ArrayList<>();
                for (int i = 0; i < rowsIn.size(); i++) {
                    Row r = rowsIn.get(i);
                    if (r.isNullAt(inputIndex)) continue;
                    texts.add(r.getString(inputIndex));
                    names.add(r.isNullAt(adapterIndex) ? AdapterSet.BASE : r.getString(adapterIndex));
                    which.add(i);
                }
                Object[][] results = new Object[rowsIn.size()][];
                if (!texts.isEmpty()) {
                    if (set == null) open();
                    List<String> known = set.names();
                    for (String n : names) {
                        if (!n.equals(AdapterSet.BASE) && !known.contains(n)) {
                            throw new IllegalArgumentException("a row names adapter '" + n + "', which is not in the set " + known
                                    + " (" + AdapterSet.BASE + " or null: the base model alone)");
                        }
                    }
                    Object[][] out = batch.apply(set, texts, names);
                    for (int k = 0; k < which.size(); k++) results[which.get(k)] = out[k];
                }
                List<Row> out = new ArrayList<>();
                for (int i = 0; i < rowsIn.size(); i++) {
                    Row r = rowsIn.get(i);
                    Object[] values = new Object[r.length() + outputs];
                    for (int c = 0; c < r.length(); c++) values[c] = r.get(c);
                    if (results[i] != null) System.arraycopy(results[i], 0, values, r.length(), outputs);
                    out.add(RowFactory.create(values));
                }
                return out;
            }

            private void open() {
                TaskEngine.bind();
                set = source.open();
            }
        };
    }
}
