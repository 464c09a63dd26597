package io.sparklora.spark.drop;

import org.apache.spark.api.java.function.Function2;

/** The reduction of importance sums. */
public final class ImportanceSumsAdd implements Function2<ImportanceSums, ImportanceSums, ImportanceSums> {
    private static final long serialVersionUID = 1L;

    @Override
    public ImportanceSums call(ImportanceSums a, ImportanceSums b) { return a.add(b); }
}
