package io.sparklora.bench;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.Generator;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Generation throughput (greedy, tokens/s) of a randomly initialised GPT-2-shaped model: the base, the base with
 * LoRA merged into its weights, and LoRA attached unmerged, each with the KV cache ({@link Generator#greedyBatch})
 * and without ({@link Generator#sampleUncached}, one row after another), at batch 1 and batch B. Not a test: a
 * measurement to run by hand ({@code bench/run-generation.sh}).
 *
 * <p>One model serves all three variants: the adapter (LoRA r on {@code c_attn}, B given random values so its
 * delta is not zero) is switched off for the base, merged for "merged", and active unmerged for "lora". Every
 * repetition runs every (variant, batch, cache) cell once, in that interleaved order, so a neighbour's load on the
 * shared cores spreads over all cells alike; the summary gives each cell's median. A run times the whole call:
 * prefill of the prompts and every new token; tokens/s counts new tokens of all rows.
 */
public final class GenerationBenchmark {
    private GenerationBenchmark() {}

    public static void main(String[] args) throws IOException {
        Map<String, String> a = parse(args);
        int layers = Integer.parseInt(a.getOrDefault("layers", "2"));
        int d = Integer.parseInt(a.getOrDefault("d", "128"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "4"));
        int vocab = Integer.parseInt(a.getOrDefault("vocab", "2048"));
        int ctx = Integer.parseInt(a.getOrDefault("ctx", "1024"));
        int promptLen = Integer.parseInt(a.getOrDefault("prompt", "16"));
        int newTokens = Integer.parseInt(a.getOrDefault("new", "32"));
        int batch = Integer.parseInt(a.getOrDefault("batch", "8"));
        int rank = Integer.parseInt(a.getOrDefault("rank", "8"));
        int reps = Integer.parseInt(a.getOrDefault("reps", "5"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "2"));
        boolean uncached = !a.getOrDefault("uncached", "1").equals("0");
        String label = a.getOrDefault("label", "gen");
        Path out = a.containsKey("out") ? Path.of(a.get("out")) : null;

        ModelConfig config = ModelConfig.gpt2(vocab, d, layers, heads, ctx);
        TransformerLM model = TransformerLM.randomInit(config, 1);
        AttachedAdapter lora = AttachedAdapter.attach(model, "default", AdapterConfig.lora(rank, 2 * rank, List.of("c_attn")), 2);
        var init = Nd4j.getRandomFactory().getNewRandomInstance(3);
        lora.trainableParameters().forEach(p -> p.value().assign(Nd4j.randn(init, p.value().shape()).castTo(p.value().dataType()).muli(0.02)));

        Random r = new Random(4);
        int[][] prompts = new int[batch][promptLen];
        for (int[] p : prompts) for (int i = 0; i < promptLen; i++) p[i] = r.nextInt(vocab);
        int[][] one = {prompts[0]};

        String cpu = cpuModel();
        System.out.printf(Locale.ROOT, "CPU: %s, %d cores; GPT-2 L=%d d=%d H=%d V=%d; prompt %d, %d new tokens, LoRA r=%d on c_attn%n",
                cpu, Runtime.getRuntime().availableProcessors(), layers, d, heads, vocab, promptLen, newTokens, rank);
        String[] variants = {"base", "merged", "lora"};
        int[] batches = batch == 1 ? new int[]{1} : new int[]{1, batch};
        boolean[] caches = uncached ? new boolean[]{true, false} : new boolean[]{true};
        Map<String, List<Double>> samples = new LinkedHashMap<>();
        for (int rep = -warmup; rep < reps; rep++) {
            // rotate the variants' order each repetition, so none always runs first after another's JIT or GC
            for (int vi = 0; vi < variants.length; vi++) {
                String v = variants[(vi + rep + warmup) % variants.length];
                set(lora, model, v);
                for (int b : batches) {
                    int[][] rows = b == 1 ? one : prompts;
                    for (boolean cached : caches) {
                        long t0 = System.nanoTime();
                        int made = 0;
                        if (cached) {
                            for (int[] row : Generator.greedyBatch(model, rows, newTokens, -1)) made += row.length;
                        } else {
                            for (int[] p : rows) made += Generator.sampleUncached(model, p, newTokens, -1, 0, 1, 0).length;
                        }
                        double s = (System.nanoTime() - t0) / 1e9;
                        if (rep < 0) continue;
                        String key = v + " b" + b + (cached ? " cached" : " uncached");
                        samples.computeIfAbsent(key, k -> new ArrayList<>()).add(made / s);
                    }
                }
                unset(lora, model, v);
            }
        }
        StringBuilder json = new StringBuilder();
        json.append(String.format(Locale.ROOT, "{\"label\":\"%s\",\"cpu\":\"%s\",\"layers\":%d,\"d\":%d,\"heads\":%d,\"vocab\":%d,"
                + "\"prompt\":%d,\"new\":%d,\"rank\":%d,\"reps\":%d,\"tokensPerSecond\":{", label, cpu.replace("\"", ""), layers, d, heads,
                vocab, promptLen, newTokens, rank, reps));
        System.out.printf(Locale.ROOT, "%-22s %12s %12s %12s   (tokens/s over %d interleaved repetitions)%n", "cell", "median", "min", "max", reps);
        boolean first = true;
        Map<String, Double> med = new LinkedHashMap<>();
        for (Map.Entry<String, List<Double>> e : samples.entrySet()) {
            List<Double> xs = new ArrayList<>(e.getValue());
            xs.sort(null);
            double m = median(xs);
            med.put(e.getKey(), m);
            System.out.printf(Locale.ROOT, "%-22s %12.1f %12.1f %12.1f%n", e.getKey(), m, xs.get(0), xs.get(xs.size() - 1));
            json.append(first ? "" : ",").append(String.format(Locale.ROOT, "\"%s\":%.2f", e.getKey(), m));
            first = false;
        }
        json.append("},\"ratios\":{");
        first = true;
        for (int b : batches) {
            double base = med.get("base b" + b + " cached");
            double merged = med.get("merged b" + b + " cached"), unmerged = med.get("lora b" + b + " cached");
            // latency ratio = base tokens/s over the variant's: 1.05 means 5% slower
            System.out.printf(Locale.ROOT, "batch %d, cached: merged/base latency %.3f, unmerged LoRA/base latency %.3f%n", b, base / merged, base / unmerged);
            json.append(first ? "" : ",").append(String.format(Locale.ROOT, "\"b%d merged/base\":%.4f,\"b%d lora/base\":%.4f", b, base / merged, b, base / unmerged));
            first = false;
            if (uncached) {
                System.out.printf(Locale.ROOT, "batch %d, base: cached/uncached speed-up %.2f×%n", b, base / med.get("base b" + b + " uncached"));
                json.append(String.format(Locale.ROOT, ",\"b%d cache speed-up\":%.3f", b, base / med.get("base b" + b + " uncached")));
            }
        }
        json.append("}}");
        System.out.println(json);
        if (out != null) {
            Files.createDirectories(out.toAbsolutePath().getParent());
            Files.writeString(out, json + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
    }

    private static void set(AttachedAdapter lora, TransformerLM model, String variant) {
        switch (variant) {
            case "base" -> { for (Linear l : model.allLinears()) l.setActive(List.of()); }
            case "merged" -> { lora.activate(); lora.merge(); }
            default -> lora.activate();
        }
    }

    private static void unset(AttachedAdapter lora, TransformerLM model, String variant) {
        if (variant.equals("merged")) lora.unmerge();
    }

    private static double median(List<Double> sorted) {
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) return line.substring(line.indexOf(':') + 1).trim();
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: fall through
        }
        return System.getProperty("os.arch");
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("expected --name value, got " + args[i]);
            m.put(args[i].substring(2), args[++i]);
        }
        return m;
    }
}
