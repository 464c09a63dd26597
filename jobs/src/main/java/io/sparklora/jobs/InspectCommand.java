package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.ModelConfig;

import java.nio.file.Path;

/** {@code spark-lora inspect --model DIR --adapter SPEC}: the parameter report, from config.json alone. */
final class InspectCommand {
    static final Args.Spec SPEC = new Args.Spec("inspect", "The trainable and total parameter counts of a model with an adapter, from config.json alone.",
            Args.Option.required("model", "DIR", "Hugging Face model directory (only its config.json is read)"),
            Args.Option.required("adapter", "SPEC", "adapter_config.json path, or type=lora,r=8,alpha=16,targets=c_attn"));

    private InspectCommand() {}

    static int run(String[] argv) {
        Args a = SPEC.parse(argv);
        ModelConfig config = ModelConfig.load(Path.of(a.require("model")));
        AdapterConfig adapter = AdapterSpecs.parse(a.require("adapter"), config.architecture());
        System.out.println(ParameterCounter.report(config, adapter));
        return 0;
    }
}
