package io.sparklora.runner;

import io.sparklora.adapters.AdapterConfig;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The YAML's {@code adapter} section selects every method; a method's settings sit beside the shared keys. */
class PipelineConfigAdapterTest {
    private static String yaml(String adapter, String train) {
        return "name: t\n"
                + "datasets:\n  adapt: datasets-manifests/demo/spam.yaml\n"
                + "base:\n  path: /models/tiny\n"
                + "adapter:\n" + adapter
                + "train:\n  rounds: 2\n" + train
                + "lora_drop:\n  enabled: false\n";
    }

    @Test
    void everyMethodIsSelectedByTypeOrPeftsFlags() {
        AdapterConfig v = PipelineConfig.parse(yaml("  type: vera\n  r: 64\n  d_initial: 0.2\n  targets: [c_attn]\n", ""), "t.yaml").adapterConfig();
        assertEquals("vera", v.method());
        assertEquals(0.2, v.doubleOption("d_initial"));
        assertEquals(64, v.r());
        assertEquals(List.of("c_attn"), v.targetModules());
        assertEquals("dora", PipelineConfig.parse(yaml("  use_dora: true\n  targets: [c_attn]\n", ""), "t.yaml").adapterConfig().method());
        assertEquals("lora_fa", PipelineConfig.parse(yaml("  type: lora\n  lora_fa: true\n  targets: [c_attn]\n", ""), "t.yaml").adapterConfig().method());
        AdapterConfig plus = PipelineConfig.parse(yaml("  type: loraplus\n  targets: [c_attn]\n", "  loraplus_lr_ratio: 8\n"), "t.yaml").adapterConfig();
        assertEquals(8.0, plus.doubleOption("loraplus_lr_ratio"), "train.loraplus_lr_ratio is LoRA+'s λ");
    }

    @Test
    void dpSettingsReadAndEveryNonPrivateStageIsRefused() {
        PipelineConfig c = PipelineConfig.parse(yaml("  type: dylora\n  targets: [c_attn]\n",
                "  sync: parameters\n  dp:\n    mode: client\n    clip_norm: 0.5\n    noise_multiplier: 1.2\n    sample_rate: 0.5\n    epsilon_budget: 8\n"), "t.yaml");
        var dp = c.train.dp.spec();
        assertEquals("client", dp.mode());
        assertEquals(0.5, dp.clipNorm());
        assertEquals(8.0, dp.epsilonBudget());
        var sync = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  dp:\n    mode: example\n  sync: parameters\n"), "t.yaml"));
        assertTrue(sync.getMessage().contains("train.dp.mode example needs train.sync: gradients"), sync.getMessage());
        var drop = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  dp:\n    mode: example\n").replace("enabled: false", "enabled: true"), "t.yaml"));
        assertTrue(drop.getMessage().contains("lora_drop trains on the same data without privacy"), drop.getMessage());
        var noise = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  dp:\n    mode: example\n    clip_norm: 0\n"), "t.yaml"));
        assertTrue(noise.getMessage().contains("train.dp.clip_norm must be positive"), noise.getMessage());
    }

    @Test
    void outerOptimizerReadsWithDilocosDefaultsAndNeedsParameterSync() {
        PipelineConfig c = PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  local_steps: 8\n  outer:\n    optimizer: sgd\n"), "t.yaml");
        assertEquals(io.sparklora.train.OuterOptimizer.Spec.DILOCO, c.train.outer.spec());
        PipelineConfig heavy = PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  outer: {optimizer: sgd, lr: 0.5, momentum: 0.8, nesterov: false}\n"), "t.yaml");
        assertEquals(new io.sparklora.train.OuterOptimizer.Spec("sgd", 0.5, 0.8, false), heavy.train.outer.spec());
        assertFalse(PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n", ""), "t.yaml").train.outer.spec().on(),
                "plain averaging unless asked");
        var grads = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  outer: {optimizer: sgd}\n"), "t.yaml"));
        assertTrue(grads.getMessage().startsWith("t.yaml") && grads.getMessage().contains("needs train.sync: parameters"), grads.getMessage());
        var bad = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  outer: {optimizer: sgd, momentum: 1.5}\n"), "t.yaml"));
        assertTrue(bad.getMessage().contains("train.outer.momentum must be in [0, 1)"), bad.getMessage());
        var typo = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  outer: {optimiser: sgd}\n"), "t.yaml"));
        assertTrue(typo.getMessage().contains("optimiser"), typo.getMessage());
    }

