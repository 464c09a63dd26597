package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.PeftAdapterFormat;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzzes PEFT's {@code adapter_config.json} ({@link PeftAdapterFormat#readConfig}) for every method's keys, and
 * spark-lora's sidecar {@code spark_lora.json} beside a valid one. The only failure allowed is an
 * {@link IllegalArgumentException} naming the file. Seeds: the reference adapters' configs and every method's
 * config as {@link PeftAdapterFormat#configJson} writes it.
 */
class PeftConfigFuzzTest {
    private static final Path DIR = FuzzChecks.scratchDirectory("peft");
    private static final Path PLAIN = dir("plain");
    private static final Path WITH_SIDECAR = dir("sidecar");

    private static Path dir(String name) {
        try {
            return Files.createDirectories(DIR.resolve(name));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void adapterConfig(byte[] data) {
        Path file = PLAIN.resolve(PeftAdapterFormat.CONFIG_FILE);
        FuzzChecks.write(file, data);
        read(file);
    }

    /** The bytes as spark_lora.json beside a valid LoRA adapter_config.json. */
    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void sidecar(byte[] data) {
        Path file = WITH_SIDECAR.resolve(PeftAdapterFormat.CONFIG_FILE);
        FuzzChecks.write(file, ("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"lora_dropout\": 0.0,"
                + " \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"none\"}").getBytes(java.nio.charset.StandardCharsets.UTF_8));
        FuzzChecks.write(WITH_SIDECAR.resolve(PeftAdapterFormat.SIDECAR_FILE), data);
        read(file);
    }

    private static void read(Path file) {
        try {
            AdapterConfig c = PeftAdapterFormat.readConfig(file);
            c.trainableTokenIndices();
            c.scale();
        } catch (IllegalArgumentException e) {
            FuzzChecks.clearError(e, file.getParent().toString());
        }
    }
}
