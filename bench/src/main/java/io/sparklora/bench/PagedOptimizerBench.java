package io.sparklora.bench;

import io.sparklora.model.Parameter;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.ParamGroup;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Process memory of AdamW state held in memory ({@link AdamW.StateStorage#MEMORY}) against memory-mapped
 * files ({@link AdamW.StateStorage#MAPPED}); one mode per JVM, so peaks do not mix. See docs/paged-optimizer.md
 * and bench/run-paged-optimizer.sh.
 *
 * <p>Parameter sets (float32, random values and gradients):
 * <ul>
 *   <li>{@code lora-gpt2-r16}: LoRA r = 16 on every linear layer of GPT-2 small's 12 blocks (c_attn 768→2304,
 *       attn c_proj 768→768, c_fc 768→3072, mlp c_proj 3072→768), A (r×in) and B (out×r): 2,359,296 parameters;</li>
 *   <li>{@code full-200m}: 48 tensors of 2048×2048, 201,326,592 parameters: full fine-tuning scale.</li>
 * </ul>
 *
 * <p>Reported at each point: VmRSS, VmHWM (peak RSS), RssAnon, RssFile from /proc/self/status, and JavaCPP's
 * {@link Pointer#totalBytes()} and {@link Pointer#physicalBytes()}. Points: parameters and gradients only;
 * after the first step (state allocated); after the last step; after {@link AdamW#pageOutState()}; after one
 * more step (state paged back in); after {@link AdamW#close()}.
 *
 * <p>Usage: {@code PagedOptimizerBench --mode MEMORY|MAPPED --set lora-gpt2-r16|full-200m [--steps 3]
 * [--dir /tmp/spill] [--out file.jsonl]}.
 */
public final class PagedOptimizerBench {
    private PagedOptimizerBench() {}

    public static void main(String[] args) throws IOException {
        Map<String, String> a = BenchArgs.parse(args);
        AdamW.StateStorage mode = AdamW.StateStorage.valueOf(a.getOrDefault("mode", "MEMORY"));
        String set = a.getOrDefault("set", "lora-gpt2-r16");
        int steps = Integer.parseInt(a.getOrDefault("steps", "3"));
        Path dir = Path.of(a.getOrDefault("dir", System.getProperty("java.io.tmpdir")));
        String out = a.get("out");
        String cpu = cpuModel();

        List<long[]> shapes = shapes(set);
        long count = 0;
        for (long[] s : shapes) count += s[0] * s[1];
        System.out.printf(Locale.ROOT, "CPU: %s; set %s: %,d parameters in %d tensors (float32); mode %s; %d steps%n",
                cpu, set, count, shapes.size(), mode, steps);

        Nd4j.getRandom().setSeed(1);
        List<Parameter> params = new ArrayList<>();
        Map<String, INDArray> gradTemplates = new HashMap<>();
        for (int i = 0; i < shapes.size(); i++) {
            long[] s = shapes.get(i);
            Parameter p = new Parameter("p" + i, Nd4j.randn(DataType.FLOAT, s).muli(0.02), true, "x");
            // One random gradient per distinct shape, assigned into every gradient buffer of that shape.
            INDArray g = gradTemplates.computeIfAbsent(s[0] + "x" + s[1], k -> Nd4j.randn(DataType.FLOAT, s).muli(1e-3));
            p.grad().assign(g);
            params.add(p);
        }
        gradTemplates.clear();
        settle();

        Map<String, Map<String, Long>> points = new LinkedHashMap<>();
        Map<String, Double> seconds = new LinkedHashMap<>();
        points.put("params_and_grads", sample());
        AdamW opt = mode == AdamW.StateStorage.MAPPED
                ? new AdamW(List.of(ParamGroup.withLrMultiplier("all", params, 1.0, 0.01)), 1e-4,
                        AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS, mode, dir)
                : new AdamW(List.of(ParamGroup.withLrMultiplier("all", params, 1.0, 0.01)), 1e-4);
        long t0 = System.nanoTime();
        opt.step();
        seconds.put("first_step", (System.nanoTime() - t0) / 1e9);
        points.put("after_first_step", sample());
        t0 = System.nanoTime();
        for (int s = 1; s < steps; s++) opt.step();
        seconds.put("later_steps_mean", steps > 1 ? (System.nanoTime() - t0) / 1e9 / (steps - 1) : 0.0);
        points.put("after_steps", sample());
        long stateBytes = opt.stateBytes(), scratchBytes = opt.scratchBytes();
        t0 = System.nanoTime();
        long pagedOut = opt.pageOutState();
        seconds.put("page_out", (System.nanoTime() - t0) / 1e9);
        points.put("after_page_out", sample());
        t0 = System.nanoTime();
        opt.step();
        seconds.put("step_after_page_out", (System.nanoTime() - t0) / 1e9);
        points.put("after_step_after_page_out", sample());
        opt.close();
        settle();
        points.put("after_close", sample());

        System.out.printf(Locale.ROOT, "state %,d bytes, scratch %,d bytes, paged out %,d bytes%n", stateBytes, scratchBytes, pagedOut);
        System.out.printf(Locale.ROOT, "%-27s %10s %10s %10s %10s %12s %12s%n", "point (MiB)", "VmRSS", "VmHWM",
                "RssAnon", "RssFile", "jcpp.total", "jcpp.phys");
        for (Map.Entry<String, Map<String, Long>> e : points.entrySet()) {
            Map<String, Long> m = e.getValue();
            System.out.printf(Locale.ROOT, "%-27s %10.1f %10.1f %10.1f %10.1f %12.1f %12.1f%n", e.getKey(),
                    mib(m.get("VmRSS")), mib(m.get("VmHWM")), mib(m.get("RssAnon")), mib(m.get("RssFile")),
                    mib(m.get("javacpp_total")), mib(m.get("javacpp_physical")));
        }
        seconds.forEach((k, v) -> System.out.printf(Locale.ROOT, "%s: %.3f s%n", k, v));

        if (out != null) {
            StringBuilder sb = new StringBuilder("{");
            sb.append("\"cpu\":\"").append(cpu.replace("\"", "'")).append("\",\"set\":\"").append(set)
                    .append("\",\"parameters\":").append(count).append(",\"mode\":\"").append(mode)
                    .append("\",\"steps\":").append(steps).append(",\"state_bytes\":").append(stateBytes)
                    .append(",\"scratch_bytes\":").append(scratchBytes).append(",\"paged_out_bytes\":").append(pagedOut)
                    .append(",\"seconds\":{");
            seconds.forEach((k, v) -> sb.append('"').append(k).append("\":").append(String.format(Locale.ROOT, "%.4f", v)).append(','));
            sb.setLength(sb.length() - 1);
            sb.append("},\"points\":{");
            points.forEach((k, m) -> {
                sb.append('"').append(k).append("\":{");
                m.forEach((kk, v) -> sb.append('"').append(kk).append("\":").append(v).append(','));
                sb.setLength(sb.length() - 1);
                sb.append("},");
            });
            sb.setLength(sb.length() - 1);
            sb.append("}}\n");
            Files.writeString(Path.of(out), sb.toString(), StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
    }

    /** A collection, and time for ND4J's deallocator thread to free what it released. */
    private static void settle() {
        System.gc();
        try {
            Thread.sleep(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The parameter shapes of a set. */
    static List<long[]> shapes(String set) {
        List<long[]> shapes = new ArrayList<>();
        switch (set) {
            case "lora-gpt2-r16": {
                int r = 16, d = 768;
                long[][] linears = {{d, 3 * d}, {d, d}, {d, 4 * d}, {4 * d, d}}; // in, out
                for (int layer = 0; layer < 12; layer++) {
                    for (long[] io : linears) {
                        shapes.add(new long[]{r, io[0]});   // lora_A: r × in
                        shapes.add(new long[]{io[1], r});   // lora_B: out × r
                    }
                }
                return shapes;
            }
            case "full-200m":
                for (int i = 0; i < 48; i++) shapes.add(new long[]{2048, 2048});
                return shapes;
            default:
                throw new IllegalArgumentException("unknown set " + set + " (lora-gpt2-r16 or full-200m)");
        }
    }

    /** Memory figures now, in bytes. */
    static Map<String, Long> sample() {
        Map<String, Long> m = new LinkedHashMap<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                for (String key : new String[]{"VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"}) {
                    if (line.startsWith(key + ":")) {
                        m.put(key, Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024);
                    }
                }
            }
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        m.put("javacpp_total", Pointer.totalBytes());
        m.put("javacpp_physical", Pointer.physicalBytes());
        return m;
    }

    private static double mib(Long bytes) {
        return bytes == null ? Double.NaN : bytes / (1024.0 * 1024.0);
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim() + ", " + Runtime.getRuntime().availableProcessors() + " cores";
                }
            }
        } catch (IOException ignored) {
            // fall through
        }
        return "unknown CPU";
    }
}
