package io.sparklora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Tensors;
import io.sparklora.model.TransformerLM;
import io.sparklora.quant.BaseQuantization;
import io.sparklora.quant.Nf4;
import io.sparklora.quant.Nf4Tensor;
import io.sparklora.quant.Nf4Weight;
import io.sparklora.quant.QuantizedCheckpoints;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

/**
 * QLoRA's figures that need no training run, each printed and written as one JSON object:
 * <ul>
 *   <li>{@code codec}: bits per parameter on the bytes the engine holds (one GPT-2-small c_attn weight and a whole
 *       GPT-2-small base, with and without double quantization, next to the formula), and the quantization error of NF4
 *       against a uniform 4-bit grid with the same blocks of 64 and the same absmax, on N(0, 1) weights;</li>
 *   <li>{@code tiles}: the cost of the tiled dequantizing matmul, forward and backward-to-input of one GPT-2-small
 *       c_fc (768 → 3072) over 1,024 rows, NF4 at several tile sizes against the dense fp32 products;</li>
 *   <li>{@code fit}: base bytes of Llama-family models in fp32 and NF4 from their shapes (the same formula
 *       {@code baseBytesHeld} is checked against), with the activation bytes per token and layer measured at the
 *       GPT-2-small shape passed in, and the largest that trains LoRA in an 8 GiB executor.</li>
 * </ul>
 * Usage: {@code QloraBench codec|tiles|fit [--out FILE] [--activation-bytes-per-token-hidden X] [--budget-gib 8]}.
 */
public final class QloraBench {
    private static final ObjectMapper JSON = new ObjectMapper();

    private QloraBench() {}

