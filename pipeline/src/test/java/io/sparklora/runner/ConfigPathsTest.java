package io.sparklora.runner;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The paths of a pipeline config resolve against the working directory and stay inside it ('..' and symbolic links
 * checked) unless the config says {@code allow_outside: true}; absolute paths and URIs are taken as written; the
 * shipped configs in conf/ pass.
 */
class ConfigPathsTest {
    static final Path REPO = Path.of(System.getProperty("user.dir")).getParent();

    @TempDir
    Path tmp;

    static String config(String extra, String adapt) {
        return "name: t\n" + extra + "datasets: {adapt: " + adapt + ", pretrain: data/p.yaml}\nlora_drop: {enabled: false}\n";
    }

    private Path workingDir() throws Exception {
        return Files.createDirectories(tmp.resolve("work"));
    }

    private String refused(String yaml, Path wd) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(yaml, "run.yaml", wd));
        assertTrue(e.getMessage().startsWith("run.yaml: "), "names the config: " + e.getMessage());
        assertTrue(e.getMessage().contains("the working directory") && e.getMessage().contains("allow_outside: true"), e.getMessage());
        return e.getMessage();
    }

    @Test
    void eachPathKeyMayNotClimbOutOfTheWorkingDirectory() throws Exception {
        Path wd = workingDir();
        assertTrue(refused(config("", "../other/m.yaml"), wd).contains("datasets.adapt '../other/m.yaml'"));
        assertTrue(refused(config("output: ../../runs/x\n", "m.yaml"), wd).contains("output '../../runs/x'"));
        assertTrue(refused(config("base: {path: models/../../gpt2}\n", "m.yaml"), wd).contains("base.path 'models/../../gpt2'"));
        assertTrue(refused(config("tokenizer: {path: ../tok.json}\n", "m.yaml"), wd).contains("tokenizer.path '../tok.json'"));
        assertTrue(refused(config("full_finetune: {enabled: true, optimizer_state: mapped, spill_dir: ../spill}\n", "m.yaml"), wd)
                .contains("full_finetune.spill_dir '../spill'"));
        assertTrue(refused("name: t\ndatasets: {adapt: m.yaml, pretrain: ../p.yaml}\nlora_drop: {enabled: false}\n", wd)
                .contains("datasets.pretrain '../p.yaml'"));
    }

    @Test
    void aSymbolicLinkOutOfTheWorkingDirectoryIsRefused() throws Exception {
        Path wd = workingDir();
        Path models = Files.createDirectories(tmp.resolve("elsewhere/models"));
        Files.createSymbolicLink(wd.resolve("models"), models);
        String msg = refused(config("base: {path: models/gpt2}\n", "m.yaml"), wd);
        assertTrue(msg.contains("base.path 'models/gpt2'") && msg.contains("symbolic link"), msg);
    }

    @Test
    void insidePathsAbsolutePathsUrisAndAllowOutsidePass() throws Exception {
        Path wd = workingDir();
        Files.createDirectories(wd.resolve("runs"));
        PipelineConfig c = PipelineConfig.parse(config("output: runs/./x/../y\n", "data/../m.yaml"), "run.yaml", wd);
        assertEquals("runs/./x/../y", c.output, "paths are kept as written; they still resolve against the working directory");
        PipelineConfig.parse(config("output: " + tmp.resolve("out") + "\nbase: {path: hdfs://nn:8020/models/gpt2}\n", "s3a://b/m.yaml"), "run.yaml", wd);

        Files.createSymbolicLink(wd.resolve("models"), Files.createDirectories(tmp.resolve("elsewhere/models")));
        c = PipelineConfig.parse(config("allow_outside: true\noutput: ../runs/x\nbase: {path: models/gpt2}\n", "../m.yaml"), "run.yaml", wd);
        assertTrue(c.allowOutside);
    }

    @Test
    void theDefaultOutputIsNotTheConfigsToAnswerFor() throws Exception {
        // runs/ linked to a bigger disk is a common set-up; the config did not write runs/<name>
        Path wd = workingDir();
        Files.createSymbolicLink(wd.resolve("runs"), Files.createDirectories(tmp.resolve("scratch/runs")));
        assertEquals("runs/t", PipelineConfig.parse(config("", "m.yaml"), "run.yaml", wd).output);
        // a written output's symbolic links are not followed either (it is where the run writes); its '..' still counts
        assertEquals("runs/t", PipelineConfig.parse(config("output: runs/t\n", "m.yaml"), "run.yaml", wd).output);
        assertTrue(refused(config("output: ../t\n", "m.yaml"), wd).contains("output '../t'"));
    }

    @Test
    void theShippedConfigsPass() throws Exception {
        int n = 0;
        try (var files = Files.list(REPO.resolve("conf"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
                // as bin/spark-lora runs them: from the repository root
                PipelineConfig c = PipelineConfig.parse(Files.readString(f), f.toString(), REPO);
                assertTrue(c.datasets.adapt.startsWith("datasets-manifests/"), f + ": " + c.datasets.adapt);
                n++;
            }
        }
        assertTrue(n >= 3, "found " + n + " configs");
    }
}
