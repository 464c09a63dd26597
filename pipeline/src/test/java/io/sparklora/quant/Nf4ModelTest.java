package io.sparklora.quant;

import io.sparklora.model.Architecture;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** A model over an NF4 base: the same function as the dequantized fp32 model, the bytes it holds, the tiled products. */
class Nf4ModelTest {

    /** The fp32 model whose linear weights are exactly the NF4 model's, dequantized (in each checkpoint's layout). */
    static TransformerLM dequantized(TransformerLM nf4) {
        Map<String, INDArray> w = new LinkedHashMap<>(nf4.fullPrecisionTensors());
        boolean conv1d = nf4.config().architecture() == Architecture.GPT2;
        for (Map.Entry<String, Nf4Tensor> e : nf4.quantizedWeights().entrySet()) {
            INDArray d = e.getValue().dequantize();
            w.put(e.getKey(), conv1d ? d.transpose().dup('c') : d);
        }
        return TransformerLM.fromWeights(nf4.config(), w);
    }

    static void setTile(TransformerLM m, int elements) {
        for (Linear l : m.allLinears()) if (l.baseWeight() instanceof Nf4Weight w) w.setTileElements(elements);
    }

    static float[] floats(INDArray a) { return a.dup('c').reshape(a.length()).toFloatVector(); }

    @Test
    void logitsEqualTheDequantizedFp32ModelExactlyInEveryFamily() {
        for (ModelConfig c : TinyModels.all()) {
            TransformerLM nf4 = QuantizedCheckpoints.quantize(TransformerLM.randomInit(c, 3), true);
            TransformerLM ref = dequantized(nf4);
            TokenBatch batch = TinyModels.batch(c, 2, 5, 4);
            float[] expected = floats(ref.logits(batch));
            assertArrayEquals(expected, floats(nf4.logits(batch)), c.architecture() + ": bit for bit");
            // narrower tiles compute the same dot products, but BLAS may take a different kernel at a narrow matrix's
            // edge and round differently (measured: one ulp), so these are checked to fp32 rounding
            for (int tile : new int[]{40, 1}) {
                setTile(nf4, tile);
                float[] got = floats(nf4.logits(batch));
                for (int i = 0; i < got.length; i++) {
                    assertEquals(expected[i], got[i], 4 * Math.ulp(Math.abs(expected[i])) + 1e-7f, c.architecture() + ", tile " + tile + ", logit " + i);
                }
            }
        }
    }

    @Test
    void theInputGradientThroughTilesMatchesTheDenseOne() {
        for (ModelConfig c : TinyModels.all()) {
            TransformerLM nf4 = QuantizedCheckpoints.quantize(TransformerLM.randomInit(c, 5), false);
            TransformerLM ref = dequantized(nf4);
            for (Map.Entry<String, Linear> e : nf4.linears().entrySet()) {
                Linear q = e.getValue(), d = ref.linears().get(e.getKey());
                if (!(q.baseWeight() instanceof Nf4Weight w)) continue;
                w.setTileElements(q.inFeatures() * 2);                        // two output rows per tile
                INDArray dy = Nd4j.rand(DataType.FLOAT, 6, q.outFeatures()).subi(0.5);
                INDArray expected = d.baseWeight().backwardInput(dy);
                INDArray got = q.baseWeight().backwardInput(dy);
                double scale = expected.norm2Number().doubleValue();
                assertEquals(0.0, got.sub(expected).norm2Number().doubleValue() / scale, 1e-6, c.architecture() + " " + e.getKey());
                INDArray target = Nd4j.zeros(DataType.FLOAT, d.baseWeight().dense().shape());
                q.baseWeight().addTo(target, 2.0);
                assertArrayEquals(floats(d.baseWeight().dense().mul(2.0)), floats(target), e.getKey() + ": addTo in storage layout");
            }
        }
    }