    public static void main(String[] args) throws IOException {
        if (args.length == 0) throw new IllegalArgumentException("usage: QloraBench codec|tiles|fit [--out FILE] [options]");
        String out = null;
        double actCoef = -1, budgetGib = 8;
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--out" -> out = args[i + 1];
                case "--activation-bytes-per-token-hidden" -> actCoef = Double.parseDouble(args[i + 1]);
                case "--budget-gib" -> budgetGib = Double.parseDouble(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        ObjectNode r = switch (args[0]) {
            case "codec" -> codec();
            case "tiles" -> tiles();
            case "fit" -> fit(actCoef, budgetGib);
            default -> throw new IllegalArgumentException("unknown subcommand " + args[0]);
        };
        r.set("machine", VariantsReport.machine());
        String line = JSON.writeValueAsString(r);
        System.out.println(line);
        if (out != null) {
            Path p = Path.of(out);
            if (p.getParent() != null) Files.createDirectories(p.getParent());
            Files.writeString(p, line + "\n");
        }
    }

    static ModelConfig gpt2Small() { return ModelConfig.gpt2(50257, 768, 12, 12, 1024); }

    static ObjectNode codec() {
        ObjectNode r = JSON.createObjectNode();
        r.put("what", "codec");
        // bits per parameter, measured on the bytes held
        INDArray w = Nd4j.randn(DataType.FLOAT, 2304, 768).muli(0.02);
        for (boolean dq : new boolean[]{false, true}) {
            Nf4Tensor q = Nf4Tensor.quantize(w, dq, "float32");
            ObjectNode o = r.putObject(dq ? "c_attn_double_quant" : "c_attn");
            o.put("elements", q.length()).put("bytes_held", q.bytesHeld()).put("bits_per_parameter", q.bitsPerParameter())
                    .put("formula", dq ? "4 + 8/64 + 32/(64*256) (+ 32/n for the offset)" : "4 + 32/64")
                    .put("formula_value", dq ? 4 + 8.0 / 64 + 32.0 / (64 * 256) : 4.5);
        }
        ModelConfig c = gpt2Small();
        TransformerLM fp32 = TransformerLM.randomInit(c, 1);
        ObjectNode whole = r.putObject("gpt2_small_base");
        whole.put("parameters", fp32.baseParameterCount()).put("fp32_bytes", fp32.baseBytesHeld());
        for (BaseQuantization bq : new BaseQuantization[]{BaseQuantization.NF4, BaseQuantization.NF4_DOUBLE_QUANT}) {
            TransformerLM m = QuantizedCheckpoints.quantize(fp32, bq.doubleQuant());
            long qParams = m.quantizedWeights().values().stream().mapToLong(Nf4Tensor::length).sum();
            long qBytes = m.quantizedWeights().values().stream().mapToLong(Nf4Tensor::bytesHeld).sum();
            whole.putObject(bq.label()).put("bytes_held", m.baseBytesHeld()).put("from_shapes", TransformerLM.baseBytes(c, bq))
                    .put("nf4_parameters", qParams).put("nf4_bits_per_parameter", 8.0 * qBytes / qParams)
                    .put("bits_per_base_parameter", 8.0 * m.baseBytesHeld() / m.baseParameterCount());
        }
        // quantization error on N(0, 1) weights: NF4 against 16 evenly spaced values on [-1, 1], both × the block's absmax
        Random rnd = new Random(3);
        float[] v = new float[64 * 65536];
        for (int i = 0; i < v.length; i++) v[i] = (float) rnd.nextGaussian();
        float[] absmax = new float[Nf4.blocks(v.length)];
        byte[] packed = Nf4.quantize(v, absmax);
        float[] back = new float[v.length];
        Nf4.dequantize(packed, absmax, 0, v.length, back, 0);
        double nf4 = 0, uni = 0, nf4Abs = 0, uniAbs = 0;
        for (int i = 0; i < v.length; i++) {
            double e = v[i] - back[i];
            nf4 += e * e;
            nf4Abs += Math.abs(e);
            double x = v[i] / absmax[i / 64];
            double u = Math.rint((x + 1) * 7.5) / 7.5 - 1;
            double d = v[i] - u * absmax[i / 64];
            uni += d * d;
            uniAbs += Math.abs(d);
        }
        ObjectNode err = r.putObject("error_normal_weights");
        err.put("elements", v.length).put("block", 64).put("nf4_mse", nf4 / v.length).put("uniform4_mse", uni / v.length)
                .put("nf4_mean_abs", nf4Abs / v.length).put("uniform4_mean_abs", uniAbs / v.length);
        System.out.printf(Locale.ROOT, "bits/param: c_attn %.4f (fp32 absmax), %.4f (double quant); GPT-2-small base %s%n",
                r.get("c_attn").get("bits_per_parameter").asDouble(), r.get("c_attn_double_quant").get("bits_per_parameter").asDouble(), whole);
        System.out.printf(Locale.ROOT, "error on N(0,1): NF4 MSE %.5f, uniform 4-bit MSE %.5f%n", nf4 / v.length, uni / v.length);
        return r;
    }

    static ObjectNode tiles() {
        ObjectNode r = JSON.createObjectNode();
        r.put("what", "tiles");
        int in = 768, out = 3072, n = 1024, reps = 7;
        INDArray w = Nd4j.randn(DataType.FLOAT, out, in).muli(0.02);        // [out, in]
        INDArray x = Nd4j.randn(DataType.FLOAT, n, in), dy = Nd4j.randn(DataType.FLOAT, n, out);
        r.put("layer", in + " -> " + out).put("rows", n).put("reps", reps).put("threads", Runtime.getRuntime().availableProcessors());
        Nf4Tensor q = Nf4Tensor.quantize(w, true, "float32");
        INDArray dense = q.dequantize();
        ArrayNode rows = r.putArray("rows_by_tile");
        double[] denseMs = time(reps, () -> Tensors.release(Nd4j.gemm(x, dense, false, true)), () -> Tensors.release(Nd4j.gemm(dy, dense, false, false)));
        rows.addObject().put("weight", "fp32 dense").put("tile_elements", (long) in * out).put("forward_ms", denseMs[0]).put("backward_input_ms", denseMs[1]);
        float[] scratch = new float[in * out];
        double dq = timeOne(reps, () -> q.dequantizeRows(0, out, scratch));
        r.put("dequantize_whole_layer_ms", dq);
        for (int tile : new int[]{1 << 16, 1 << 18, 1 << 20, in * out}) {
            Nf4Weight nw = new Nf4Weight("c_fc", q, true, tile);
            double[] t = time(reps, () -> Tensors.release(nw.forward(x)), () -> Tensors.release(nw.backwardInput(dy)));
            rows.addObject().put("weight", "nf4").put("tile_elements", tile).put("tile_rows", Math.max(1, Math.min(out, tile / in)))
                    .put("forward_ms", t[0]).put("backward_input_ms", t[1]).put("scratch_bytes", 4L * Math.max(in, Math.min(tile, in * out)));
        }
        System.out.println("tiled matmul (median of " + reps + "): " + rows);
        return r;
    }

    private static double timeOne(int reps, Runnable f) {
        f.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long a = System.nanoTime();
            f.run();
            t[i] = (System.nanoTime() - a) / 1e6;
        }
        Arrays.sort(t);
        return Math.round(t[reps / 2] * 100) / 100.0;
    }