    @Test
    void aggregateModesReadAndConflictsNameTheSetting() {
        PipelineConfig svd = PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  average_optimizer_state: false\n  aggregate: svd\n"), "t.yaml");
        assertEquals("svd", svd.train.aggregate);
        assertEquals("mean", PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n", ""), "t.yaml").train.aggregate);
        var moments = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  aggregate: svd\n"), "t.yaml"));
        assertTrue(moments.getMessage().startsWith("t.yaml") && moments.getMessage().contains("average_optimizer_state: false"), moments.getMessage());
        var frozen = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n",
                "  sync: parameters\n  aggregate: frozen_a\n"), "t.yaml"));
        assertTrue(frozen.getMessage().contains("lora_fa"), frozen.getMessage());
        assertEquals("frozen_a", PipelineConfig.parse(yaml("  type: lora_fa\n  targets: [c_attn]\n",
                "  sync: parameters\n  aggregate: frozen_a\n"), "t.yaml").train.aggregate);
        String stack = "  sync: parameters\n  average_optimizer_state: false\n  aggregate: stack\n";
        assertEquals("stack", PipelineConfig.parse(yaml("  type: lora\n  targets: [c_attn]\n", stack), "t.yaml").train.aggregate);
        var dora = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: dora\n  targets: [c_attn]\n", stack), "t.yaml"));
        assertTrue(dora.getMessage().startsWith("t.yaml") && dora.getMessage().contains("aggregate: stack"), dora.getMessage());
        var drop = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                yaml("  type: lora\n  targets: [c_attn]\n", stack).replace("lora_drop:\n  enabled: false", "lora_drop:\n  enabled: true"), "t.yaml"));
        assertTrue(drop.getMessage().contains("lora_drop"), drop.getMessage());
    }

    @Test
    void unknownOrMisplacedSettingsAreNamed() {
        var typo = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: vera\n  d_inital: 0.2\n", ""), "t.yaml"));
        assertTrue(typo.getMessage().contains("unknown key 'adapter.d_inital' (line 8)") && typo.getMessage().contains("d_initial"), typo.getMessage());
        var other = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: lora\n  d_initial: 0.2\n  targets: [c_attn]\n", ""), "t.yaml"));
        assertTrue(other.getMessage().contains("unknown key 'adapter.d_initial' for adapter type lora"), other.getMessage());
        var trainKey = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: vera\n  targets: [c_attn]\n", "  loraplus_lr_ratio: 8\n"), "t.yaml"));
        assertTrue(trainKey.getMessage().contains("unknown key 'train.loraplus_lr_ratio' (adapter type vera"), trainKey.getMessage());
        var type = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: veraa\n", ""), "t.yaml"));
        assertTrue(type.getMessage().contains("unknown adapter type 'veraa'") && type.getMessage().contains("lora, loraplus, lora_fa, dora, vera"), type.getMessage());
        var drop = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                yaml("  type: dora\n  targets: [c_attn]\n", "").replace("enabled: false", "enabled: true"), "t.yaml"));
        assertTrue(drop.getMessage().contains("lora_drop") && drop.getMessage().contains("dora"), drop.getMessage());
        var value = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml("  type: vera\n  d_initial: lots\n  targets: [c_attn]\n", ""), "t.yaml"));
        assertTrue(value.getMessage().contains("d_initial must be a number, got 'lots'"), value.getMessage());
    }

    @Test
    void gloraSearchIsOnlyForGlora() {
        String search = "glora_search:\n  enabled: true\n  population: 4\n";
        var lora = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                yaml("  type: lora\n  targets: [c_attn]\n", "") + search, "t.yaml"));
        assertTrue(lora.getMessage().contains("t.yaml: glora_search.enabled is true") && lora.getMessage().contains("adapter.type is lora")
                && lora.getMessage().contains("set adapter.type: glora or glora_search.enabled: false"), lora.getMessage());
        PipelineConfig ok = PipelineConfig.parse(yaml("  type: glora\n  r: 4\n  targets: [c_attn]\n", "") + search, "t.yaml");
        assertEquals(4, ok.gloraSearchSpec().population());
        assertEquals(1, ok.gloraSearchSpec().generations(), "default");
        assertFalse(PipelineConfig.parse(yaml("  type: glora\n  targets: [c_attn]\n", ""), "t.yaml").gloraSearch.enabled, "off unless enabled");
        var bad = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                yaml("  type: glora\n  targets: [c_attn]\n", "") + search + "  sample_fraction: 0\n", "t.yaml"));
        assertTrue(bad.getMessage().contains("glora_search.sample_fraction must be in (0, 1]"), bad.getMessage());
        var typo = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                yaml("  type: glora\n  targets: [c_attn]\n", "") + search + "  generation: 2\n", "t.yaml"));
        assertTrue(typo.getMessage().contains("unknown key 'glora_search.generation'"), typo.getMessage());
    }

    @Test
    void baseQuantizationIsNoneOrNf4WithDoubleQuantOnByDefault() {
        String y = yaml("  type: lora\n  targets: [c_attn]\n", "");
        assertEquals(io.sparklora.quant.BaseQuantization.NONE, PipelineConfig.parse(y, "t.yaml").baseQuantization());
        assertEquals(io.sparklora.quant.BaseQuantization.NF4_DOUBLE_QUANT,
                PipelineConfig.parse(y.replace("  path: /models/tiny\n", "  path: /models/tiny\n  quantization: nf4\n"), "t.yaml").baseQuantization());
        assertEquals(io.sparklora.quant.BaseQuantization.NF4, PipelineConfig.parse(y.replace("  path: /models/tiny\n",
                "  path: /models/tiny\n  quantization: NF4\n  double_quant: false\n"), "t.yaml").baseQuantization());
        var bad = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                y.replace("  path: /models/tiny\n", "  path: /models/tiny\n  quantization: int8\n"), "t.yaml"));
        assertTrue(bad.getMessage().contains("t.yaml: base.quantization: unknown quantization 'int8'") && bad.getMessage().contains("none or nf4"),
                bad.getMessage());
    }
}
