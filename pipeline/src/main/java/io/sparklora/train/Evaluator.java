package io.sparklora.train;

import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.TransformerLM;

/** Mean token loss and perplexity of a model over held-out blocks. */
public final class Evaluator {
    private Evaluator() {}

    public record Result(double loss, double perplexity, long tokens) {}

    public static Result evaluate(TransformerLM model, TokenBlocks data, int batchSize) {
        double sum = 0;
        long count = 0;
        for (int start = 0; start < data.size(); start += batchSize) {
            int n = Math.min(batchSize, data.size() - start);
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) idx[i] = start + i;
            CrossEntropyLoss.Result r = model.loss(data.batch(idx));
            sum += r.sumLoss();
            count += r.count();
        }
        if (count == 0) throw new IllegalArgumentException("evaluation data has no target tokens");
        double loss = sum / count;
        return new Result(loss, Math.exp(loss), count);
    }
}
