package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code spark-lora export --to lora}: a LoHa adapter on disk becomes a plain PEFT LoRA that gives the same logits. */
class ExportCommandTest {

    @Test
    void lohaExportsExactlyAsARankFourLora(@TempDir Path dir) throws Exception {
        ModelConfig cfg = ModelConfig.llama(40, 16, 2, 4, 2, 24, 32);
        Path base = dir.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(cfg, 5), base, DataType.FLOAT, null);
        TransformerLM model = HfModelDirectory.load(base);
        AttachedAdapter loha = AttachedAdapter.attach(model, "default", AdapterConfig.of("loha", 2, 4, List.of("q_proj", "v_proj")), 3);
        long seed = 7;
        for (Parameter p : loha.trainableParameters()) p.value().assign(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed++), p.value().shape()).muli(0.3));
        TokenBatch batch = TokenBatch.of(new int[][]{{1, 5, 9, 13, 2}}, new int[][]{{5, 9, 13, 2, 3}});
        INDArray expected = model.logits(batch).dup();
        PeftAdapterFormat.save(loha, dir.resolve("loha"), base.toString());

        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.io.PrintStream old = System.out;
        System.setOut(new java.io.PrintStream(out, true, java.nio.charset.StandardCharsets.UTF_8));
        int rc;
        try {
            rc = SparkLoraCli.run(new String[]{"export", "--model", base.toString(), "--adapter", dir.resolve("loha").toString(),
                    "--to", "lora", "--rank", "4", "--out", dir.resolve("lora").toString()});
        } finally {
            System.setOut(old);
        }
        String printed = out.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, rc, printed);
        assertTrue(printed.contains("loha adapter exported as a LoRA of rank 4") && printed.contains("(exact)"), printed);
        assertTrue(printed.contains("model.layers.1.self_attn.v_proj: relative error"), printed);

        TransformerLM fresh = HfModelDirectory.load(base);
        AttachedAdapter lora = PeftAdapterFormat.load(fresh, dir.resolve("lora"), "default");
        assertEquals("lora", lora.config().method());
        assertEquals(4, lora.config().r());
        assertTrue(expected.equalsWithEps(fresh.logits(batch), 1e-4), "the exported LoRA gives the LoHa's logits");

        assertEquals(2, SparkLoraCli.run(new String[]{"export", "--model", base.toString(), "--adapter", dir.resolve("loha").toString(),
                "--to", "gguf", "--rank", "4", "--out", dir.resolve("x").toString()}), "an unknown format is a usage error");
    }
}
