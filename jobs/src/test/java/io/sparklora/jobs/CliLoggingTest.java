package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * bin/spark-lora is quiet by default (conf/log4j2.properties: warnings only; SLF4J finds Spark's Log4j 2
 * binding, so no "SLF4J: Failed to load class" line) and {@code --verbose} shows INFO logs, ND4J's backend
 * banner among them. Each run is its own JVM, as a user runs it. The Spark stages' quiet and verbose runs
 * are checked by {@link ScheduledStagesIT}.
 */
class CliLoggingTest {

    /** Nothing but the JVM's own notice of the Vector API module (conf/jvm.options), which no program can silence. */
    @Test
    void helpAndInspectPrintNothingOnStderr(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), ModelConfig.gpt2(100, 16, 2, 2, 32).toJson().toString());
        CliProcess.Result inspect = CliProcess.run(dir, "inspect", 60, "inspect", "--model", dir.toString(), "--adapter", "r=4,targets=c_attn");
        assertEquals(0, inspect.code(), inspect.err());
        assertEquals("", CliProcess.withoutVectorApiNotice(inspect.err()));
        assertTrue(inspect.out().startsWith("trainable params: "), inspect.out());
        CliProcess.Result help = CliProcess.run(dir, "help", 60, "merge", "--help");
        assertEquals(0, help.code(), help.err());
        assertEquals("", CliProcess.withoutVectorApiNotice(help.err()));
    }

    @Test
    void nd4jCommandIsQuietByDefaultAndShowsTheBackendBannerWithVerbose(@TempDir Path dir) throws Exception {
        TransformerLM base = TransformerLM.randomInit(ModelConfig.gpt2(50, 16, 2, 2, 16), 1);
        HfModelDirectory.save(base, dir.resolve("base"), DataType.FLOAT, null);
        AttachedAdapter a = AttachedAdapter.attach(base, "default", AdapterConfig.of("lora", 2, 4, List.of("c_attn")), 1);
        PeftAdapterFormat.save(a, dir.resolve("adapter"), "base");
        String[] merge = {"merge", "--model", dir.resolve("base").toString(), "--adapter", dir.resolve("adapter").toString(), "--out"};

        CliProcess.Result quiet = CliProcess.run(dir, "quiet", 120, concat(merge, dir.resolve("m1").toString()));
        assertEquals(0, quiet.code(), quiet.err());
        assertEquals(List.of(), CliProcess.infoOrSlf4jLines(quiet.err()), "no INFO and no SLF4J lines by default");
        assertFalse(quiet.err().contains("CpuBackend"), quiet.err());
        assertEquals("merged checkpoint written to " + dir.resolve("m1"), quiet.out().strip(), "the command's own output is unaffected");

        CliProcess.Result verbose = CliProcess.run(dir, "verbose", 120, concat(merge, dir.resolve("m2").toString(), "--verbose"));
        assertEquals(0, verbose.code(), verbose.err());
        assertFalse(verbose.err().contains("SLF4J"), verbose.err());
        assertTrue(verbose.err().lines().anyMatch(l -> l.matches("^\\S+ \\S+ INFO Nd4jBackend: Loaded \\[CpuBackend\\] backend$")), verbose.err());
        assertEquals("merged checkpoint written to " + dir.resolve("m2"), verbose.out().strip());
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
