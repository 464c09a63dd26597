package io.sparklora.spark.evaluate;

import org.apache.spark.api.java.function.Function2;

/** The reduction of evaluation sums. */
public final class EvalSumsAdd implements Function2<EvalSums, EvalSums, EvalSums> {
    private static final long serialVersionUID = 1L;

    @Override
    public EvalSums call(EvalSums a, EvalSums b) { return a.add(b); }
}
