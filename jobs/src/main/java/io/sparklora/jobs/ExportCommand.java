package io.sparklora.jobs;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.LoraExport;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;

import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code spark-lora export --to lora}: any trained adapter as a plain PEFT LoRA of rank R (truncated SVD of each
 * layer's ΔW, {@link LoraExport}), with the relative error of every layer printed.
 */
final class ExportCommand {
    static final Args.Spec SPEC = new Args.Spec("export",
            "Converts an adapter of any method into a plain PEFT LoRA of rank R (truncated SVD of each layer's ΔW), for servers that load LoRA only.",
            Args.Option.required("model", "DIR", "Hugging Face base model directory"),
            Args.Option.required("adapter", "DIR", "adapter directory in PEFT layout (any method spark-lora trains)"),
            Args.Option.required("out", "DIR", "where the LoRA adapter is written"),
            Args.Option.value("to", "FORMAT", "lora", "the output format (lora)"),
            Args.Option.required("rank", "R", "rank of the LoRA (a DyLoRA adapter: its rank-R truncation, exactly)"));

    private ExportCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        if (!a.get("to").equals("lora")) throw new Args.UsageException("export: --to must be lora, got " + a.get("to"));
        int rank;
        try {
            rank = Integer.parseInt(a.require("rank"));
        } catch (NumberFormatException e) {
            throw new Args.UsageException("export: --rank must be a positive integer, got " + a.require("rank"));
        }
        Path modelDir = Path.of(a.require("model"));
        TransformerLM model = HfModelDirectory.load(modelDir);
        AttachedAdapter source = PeftAdapterFormat.load(model, Path.of(a.require("adapter")), "default");
        String method = source.config().method();
        LoraExport.Result r = LoraExport.toLora(source, rank);
        for (LoraExport.LayerError e : r.errors()) {
            System.out.printf(Locale.ROOT, "%s: relative error %.3e (ΔW numerical rank %d)%n", e.module(), e.relativeError(), e.numericalRank());
        }
        PeftAdapterFormat.save(r.lora(), Path.of(a.require("out")), modelDir.toString());
        System.out.printf(Locale.ROOT, "%s adapter exported as a LoRA of rank %d to %s; largest relative error %.3e%s%n", method, rank,
                a.require("out"), r.maxRelativeError(), r.maxRelativeError() < 1e-6 ? " (exact)" : "");
        return 0;
    }
}
