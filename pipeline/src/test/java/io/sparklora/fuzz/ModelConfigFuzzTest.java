package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.ModelConfigException;

import java.nio.file.Path;

/**
 * Fuzzes {@code config.json} of a Hugging Face model directory ({@link ModelConfig#load}), rope_scaling included.
 * The only failure allowed is a {@link ModelConfigException} naming the file. Seeds: the configs of the reference
 * models under {@code src/test/resources/reference}.
 */
class ModelConfigFuzzTest {
    private static final Path DIR = FuzzChecks.scratchDirectory("config");

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void configJson(byte[] data) {
        Path file = DIR.resolve("config.json");
        FuzzChecks.write(file, data);
        try {
            ModelConfig c = ModelConfig.load(DIR);
            c.toJson();
            // the rotary frequencies a model of this config computes first (a head width within reason: the
            // reader does not bound sizes, the weights that must match them do)
            if (c.headDim() <= 4096) c.ropeScaling().inverseFrequencies(c.headDim(), c.ropeTheta(), Math.min(c.maxPositions(), 64) + 1);
        } catch (ModelConfigException e) {
            FuzzChecks.clearError(e, file.toString());
        }
    }
}
