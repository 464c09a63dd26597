package io.sparklora.fuzz;

import io.sparklora.data.DatasetManifest;
import io.sparklora.runner.PipelineConfig;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * YAML from a user never turns into objects of a type the file names ({@link io.sparklora.util.SafeYaml}): an
 * explicit type tag is refused with an error naming the file, the tag and its line, before any value is used;
 * the core schema's tags still work; deep nesting and alias expansion cannot exhaust the stack or the heap.
 */
class YamlTagsTest {
    private static final Configuration CONF = new Configuration();
    /** The classic SnakeYAML gadget: a script engine manager whose class loader fetches code from a URL. */
    private static final String GADGET = "!!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL [\"http://127.0.0.1:1/x.jar\"]]]]";

    @TempDir
    Path dir;

    private static final String CONFIG = "name: tagged\ndatasets:\n  adapt: m.yaml\n  pretrain: p.yaml\nadapter:\n  r: 8\n";

    @Test
    void aScriptEngineGadgetInAPipelineConfigIsRefusedNamingTheTag() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PipelineConfig.parse(CONFIG + "  alpha: " + GADGET + "\n", "conf/evil.yaml"));
        assertTrue(e.getMessage().startsWith("conf/evil.yaml: "), e.getMessage());
        assertTrue(e.getMessage().contains("!!javax.script.ScriptEngineManager is not allowed"), e.getMessage());
        assertTrue(e.getMessage().contains("line 7"), e.getMessage());
    }

    @Test
    void aTagInAMethodSettingIsRefusedToo() {
        // adapter settings go through an any-setter taking Object: the place a tag would have been honoured, if anywhere
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PipelineConfig.parse(CONFIG + "  d_initial: !!java.io.File /etc/passwd\n", "evil.yaml"));
        assertTrue(e.getMessage().contains("!!java.io.File is not allowed"), e.getMessage());
    }

    @Test
    void aFileTagInADatasetManifestIsRefusedNamingTheFile() throws IOException {
        Path m = dir.resolve("manifest.yaml");
        Files.writeString(m, "name: d\nsources:\n  - name: s\n    uri: !!java.io.File /etc/passwd\n    format: text\n");
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, m.toString()));
        assertTrue(e.getMessage().contains(m.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("!!java.io.File is not allowed"), e.getMessage());
    }

    @Test
    void localTagsAreRefused() throws IOException {
        Path m = dir.resolve("manifest.yaml");
        Files.writeString(m, "name: !custom d\nsources: [{name: s, uri: a.txt, format: text}]\n");
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, m.toString()));
        assertTrue(e.getMessage().contains("!custom is not allowed"), e.getMessage());
    }

    @Test
    void coreSchemaTagsAreStillPlainValues() throws IOException {
        Path m = dir.resolve("manifest.yaml");
        Files.writeString(m, "name: !!str 2024\nsources: !!seq [{name: s, uri: a.txt, format: text}]\n");
        assertEquals("2024", DatasetManifest.read(CONF, m.toString()).name());
        assertEquals(8, PipelineConfig.parse(CONFIG.replace("r: 8", "r: !!int \"8\""), "c.yaml").adapterConfig().r());
    }

    @Test
    void deepNestingIsRefusedWithoutAStackOverflow() {
        String deep = "[".repeat(20_000) + "]".repeat(20_000);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PipelineConfig.parse(CONFIG + "  d_initial: " + deep + "\n", "deep.yaml"));
        assertTrue(e.getMessage().contains("nesting deeper than"), e.getMessage());
    }

    @Test
    void aliasesAreNotExpanded() throws IOException {
        // a billion-laughs document: if aliases were expanded, the last list would hold 10^9 strings
        StringBuilder y = new StringBuilder("name: d\ndescription: x\nlicence: &a0 lol\nlabels: [ham]\nsources: [{name: s, uri: a.txt, format: text}]\n");
        y.append("x0: &b0 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n");
        for (int i = 1; i < 9; i++) {
            y.append("x").append(i).append(": &b").append(i).append(" [");
            for (int j = 0; j < 10; j++) y.append(j == 0 ? "" : ", ").append("*b").append(i - 1);
            y.append("]\n");
        }
        Path m = dir.resolve("laughs.yaml");
        Files.writeString(m, y.toString());
        // refused for its unknown keys, after the whole document was read as it is: small
        IOException e = assertThrows(IOException.class, () -> DatasetManifest.read(CONF, m.toString()));
        assertTrue(e.getMessage().contains("unknown key 'x0'"), e.getMessage());
    }
}
