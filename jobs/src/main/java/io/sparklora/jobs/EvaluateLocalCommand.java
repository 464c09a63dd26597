package io.sparklora.jobs;

import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Evaluator;
import io.sparklora.train.TokenBlocks;

import java.nio.file.Path;
import java.util.Locale;

/** {@code spark-lora evaluate --local}: mean token loss and perplexity of a model, with or without an adapter. */
final class EvaluateLocalCommand {
    static final Args.Spec SPEC = new Args.Spec("evaluate --local", "Mean token loss and perplexity of a model, with or without an adapter, in this process.",
            Args.Option.flag("local", "run in this process without Spark (without it: the pipeline's evaluate stage)"),
            Args.Option.required("model", "DIR", "Hugging Face model directory"),
            Args.Option.required("data", "FILES", "comma-separated text files or directories (every file inside)"),
            LocalRun.CHAT_TEMPLATE,
            Args.Option.value("adapter", "DIR", null, "adapter directory in PEFT layout to apply first"),
            Args.Option.value("seq", "N", "256", "tokens per block (capped at the model's n_positions)"),
            Args.Option.value("batch", "N", "4", "blocks per forward pass"));

    private EvaluateLocalCommand() {}

    static int run(String[] argv) throws Exception {
        Args a = SPEC.parse(argv);
        if (!a.flag("local")) throw new Args.UsageException("evaluate: distributed evaluation is the Spark pipeline's; pass --local");
        Path modelDir = Path.of(a.require("model"));
        TransformerLM model = HfModelDirectory.load(modelDir);
        if (a.get("adapter") != null) PeftAdapterFormat.load(model, Path.of(a.get("adapter")), "default");
        int seq = Math.min(a.getInt("seq"), model.config().maxPositions());
        TokenBlocks data;
        try (TextTokenizer tok = TextTokenizer.fromModelDir(modelDir)) {
            data = LocalRun.blocks(a.require("data"), tok, seq, LocalRun.chatTemplate(a, modelDir));
        }
        Evaluator.Result r = Evaluator.evaluate(model, data, a.getInt("batch"));
        System.out.printf(Locale.ROOT, "loss %.4f | perplexity %.3f | %d tokens%n", r.loss(), r.perplexity(), r.tokens());
        return 0;
    }
}
