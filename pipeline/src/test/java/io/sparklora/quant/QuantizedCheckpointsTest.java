package io.sparklora.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.checkpoint.CheckpointException;
import io.sparklora.checkpoint.CheckpointFiles;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.checkpoint.SafetensorsDType;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.checkpoint.SafetensorsWriter;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** NF4 checkpoints: quantize on load, bitsandbytes' serialized layout written and read back, bad files refused. */
class QuantizedCheckpointsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path tmp;


    private static float[] floats(INDArray a) { return a.dup('c').reshape(a.length()).toFloatVector(); }

    private Path saved(ModelConfig c, DataType storeAs) {
        Path dir = tmp.resolve("fp-" + c.architecture() + "-" + storeAs);
        HfModelDirectory.save(TransformerLM.randomInit(c, 11), dir, storeAs, null);
        return dir;
    }

    @Test
    void quantizeOnLoadEqualsQuantizingTheLoadedModelAndRecordsTheSourceType() {
        for (ModelConfig c : new ModelConfig[]{TinyModels.gpt2(), TinyModels.llama()}) {
            for (DataType storeAs : new DataType[]{DataType.FLOAT, DataType.HALF, DataType.BFLOAT16}) {
                Path dir = saved(c, storeAs);
                TransformerLM onLoad = QuantizedCheckpoints.load(dir, BaseQuantization.NF4_DOUBLE_QUANT);
                TransformerLM after = QuantizedCheckpoints.quantize(HfModelDirectory.load(dir), true);
                assertEquals(TransformerLM.quantizableWeights(c), java.util.List.copyOf(onLoad.quantizedWeights().keySet()));
                String dtype = storeAs == DataType.FLOAT ? "float32" : storeAs == DataType.HALF ? "float16" : "bfloat16";
                for (String n : TransformerLM.quantizableWeights(c)) {
                    assertArrayEquals(after.quantizedWeights().get(n).packedBytes(), onLoad.quantizedWeights().get(n).packedBytes(), n);
                    assertEquals(dtype, onLoad.quantizedWeights().get(n).sourceDtype());
                }
                assertFalse(onLoad.parameters().containsKey(TransformerLM.quantizableWeights(c).get(0)), "NF4 weights are not parameters");
            }
        }
    }

    @Test
    void theBitsandbytesLayoutRoundTripsExactly() throws IOException {
        for (ModelConfig c : TinyModels.all()) {
            for (boolean dq : new boolean[]{true, false}) {
                TransformerLM nf4 = QuantizedCheckpoints.load(saved(c, DataType.FLOAT), dq ? BaseQuantization.NF4_DOUBLE_QUANT : BaseQuantization.NF4);
                Path out = tmp.resolve("q-" + c.architecture() + "-" + dq);
                QuantizedCheckpoints.write(nf4, out, null);
                assertTrue(QuantizedCheckpoints.isQuantized(out));
                TransformerLM back = HfModelDirectory.load(out);      // detected from config.json, loaded as NF4
                for (Map.Entry<String, Nf4Tensor> e : nf4.quantizedWeights().entrySet()) {
                    Nf4Tensor a = e.getValue(), b = back.quantizedWeights().get(e.getKey());
                    assertArrayEquals(a.packedBytes(), b.packedBytes(), e.getKey());
                    for (int i = 0; i < a.blocks(); i++) assertEquals(a.absmax(i), b.absmax(i), 0f, e.getKey() + " absmax " + i);
                    assertEquals(a.bytesHeld(), b.bytesHeld());
                }
                TokenBatch batch = TinyModels.batch(c, 2, 4, 1);
                assertArrayEquals(floats(nf4.logits(batch)), floats(back.logits(batch)), c.architecture() + " logits after the round trip");
            }
        }
    }

    @Test
    void theFilesAreBitsandbytesTensorsAndTheConfigDeclaresTheQuantization() throws IOException {
        ModelConfig c = TinyModels.gpt2();
        TransformerLM nf4 = QuantizedCheckpoints.load(saved(c, DataType.HALF), BaseQuantization.NF4_DOUBLE_QUANT);
        Path out = tmp.resolve("layout");
        QuantizedCheckpoints.write(nf4, out, null);
        JsonNode qc = JSON.readTree(out.resolve("config.json").toFile()).get("quantization_config");
        assertEquals("bitsandbytes", qc.get("quant_method").asText());
        assertTrue(qc.get("load_in_4bit").asBoolean());
        assertEquals("nf4", qc.get("bnb_4bit_quant_type").asText());
        assertTrue(qc.get("bnb_4bit_use_double_quant").asBoolean());
        String w = "transformer.h.0.attn.c_attn.weight";           // Conv1D [8, 24] → quantized [24, 8]: 192 elements, 3 blocks
        try (SafetensorsReader r = SafetensorsReader.open(out.resolve(CheckpointFiles.SINGLE_FILE))) {
            assertEquals(SafetensorsDType.U8, r.dtype(w));
            assertArrayEquals(new long[]{96, 1}, r.shape(w));
            assertEquals(SafetensorsDType.U8, r.dtype(w + ".absmax"));
            assertArrayEquals(new long[]{3}, r.shape(w + ".absmax"));
            assertArrayEquals(Nf4.CODE, r.read(w + ".quant_map").toFloatVector(), 0f);
            assertArrayEquals(new long[]{1}, r.shape(w + ".nested_absmax"));
            assertArrayEquals(DoubleQuant.DYNAMIC_MAP, r.read(w + ".nested_quant_map").toFloatVector(), 0f);
            INDArray raw = r.readRaw(w + QuantizedCheckpoints.QUANT_STATE);
            byte[] b = new byte[(int) raw.length()];
            for (int i = 0; i < b.length; i++) b[i] = (byte) raw.getInt(i);
            JsonNode state = JSON.readTree(new String(b, StandardCharsets.UTF_8));
            assertEquals("nf4", state.get("quant_type").asText());
            assertEquals(64, state.get("blocksize").asInt());
            assertEquals("float16", state.get("dtype").asText());
            assertEquals("[24,8]", state.get("shape").toString());
            assertEquals(256, state.get("nested_blocksize").asInt());
            assertEquals("float32", state.get("nested_dtype").asText());
            assertEquals(nf4.quantizedWeights().get(w).doubleQuant().offset(), (float) state.get("nested_offset").asDouble(), 0f);
            assertEquals(SafetensorsDType.F32, r.dtype("transformer.wte.weight"), "embeddings stay full precision");
            assertFalse(r.contains("lm_head.weight"));
        }
    }

    /** Rewrites the quantized checkpoint's tensors with {@code edit} applied, keeping its config. */
    private Path edited(String name, java.util.function.Consumer<Map<String, INDArray>> edit) throws IOException {
        ModelConfig c = TinyModels.llama();
        TransformerLM nf4 = QuantizedCheckpoints.load(saved(c, DataType.FLOAT), BaseQuantization.NF4_DOUBLE_QUANT);
        Path good = tmp.resolve("good-" + name);
        QuantizedCheckpoints.write(nf4, good, null);
        Map<String, INDArray> t = new LinkedHashMap<>();
        Path file = good.resolve(CheckpointFiles.SINGLE_FILE);
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            for (String n : r.names()) t.put(n, r.dtype(n).isFloatingPoint() ? r.read(n) : r.readRaw(n));
        }
        edit.accept(t);
        Path bad = tmp.resolve("bad-" + name);
        Files.createDirectories(bad);
        Files.copy(good.resolve("config.json"), bad.resolve("config.json"));
        SafetensorsWriter.write(bad.resolve(CheckpointFiles.SINGLE_FILE), t, Map.of("format", "pt"), DataType.FLOAT);
        return bad;
    }

    private static void assertRefused(Path dir, String... fragments) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> HfModelDirectory.load(dir));
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "'" + e.getMessage() + "' should name " + f);
    }

    @Test
    void inconsistentOrTruncatedCheckpointsAreRefusedNamingTheTensor() throws IOException {
        String q = "model.layers.1.self_attn.k_proj.weight";      // [4, 8]: 32 elements, 16 bytes, 1 block
        assertRefused(edited("no-absmax", t -> t.remove(q + ".absmax")), q + ".absmax", "missing");
        assertRefused(edited("no-codes", t -> t.remove(q)), q, "missing");
        assertRefused(edited("short-codes", t -> t.put(q, Nd4j.create(DataType.UBYTE, 15, 1))), q, "15 bytes");
        assertRefused(edited("shape", t -> t.put(q + QuantizedCheckpoints.QUANT_STATE, ubytes(
                "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [8, 4], \"nested_blocksize\": 256,"
                        + " \"nested_dtype\": \"float32\", \"nested_offset\": 0.01}"))), q + QuantizedCheckpoints.QUANT_STATE, "[8,4]", "[4, 8]");
        assertRefused(edited("blocksize", t -> t.put(q + QuantizedCheckpoints.QUANT_STATE, ubytes(
                "{\"quant_type\": \"nf4\", \"blocksize\": 128, \"dtype\": \"float32\", \"shape\": [4, 8], \"nested_blocksize\": 256,"
                        + " \"nested_dtype\": \"float32\", \"nested_offset\": 0.01}"))), q + QuantizedCheckpoints.QUANT_STATE, "blocksize 128");
        assertRefused(edited("fp4-map", t -> t.put(q + ".quant_map", Nd4j.linspace(-1, 1, 16, DataType.FLOAT))), q + ".quant_map", "not an NF4 map");
        assertRefused(edited("stray", t -> t.put("lm_head.weight.absmax", Nd4j.zeros(DataType.FLOAT, 3))), "lm_head.weight.absmax");

        // a file cut short: the header promises more bytes than there are
        Path cut = edited("truncated", t -> { });
        Path f = cut.resolve(CheckpointFiles.SINGLE_FILE);
        byte[] all = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(all, all.length - 40));
        CheckpointException e = assertThrows(CheckpointException.class, () -> HfModelDirectory.load(cut));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());

        ObjectNode cfg = (ObjectNode) JSON.readTree(cut.resolve("config.json").toFile());
        ((ObjectNode) cfg.get("quantization_config")).put("bnb_4bit_quant_type", "fp4");
        Path fp4 = edited("fp4", t -> { });
        Files.writeString(fp4.resolve("config.json"), cfg.toString());
        assertRefused(fp4, "bnb_4bit_quant_type", "fp4");
    }

    private static INDArray ubytes(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        INDArray a = Nd4j.create(DataType.UBYTE, b.length);
        for (int i = 0; i < b.length; i++) a.putScalar(i, b[i] & 0xFF);
        return a;
    }
}
