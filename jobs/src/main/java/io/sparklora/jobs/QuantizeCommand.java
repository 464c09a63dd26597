package io.sparklora.jobs;

import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.quant.QuantizedCheckpoints;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code spark-lora quantize --model DIR --out DIR [--no-double-quant]}: an NF4 checkpoint in bitsandbytes' serialized
 * layout, which transformers with bitsandbytes loads as a 4-bit model and spark-lora loads directly as an NF4 base.
 */
final class QuantizeCommand {
    static final Args.Spec SPEC = new Args.Spec("quantize",
            "Writes an NF4 (QLoRA) checkpoint in bitsandbytes' layout: every linear weight of the blocks in 4 bits; embeddings, norms, biases and the head in fp32.",
            Args.Option.required("model", "DIR", "Hugging Face model directory (fp32, fp16 or bf16 safetensors)"),
            Args.Option.required("out", "DIR", "where the quantized checkpoint is written (atomically)"),
            Args.Option.flag("no-double-quant", "keep the block scales in fp32 (4.5 bits per weight) instead of 8-bit (about 4.127)"));

    private QuantizeCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        Path modelDir = Path.of(a.require("model"));
        Path out = Path.of(a.require("out"));
        if (QuantizedCheckpoints.isQuantized(modelDir)) {
            throw new IllegalArgumentException(modelDir + " is already a 4-bit checkpoint (its config.json has quantization_config)");
        }
        if (Files.exists(out)) throw new IllegalArgumentException(out + " exists; give a new directory for the quantized checkpoint");
        boolean dq = !a.flag("no-double-quant");
        TransformerLM model = QuantizedCheckpoints.loadQuantizing(modelDir, dq);
        QuantizedCheckpoints.write(model, out, modelDir);
        long quantized = model.quantizedWeights().values().stream().mapToLong(q -> q.length()).sum();
        long held = model.quantizedWeights().values().stream().mapToLong(q -> q.bytesHeld()).sum();
        System.out.printf(Locale.ROOT, "quantized %d linear weights (%,d parameters) to NF4%s: %.3f bits per weight; the base holds %,d bytes"
                        + " (fp32: %,d)%nwritten to %s%n", model.quantizedWeights().size(), quantized,
                dq ? " with double quantization" : "", 8.0 * held / quantized, model.baseBytesHeld(), 4 * model.baseParameterCount(), out);
        return 0;
    }
}
