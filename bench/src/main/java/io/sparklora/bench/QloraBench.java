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
import java.util.Map;
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
                default -> {
                    if (!args[0].equals("report")) throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
        }
        ObjectNode r = switch (args[0]) {
            case "codec" -> codec();
            case "tiles" -> tiles();
            case "fit" -> fit(actCoef, budgetGib);
            case "report" -> report(args);
            default -> throw new IllegalArgumentException("unknown subcommand " + args[0]);
        };
        if (args[0].equals("report")) return;
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

    // ---- the report: docs/QLORA.md's figures region ------------------------------------------------

    private static com.fasterxml.jackson.databind.JsonNode read(Path p) throws IOException { return JSON.readTree(Files.readString(p)); }

    private static java.util.List<com.fasterxml.jackson.databind.JsonNode> lines(Path p) throws IOException {
        java.util.List<com.fasterxml.jackson.databind.JsonNode> l = new java.util.ArrayList<>();
        for (String s : Files.readAllLines(p)) if (!s.isBlank()) l.add(JSON.readTree(s));
        return l;
    }

    private static String gib(double bytes) { return String.format(Locale.ROOT, "%.2f GiB", bytes / (1L << 30)); }
    private static String mib(double bytes) { return String.format(Locale.ROOT, "%.1f MiB", bytes / (1 << 20)); }

    /** report --dir bench/out --doc docs/QLORA.md --command CMD: the figures between the doc's qlora markers. */
    static ObjectNode report(String[] args) throws IOException {
        String dir = "bench/out", doc = "docs/QLORA.md", command = "bench/run-qlora.sh";
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--dir" -> dir = args[i + 1];
                case "--doc" -> doc = args[i + 1];
                case "--command" -> command = args[i + 1];
                default -> { }
            }
        }
        Path d = Path.of(dir);
        var codec = read(d.resolve("qlora-codec.json"));
        var tiles = read(d.resolve("qlora-tiles.json"));
        var steps = lines(d.resolve("qlora-step-runs.jsonl"));
        var fit = read(d.resolve("qlora-fit.json"));
        var rows = lines(d.resolve("qlora-variants-runs.jsonl"));
        StringBuilder m = new StringBuilder();
        var mach = codec.get("machine");
        m.append(String.format(Locale.ROOT, "Measured with `%s` on %s (%d cores, %s GiB, Java %s), %s.%n%n", command, mach.get("cpu").asText(),
                mach.get("cores").asInt(), mach.get("memory_gib").asText(), mach.get("java").asText(), java.time.LocalDate.now()));
        m.append("**Bits per base parameter**, on the bytes the engine holds (codes + scales):\n\n");
        m.append("| tensor | elements | bytes held | bits / parameter | formula |\n|---|---:|---:|---:|---|\n");
        for (String k : new String[]{"c_attn", "c_attn_double_quant"}) {
            var o = codec.get(k);
            m.append(String.format(Locale.ROOT, "| GPT-2-small c_attn, %s | %,d | %,d | %.4f | %s = %.4f |%n", k.endsWith("quant") ? "double quantization" : "fp32 absmax",
                    o.get("elements").asLong(), o.get("bytes_held").asLong(), o.get("bits_per_parameter").asDouble(), o.get("formula").asText(), o.get("formula_value").asDouble()));
        }
        var g = codec.get("gpt2_small_base");
        m.append(String.format(Locale.ROOT, "%nA whole GPT-2-small base (%,d parameters): fp32 %s; NF4 %s (%.3f bits per base parameter), NF4 with double quantization %s (%.3f),"
                        + " because its %,d embedding and norm parameters stay fp32; the %,d linear weights take %.4f bits each.%n%n",
                g.get("parameters").asLong(), mib(g.get("fp32_bytes").asDouble()), mib(g.get("nf4").get("bytes_held").asDouble()),
                g.get("nf4").get("bits_per_base_parameter").asDouble(), mib(g.get("nf4+dq").get("bytes_held").asDouble()),
                g.get("nf4+dq").get("bits_per_base_parameter").asDouble(), g.get("parameters").asLong() - g.get("nf4+dq").get("nf4_parameters").asLong(),
                g.get("nf4+dq").get("nf4_parameters").asLong(), g.get("nf4+dq").get("nf4_bits_per_parameter").asDouble()));
        var e = codec.get("error_normal_weights");
        m.append(String.format(Locale.ROOT, "**Quantization error** on %,d N(0, 1) weights, blocks of %d, each scaled by its absmax: NF4 mean squared error"
                        + " %.5f (mean |error| %.4f) against %.5f (%.4f) for a uniform 4-bit grid (16 evenly spaced values on [−1, 1]).%n%n",
                e.get("elements").asLong(), e.get("block").asInt(), e.get("nf4_mse").asDouble(), e.get("nf4_mean_abs").asDouble(),
                e.get("uniform4_mse").asDouble(), e.get("uniform4_mean_abs").asDouble()));
        m.append(String.format(Locale.ROOT, "**The tiled matmul** (one %s layer, %d rows, median of %d; dequantizing the whole layer alone: %.2f ms):%n%n",
                tiles.get("layer").asText(), tiles.get("rows").asInt(), tiles.get("reps").asInt(), tiles.get("dequantize_whole_layer_ms").asDouble()));
        m.append("| weight | tile (elements) | scratch per thread | forward ms | backward to input ms |\n|---|---:|---:|---:|---:|\n");
        for (var t : tiles.get("rows_by_tile")) {
            m.append(String.format(Locale.ROOT, "| %s | %,d | %s | %.1f | %.1f |%n", t.get("weight").asText(), t.get("tile_elements").asLong(),
                    t.has("scratch_bytes") ? mib(t.get("scratch_bytes").asDouble()) : "–", t.get("forward_ms").asDouble(), t.get("backward_input_ms").asDouble()));
        }
        m.append("\n**A training step at the GPT-2-small shape** (LoRA r 8 on c_attn, batch 4 × seq; each row its own JVM; peak RSS over the timed steps):\n\n");
        m.append("| base | seq | base bytes held | AdamW state | peak RSS (timed steps) | median step s |\n|---|---:|---:|---:|---:|---:|\n");
        for (var s : steps) {
            m.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %.2f |%n", s.get("base_quantization").asText(), s.get("seq").asInt(),
                    mib(s.get("base_bytes_held").asDouble()), mib(s.path("training_state_bytes").path("adamw_moments").asDouble()),
                    gib(s.path("peak_rss_timed_steps_gib").asDouble(s.get("peak_rss_gib").asDouble()) * (1L << 30)), s.get("median_step_seconds").asDouble()));
        }
        m.append(String.format(Locale.ROOT, "%nActivation bytes per token, layer and hidden unit, from the slope of peak RSS between the two NF4 sequence lengths: %.1f.%n%n",
                fit.get("activation_bytes_per_token_layer_hidden").asDouble()));
        m.append(String.format(Locale.ROOT, "**Which Llama fits an %.0f GiB executor** for LoRA training (r %d on every linear layer, %d tokens per step): base bytes from the shapes"
                        + " (the formula `baseBytesHeld` is tested against), adapter + AdamW 16 bytes per trainable parameter, activations from the coefficient above, plus the"
                        + " head's chunked logits. JVM and library overhead (a few hundred MiB) is not included.%n%n",
                fit.get("budget_gib").asDouble(), fit.get("lora_rank").asInt(), fit.get("tokens_per_step").asInt()));
        m.append("| model | parameters | base fp32 | base NF4 | step total fp32 | step total NF4 | fits fp32 | fits NF4 |\n|---|---:|---:|---:|---:|---:|:---:|:---:|\n");
        for (var f : fit.get("models")) {
            m.append(String.format(Locale.ROOT, "| %s | %.2f B | %s | %s | %s | %s | %s | %s |%n", f.get("model").asText(), f.get("parameters").asDouble() / 1e9,
                    gib(f.get("base_fp32_bytes").asDouble()), gib(f.get("base_nf4_bytes").asDouble()), gib(f.get("total_fp32_bytes").asDouble()),
                    gib(f.get("total_nf4_bytes").asDouble()), f.get("fits_fp32").asBoolean() ? "yes" : "no", f.get("fits_nf4").asBoolean() ? "yes" : "no"));
        }
        m.append("\n**Validation loss on the demo task** (the SpamAssassin slice on the demo's pretrained base; LoRA r 8 on c_attn, c_proj, c_fc;"
                + " same steps, batch and lr; one row per seed, the seed drawing the adapter's initialisation and the data order):\n\n");
        m.append("| row | base | seed | base bytes held | validation loss | vs LoRA, same seed | label accuracy | peak RSS |\n"
                + "|---|---|---:|---:|---:|---:|---:|---:|\n");
        Map<Long, Double> loraBySeed = new java.util.TreeMap<>();
        Map<String, java.util.List<Double>> byLabel = new java.util.LinkedHashMap<>();
        for (var r : rows) if (r.get("label").asText().equals("lora")) loraBySeed.put(r.path("training").path("seed").asLong(), r.get("validation_loss").asDouble());
        for (var r : rows) {
            double vl = r.get("validation_loss").asDouble();
            long seed = r.path("training").path("seed").asLong();
            Double ref = loraBySeed.get(seed);
            String rel = ref == null || r.get("label").asText().equals("lora") ? "" : String.format(Locale.ROOT, "%+.2f%%", 100 * (vl - ref) / ref);
            byLabel.computeIfAbsent(r.get("label").asText() + " (" + r.get("base_quantization").asText() + ")", k -> new java.util.ArrayList<>()).add(vl);
            // no step times here: these rows are about loss (the GPT-2-small step runs above time the NF4 step)
            m.append(String.format(Locale.ROOT, "| %s | %s | %d | %s | %.4f | %s | %.3f | %s |%n", r.get("label").asText(), r.get("base_quantization").asText(),
                    seed, mib(r.get("base_bytes_held").asDouble()), vl, rel, r.get("accuracy").asDouble(), gib(r.get("peak_rss_bytes").asDouble())));
        }
        m.append("\nMean validation loss over the seeds (min to max):");
        double loraMean = Double.NaN;
        for (var lab : byLabel.entrySet()) {
            double mean = lab.getValue().stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
            if (lab.getKey().startsWith("lora ")) loraMean = mean;
            double lo = lab.getValue().stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN);
            double hi = lab.getValue().stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
            m.append(String.format(Locale.ROOT, " %s %.4f (%.4f to %.4f%s);", lab.getKey(), mean, lo, hi,
                    Double.isNaN(loraMean) || lab.getKey().startsWith("lora ") ? "" : String.format(Locale.ROOT, ", %+.2f%% against LoRA", 100 * (mean - loraMean) / loraMean)));
        }
        m.setLength(m.length() - 1);
        m.append(".\n");
        DocRegion.replace(Path.of(doc), "qlora", m.toString());
        System.out.print(m);
        return JSON.createObjectNode().put("what", "report");
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