    private static double[] time(int reps, Runnable fwd, Runnable bwd) { return new double[]{timeOne(reps, fwd), timeOne(reps, bwd)}; }

    /** Llama-family shapes (Hugging Face config values): name, vocab, hidden, layers, heads, kv heads, intermediate, tied. */
    private static final Object[][] LLAMAS = {
            {"Llama-3.2-1B", 128256, 2048, 16, 32, 8, 8192, true},
            {"Llama-3.2-3B", 128256, 3072, 28, 24, 8, 8192, true},
            {"Llama-2-7B", 32000, 4096, 32, 32, 32, 11008, false},
            {"Llama-3.1-8B", 128256, 4096, 32, 32, 8, 14336, false},
            {"Llama-2-13B", 32000, 5120, 40, 40, 40, 13824, false},
            {"Llama-3.1-70B", 128256, 8192, 80, 64, 8, 28672, false}};

    static ObjectNode fit(double actCoef, double budgetGib) {
        if (actCoef <= 0) throw new IllegalArgumentException("--activation-bytes-per-token-hidden is required (measured by the train-step runs)");
        ObjectNode r = JSON.createObjectNode();
        r.put("what", "fit").put("budget_gib", budgetGib).put("activation_bytes_per_token_layer_hidden", actCoef);
        int tokens = 512, rank = 16;
        r.put("tokens_per_step", tokens).put("lora_rank", rank).put("lora_targets", "q,k,v,o,gate,up,down");
        ArrayNode rows = r.putArray("models");
        long budget = (long) (budgetGib * (1L << 30));
        for (Object[] m : LLAMAS) {
            ModelConfig c = ModelConfig.llama((int) m[1], (int) m[2], (int) m[3], (int) m[4], (int) m[5], (int) m[6], 4096)
                    .withTiedEmbeddings((boolean) m[7]);
            long params = TransformerLM.parameterCount(c);
            long fp32 = TransformerLM.baseBytes(c, BaseQuantization.NONE), nf4 = TransformerLM.baseBytes(c, BaseQuantization.NF4_DOUBLE_QUANT);
            long h = c.hiddenSize(), f = c.intermediateSize(), kv = (long) c.numKvHeads() * c.headDim();
            long loraParams = (long) c.numLayers() * rank * ((h + h) * 2 + (h + kv) * 2 + (h + f) * 2 + (f + h));
            long adapterState = 16 * loraParams;                   // weight, gradient, two AdamW moments, fp32
            long activations = (long) (actCoef * tokens * c.numLayers() * h);
            long headChunk = 2L * 4 * Math.min(tokens, Math.max(1, (1 << 24) / c.vocabSize())) * c.vocabSize();
            long fp32Total = fp32 + adapterState + activations + headChunk, nf4Total = nf4 + adapterState + activations + headChunk;
            rows.addObject().put("model", (String) m[0]).put("parameters", params).put("base_fp32_bytes", fp32).put("base_nf4_bytes", nf4)
                    .put("lora_parameters", loraParams).put("adapter_and_adam_bytes", adapterState).put("activation_bytes", activations)
                    .put("head_chunk_bytes", headChunk).put("total_fp32_bytes", fp32Total).put("total_nf4_bytes", nf4Total)
                    .put("fits_fp32", fp32Total <= budget).put("fits_nf4", nf4Total <= budget);
            System.out.printf(Locale.ROOT, "%-14s %6.2fB params: fp32 base %6.2f GiB, NF4 %5.2f GiB; step total fp32 %6.2f GiB, NF4 %5.2f GiB%n",
                    m[0], params / 1e9, fp32 / (double) (1L << 30), nf4 / (double) (1L << 30), fp32Total / (double) (1L << 30), nf4Total / (double) (1L << 30));
        }
        return r;
    }
}