    @Test
    void bytesHeldAreExactlyTheCodesAndScales() {
        ModelConfig c = ModelConfig.gpt2(50, 64, 2, 2, 32);    // c_attn 64 x 192, c_proj 64 x 64, c_fc 64 x 256, mlp c_proj 256 x 64
        TransformerLM fp32 = TransformerLM.randomInit(c, 1);
        long linear = 2L * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64);
        long fp32Bytes = 4L * fp32.baseParameterCount();
        assertEquals(fp32Bytes, fp32.baseBytesHeld());
        long other = fp32Bytes - 4 * linear;
        TransformerLM plain = QuantizedCheckpoints.quantize(fp32, false);
        TransformerLM dq = QuantizedCheckpoints.quantize(fp32, true);
        assertEquals(fp32.baseParameterCount(), plain.baseParameterCount());
        // per weight of n elements: n/2 bytes of codes; fp32 absmax 4·n/64, or 8-bit ones n/64 plus 4 per 256 of them and the offset
        long plainLinear = 0, dqLinear = 0;
        for (long n : new long[]{64 * 192, 64 * 64, 64 * 256, 256 * 64}) {
            long blocks = n / 64;
            plainLinear += 2 * (n / 2 + 4 * blocks);
            dqLinear += 2 * (n / 2 + blocks + 4 * ((blocks + 255) / 256) + 4);
        }
        assertEquals(other + plainLinear, plain.baseBytesHeld());
        assertEquals(other + dqLinear, dq.baseBytesHeld());
        assertEquals(plain.baseBytesHeld(), TransformerLM.baseBytes(c, BaseQuantization.NF4), "the formula from shapes alone");
        assertEquals(dq.baseBytesHeld(), TransformerLM.baseBytes(c, BaseQuantization.NF4_DOUBLE_QUANT));
        assertEquals(fp32.baseBytesHeld(), TransformerLM.baseBytes(c, BaseQuantization.NONE));
        Nf4Tensor attn = plain.quantizedWeights().get("transformer.h.0.attn.c_attn.weight");
        assertEquals(192, attn.rows(), "GPT-2's Conv1D weight is held [out, in]");
        assertEquals(4.5, attn.bitsPerParameter(), 1e-12);
        // a GPT-2-small c_attn (768 x 2304) with double quantization: 4 + 8/64 + 32/(64·256) bits plus the offset
        Nf4Tensor big = Nf4Tensor.quantize(Nd4j.rand(DataType.FLOAT, 2304, 768), true, "float32");
        long n = 2304L * 768, blocks = n / 64;
        assertEquals(n / 2 + blocks + 4 * ((blocks + 255) / 256) + 4, big.bytesHeld());
        assertEquals(4.127, big.bitsPerParameter(), 5e-4);
    }

    @Test
    void dequantizingRowsFromAnyOffsetMatchesTheWholeTensor() {
        INDArray w = Nd4j.randn(DataType.FLOAT, 7, 37);   // 259 elements: blocks straddle rows, odd row starts
        for (boolean dq : new boolean[]{false, true}) {
            Nf4Tensor q = Nf4Tensor.quantize(w, dq, "float32");
            float[] all = floats(q.dequantize());
            for (int r0 = 0; r0 < 7; r0++) {
                for (int r1 = r0; r1 <= 7; r1++) {
                    float[] part = new float[(r1 - r0) * 37];
                    q.dequantizeRows(r0, r1, part);
                    for (int i = 0; i < part.length; i++) assertEquals(all[r0 * 37 + i], part[i], 0f, "rows " + r0 + ".." + r1 + " element " + i);
                }
            }
            // and the values are the codec's: code · absmax of the element's block
            byte[] codes = q.packedBytes();
            for (int i = 0; i < 259; i++) assertEquals(Nf4.CODE[Nf4.code(codes, i)] * q.absmax(i / 64), all[i], 0f);
        }
    }

    @Test
    void theCodesAreSharedReadOnlyAndNeverChange() {
        TransformerLM nf4 = QuantizedCheckpoints.quantize(TransformerLM.randomInit(TinyModels.llama(), 2), true);
        Nf4Tensor q = nf4.quantizedWeights().get("model.layers.0.self_attn.q_proj.weight");
        ByteBuffer codes = q.packed();
        assertTrue(codes.isReadOnly());
        assertThrows(IllegalStateException.class, () -> nf4.linears().get("model.layers.0.self_attn.q_proj").weight(),
                "an NF4 weight has no full-precision tensor to hand out");
        assertThrows(UnsupportedOperationException.class, () -> nf4.linears().get("model.layers.0.self_attn.q_proj").baseWeight()
                .accumulateGradient(Nd4j.zeros(DataType.FLOAT, 1, 8), Nd4j.zeros(DataType.FLOAT, 1, 8)));
        assertNotNull(nf4.forward(TinyModels.batch(TinyModels.llama(), 1, 3, 1), ForwardContext.inference()));
    }
}
