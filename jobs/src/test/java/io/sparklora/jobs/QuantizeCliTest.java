package io.sparklora.jobs;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.quant.QuantizedCheckpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code quantize}, {@code inspect} of a 4-bit checkpoint, and {@code merge} over an NF4 base, as a user runs them. */
class QuantizeCliTest {
    private static String[] run(String... argv) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true));
        System.setErr(new PrintStream(err, true));
        try {
            return new String[]{String.valueOf(SparkLoraCli.run(argv)), out.toString(), err.toString()};
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void quantizeWritesACheckpointThatInspectAndMergeRead(@TempDir Path tmp) throws Exception {
        ModelConfig c = ModelConfig.gpt2(50, 64, 2, 2, 32);
        Path base = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(c, 1), base, DataType.FLOAT, null);
        Files.writeString(base.resolve("tokenizer.json"), "{}");
        Path q = tmp.resolve("q");
        String[] r = run("quantize", "--model", base.toString(), "--out", q.toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("quantized 8 linear weights (98,304 parameters) to NF4 with double quantization"), r[1]);
        assertTrue(QuantizedCheckpoints.isQuantized(q));
        assertTrue(Files.isRegularFile(q.resolve("tokenizer.json")), "companion files travel along");

        // the bits per parameter of the loaded codes: 98,304 NF4 weights in 1,536 blocks of 64 over 8 tensors
        // (each tensor: n/2 bytes of codes, one byte per block, one fp32 per 256 blocks and the offset)
        String[] in = run("inspect", "--model", q.toString());
        assertEquals("0", in[0], in[2]);
        long expectedQ = 2 * (64 * 192 / 2 + 192 + 4 + 4) + 2 * (64 * 64 / 2 + 64 + 4 + 4) + 4 * (64 * 256 / 2 + 256 + 4 + 4);
        String bits = String.format(java.util.Locale.ROOT, "%.3f bits each", 8.0 * expectedQ / 98_304);
        assertTrue(in[1].contains("base NF4 checkpoint, double-quantized scales") && in[1].contains(bits), in[1] + " should say " + bits);
        assertTrue(in[1].contains(String.format(java.util.Locale.ROOT, "%,d bytes", TransformerLM.baseBytes(c, BaseQuantization.NF4_DOUBLE_QUANT))), in[1]);
        String[] plan = run("inspect", "--model", base.toString(), "--quantization", "nf4", "--no-double-quant");
        assertTrue(plan[1].contains("4.500 bits each"), plan[1]);

        String[] again = run("quantize", "--model", q.toString(), "--out", tmp.resolve("qq").toString());
        assertEquals("1", again[0]);
        assertTrue(again[2].contains("already a 4-bit checkpoint"), again[2]);
        String[] exists = run("quantize", "--model", base.toString(), "--out", q.toString());
        assertEquals("1", exists[0]);
        assertTrue(exists[2].contains("exists"), exists[2]);

        // an adapter trained over the NF4 base, merged with merge --quantization nf4: the merged fp32 model is the adapted NF4 model
        TransformerLM nf4 = QuantizedCheckpoints.load(base, BaseQuantization.NF4_DOUBLE_QUANT);
        AttachedAdapter ad = AttachedAdapter.attach(nf4, "default", AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")), 3);
        ad.trainableParameters().forEach(p -> p.value().addi(0.02));
        Path adapterDir = tmp.resolve("adapter");
        PeftAdapterFormat.save(ad, adapterDir, base.toString());
        TokenBatch b = TokenBatch.of(new int[][]{{1, 2, 3, 4}}, new int[][]{{2, 3, 4, 5}});
        INDArray adapted = nf4.logits(b).dup();
        for (String from : new String[]{base.toString(), q.toString()}) {
            Path merged = tmp.resolve("merged-" + from.hashCode());
            String[] m = run("merge", "--model", from, "--adapter", adapterDir.toString(), "--out", merged.toString(), "--quantization", "nf4");
            assertEquals("0", m[0], m[2]);
            assertTrue(m[1].contains("dequantized NF4 W0 + ΔW"), m[1]);
            TransformerLM back = HfModelDirectory.load(merged);
            assertFalse(back.quantizedBase());
            double d = back.logits(b).sub(adapted).amaxNumber().doubleValue() / adapted.amaxNumber().doubleValue();
            assertTrue(d < 1e-5, from + ": merged logits vs adapted over NF4 differ by " + d);
        }
    }
}
