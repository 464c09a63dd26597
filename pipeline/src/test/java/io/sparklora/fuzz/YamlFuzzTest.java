package io.sparklora.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.sparklora.data.DatasetManifest;
import io.sparklora.runner.PipelineConfig;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Fuzzes the YAML a user hands in: a dataset manifest ({@link DatasetManifest#read}; the only failure allowed is an
 * {@link IOException} naming the file) and a pipeline config ({@link PipelineConfig#parse}; an
 * {@link IllegalArgumentException} naming it). Seeds: the project's own manifests and configs.
 * {@link YamlTagsTest} checks that explicit type tags are refused.
 */
class YamlFuzzTest {
    private static final Configuration CONF = new Configuration();
    private static final Path DIR = FuzzChecks.scratchDirectory("yaml");

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void datasetManifest(byte[] data) {
        Path file = DIR.resolve("manifest.yaml");
        FuzzChecks.write(file, data);
        try {
            DatasetManifest.read(CONF, file.toString());
        } catch (IOException e) {
            FuzzChecks.clearError(e, file.toString());
        }
    }

    @FuzzTest(maxDuration = FuzzChecks.BUDGET)
    void pipelineConfig(byte[] data) {
        try {
            PipelineConfig.parse(new String(data, StandardCharsets.UTF_8), "fuzz.yaml").adapterConfig();
        } catch (IllegalArgumentException e) {
            FuzzChecks.clearError(e, "fuzz.yaml");
        }
    }
}
