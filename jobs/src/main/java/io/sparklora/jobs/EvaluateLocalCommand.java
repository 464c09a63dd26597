package io.sparklora.jobs;

import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.TokenBlocks;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;

/** {@code spark-lora evaluate --local}: mean token loss and perplexity of a model, with or without an adapter. */
final class EvaluateLocalCommand {
    static final String USAGE = "evaluate --local --model DIR --data FILES [--adapter DIR] [--seq 256 --batch 4]";

    private EvaluateLocalCommand() {}

    static int run(String[] argv) throws Exception {
        Args a = new Args("evaluate", argv, Set.of("model", "data", "adapter", "seq", "batch"), Set.of("local"));
        if (!a.flag("local")) throw new Args.UsageException("evaluate: distributed evaluation is the Spark pipeline's; pass --local");
        Path modelDir = Path.of(a.require("model"));
        TransformerLM model = HfModelDirectory.load(modelDir);
        if (a.get("adapter", null) != null) PeftAdapterFormat.load(model, Path.of(a.get("adapter", null)), "default");
        int seq = Math.min(a.getInt("seq", 256), model.config().maxPositions());
        TokenBlocks data;
        try (TextTokenizer tok = TextTokenizer.fromModelDir(modelDir)) {
            data = LocalRun.blocks(a.require("data"), tok, seq);
        }
        Evaluator.Result r = Evaluator.evaluate(model, data, a.getInt("batch", 4));
        System.out.printf(Locale.ROOT, "loss %.4f | perplexity %.3f | %d tokens%n", r.loss(), r.perplexity(), r.tokens());
        return 0;
    }
}
