package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterSpecs;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.model.ModelConfig;

import java.nio.file.Path;
import java.util.Set;

/** {@code spark-lora inspect --model DIR --adapter SPEC}: the parameter report, from config.json alone. */
final class InspectCommand {
    static final String USAGE = "inspect --model DIR --adapter SPEC   (SPEC: adapter_config.json path or type=lora,r=8,alpha=16,targets=c_attn)";

    private InspectCommand() {}

    static int run(String[] argv) {
        Args a = new Args("inspect", argv, Set.of("model", "adapter"), Set.of());
        ModelConfig config = ModelConfig.load(Path.of(a.require("model")));
        AdapterConfig adapter = AdapterSpecs.parse(a.require("adapter"), config.architecture());
        System.out.println(ParameterCounter.report(config, adapter));
        return 0;
    }
}
