package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.quant.Nf4Tensor;
import io.sparklora.quant.QuantizedCheckpoints;

import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code spark-lora inspect --model DIR [--adapter SPEC] [--quantization nf4]}: the parameter report, from config.json
 * alone, and for an NF4 base the bytes it holds and the bits per parameter: measured on the loaded codes and scales
 * for a bitsandbytes 4-bit checkpoint, computed from the shapes for {@code --quantization nf4}.
 */
final class InspectCommand {
    static final Args.Spec SPEC = new Args.Spec("inspect",
            "The trainable and total parameter counts of a model with an adapter (from config.json alone), and the bits per base parameter of an NF4 base.",
            Args.Option.required("model", "DIR", "Hugging Face model directory (only config.json is read, unless it is a 4-bit checkpoint)"),
            Args.Option.value("adapter", "SPEC", null, "adapter_config.json path, or type=lora,r=8,alpha=16,targets=c_attn"),
            Args.Option.value("quantization", "TYPE", "none", "report the base as held in this form: none or nf4 (a 4-bit checkpoint is nf4 anyway)"),
            Args.Option.flag("no-double-quant", "with --quantization nf4: fp32 block scales (4.5 bits per weight) instead of 8-bit ones"));

    private InspectCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        Path dir = Path.of(a.require("model"));
        ModelConfig config = ModelConfig.load(dir);
        BaseQuantization q = BaseQuantization.parse(a.get("quantization"), !a.flag("no-double-quant"), "inspect --quantization");
        String adapter = a.get("adapter");
        if (adapter == null && !q.nf4() && !QuantizedCheckpoints.isQuantized(dir)) {
            throw new Args.UsageException("inspect: give --adapter (the parameter report) or a base to report on (--quantization nf4, or a 4-bit checkpoint)");
        }
        if (adapter != null) {
            AdapterConfig ac = AdapterSpecs.parse(adapter, config.architecture());
            System.out.println(ParameterCounter.report(config, ac));
        }
        long params = TransformerLM.parameterCount(config);
        if (QuantizedCheckpoints.isQuantized(dir)) {
            TransformerLM m = QuantizedCheckpoints.load(dir);        // the codes are memory-mapped, not read
            long qParams = m.quantizedWeights().values().stream().mapToLong(Nf4Tensor::length).sum();
            long qBytes = m.quantizedWeights().values().stream().mapToLong(Nf4Tensor::bytesHeld).sum();
            boolean dq = m.quantizedWeights().values().stream().anyMatch(Nf4Tensor::doubleQuantized);
            System.out.println(baseLine("NF4 checkpoint" + (dq ? ", double-quantized scales" : ", fp32 scales"), m.baseBytesHeld(), params, qBytes, qParams));
        } else if (q.nf4()) {
            long qParams = 0, qBytes = 0;
            for (String n : TransformerLM.quantizableWeights(config)) {
                long k = java.util.Arrays.stream(TransformerLM.expectedShapes(config).get(n)).reduce(1, (x, y) -> x * y);
                qParams += k;
                qBytes += Nf4Tensor.bytesFor(k, q.doubleQuant());
            }
            System.out.println(baseLine("as NF4" + (q.doubleQuant() ? " with double-quantized scales" : " with fp32 scales"),
                    TransformerLM.baseBytes(config, q), params, qBytes, qParams));
        }
        return 0;
    }

    private static String baseLine(String what, long bytes, long params, long qBytes, long qParams) {
        return String.format(Locale.ROOT, "base %s: %,d bytes for %,d parameters (%.3f bits per base parameter); the %,d linear weights"
                + " in NF4 take %.3f bits each, the other %,d parameters 32", what, bytes, params, 8.0 * bytes / params, qParams,
                8.0 * qBytes / qParams, params - qParams);
    }
}
