package io.sparklora.jobs;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;

import java.nio.file.Path;

/** {@code spark-lora merge}: W0 + ΔW written as a plain Hugging Face checkpoint (tokenizer copied along). */
final class MergeCommand {
    static final Args.Spec SPEC = new Args.Spec("merge", "Writes W0 + ΔW as a plain Hugging Face checkpoint (tokenizer files copied along).",
            Args.Option.required("model", "DIR", "Hugging Face base model directory"),
            Args.Option.required("adapter", "DIR", "adapter directory in PEFT layout (adapter_config.json, adapter_model.safetensors)"),
            Args.Option.required("out", "DIR", "where the merged checkpoint is written"),
            Args.Option.value("dtype", "TYPE", "float32", "storage type of the merged weights: float32, float16 or bfloat16"),
            Args.Option.value("quantization", "TYPE", "none", "the base the adapter was trained over: none, or nf4 (QLoRA: W0 is then the"
                    + " dequantized NF4 weight, as in training; a 4-bit checkpoint is nf4 anyway)"),
            Args.Option.flag("no-double-quant", "with --quantization nf4: the adapter was trained over fp32 block scales"));

    private MergeCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        Path modelDir = Path.of(a.require("model"));
        DataType storeAs = switch (a.get("dtype")) {
            case "float32" -> DataType.FLOAT;
            case "float16" -> DataType.HALF;
            case "bfloat16" -> DataType.BFLOAT16;
            default -> throw new Args.UsageException("merge: --dtype must be float32, float16 or bfloat16");
        };
        io.sparklora.quant.BaseQuantization q = io.sparklora.quant.BaseQuantization.parse(a.get("quantization"), !a.flag("no-double-quant"),
                "merge --quantization");
        TransformerLM model = io.sparklora.quant.QuantizedCheckpoints.load(modelDir, q);
        AttachedAdapter adapter = PeftAdapterFormat.load(model, Path.of(a.require("adapter")), "default");
        adapter.merge();
        adapter.detachMerged();
        HfModelDirectory.save(model, Path.of(a.require("out")), storeAs, modelDir);
        System.out.println("merged checkpoint written to " + a.require("out") + (model.quantizedBase()
                ? " (full precision: dequantized NF4 W0 + ΔW; W0 + ΔW is not on the 4-bit grid, so a 4-bit merge would lose ΔW)" : ""));
        return 0;
    }
}
