package io.sparklora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.Generator;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Serving several adapters on one base: greedy generation for A adapters × R rows each, as
 * <ul>
 *   <li>{@code mixed}: one batch of A·R rows, each routed to its adapter, unmerged ({@link Generator#sampleBatch} with
 *       adapter names: the base matmuls run once for all rows);</li>
 *   <li>{@code one_at_a_time}: A batches of R rows, one adapter active (unmerged) per batch;</li>
 *   <li>{@code merged_one_at_a_time}: A batches of R rows, each adapter merged into the weights for its batch and
 *       unmerged after it (the merge and unmerge are timed: they are what switching costs);</li>
 *   <li>{@code base}: one batch of A·R rows with no adapter, for reference.</li>
 * </ul>
 * A randomly initialised GPT-2-shaped model with LoRA r on {@code c_attn} (B random, so every adapter changes the
 * output). Every repetition runs every cell once, interleaved; the summary gives medians. tokens/s counts the new tokens
 * of all rows; a cell times prefill and every new token.
 *
 * <pre>java ... MixedAdapterBenchmark [--layers 2 --d 128 --heads 4 --vocab 2048 --ctx 1024 --adapters 4 --rows 2
 *     --prompt 16 --new 32 --rank 8 --reps 5 --warmup 1 --out bench/out/mixed-adapters.json]</pre>
 */
public final class MixedAdapterBenchmark {
    private MixedAdapterBenchmark() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = BenchArgs.parse(args);
        int layers = Integer.parseInt(a.getOrDefault("layers", "2")), d = Integer.parseInt(a.getOrDefault("d", "128"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "4")), vocab = Integer.parseInt(a.getOrDefault("vocab", "2048"));
        int ctx = Integer.parseInt(a.getOrDefault("ctx", "1024"));
        int adapters = Integer.parseInt(a.getOrDefault("adapters", "4")), rows = Integer.parseInt(a.getOrDefault("rows", "2"));
        int promptLen = Integer.parseInt(a.getOrDefault("prompt", "16")), newTokens = Integer.parseInt(a.getOrDefault("new", "32"));
        int rank = Integer.parseInt(a.getOrDefault("rank", "8"));
        int reps = Integer.parseInt(a.getOrDefault("reps", "5")), warmup = Integer.parseInt(a.getOrDefault("warmup", "1"));

        TransformerLM model = TransformerLM.randomInit(ModelConfig.gpt2(vocab, d, layers, heads, ctx), 1);
        List<AttachedAdapter> attached = new ArrayList<>();
        String[] names = new String[adapters];
        var init = Nd4j.getRandomFactory().getNewRandomInstance(3);
        for (int i = 0; i < adapters; i++) {
            names[i] = "a" + i;
            AttachedAdapter ad = AttachedAdapter.attach(model, names[i], AdapterConfig.lora(rank, 2 * rank, List.of("c_attn")), 10 + i);
            ad.trainableParameters().forEach(p -> p.value().assign(Nd4j.randn(init, p.value().shape()).castTo(p.value().dataType()).muli(0.02)));
            attached.add(ad);
        }
        Random r = new Random(4);
        int n = adapters * rows;
        int[][] prompts = new int[n][promptLen];
        String[] route = new String[n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < promptLen; j++) prompts[i][j] = r.nextInt(vocab);
            route[i] = names[i % adapters];                 // interleaved: the worst case for the row views (runs of one sequence)
        }
        long[] seeds = new long[n];
        long tokens = (long) n * newTokens;

        Map<String, List<Double>> seconds = new LinkedHashMap<>();
        for (String cell : List.of("mixed", "one_at_a_time", "merged_one_at_a_time", "base")) seconds.put(cell, new ArrayList<>());
        int[][] check = null;
        for (int rep = 0; rep < warmup + reps; rep++) {
            for (String cell : seconds.keySet()) {
                long t0 = System.nanoTime();
                int[][] out;
                switch (cell) {
                    case "mixed" -> out = Generator.sampleBatch(model, prompts, route, newTokens, -1, 0, 1, seeds);
                    case "base" -> {
                        active(model, List.of());
                        out = Generator.greedyBatch(model, prompts, newTokens, -1);
                        active(model, Arrays.asList(names));
                    }
                    default -> {
                        out = new int[n][];
                        boolean merge = cell.startsWith("merged");
                        for (int k = 0; k < adapters; k++) {
                            int[][] mine = new int[rows][];
                            for (int j = 0; j < rows; j++) mine[j] = prompts[j * adapters + k];
                            if (merge) { active(model, List.of()); attached.get(k).merge(); }
                            else active(model, List.of(names[k]));
                            int[][] got = Generator.greedyBatch(model, mine, newTokens, -1);
                            if (merge) attached.get(k).unmerge();
                            for (int j = 0; j < rows; j++) out[j * adapters + k] = got[j];
                        }
                        active(model, Arrays.asList(names));
                    }
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (rep >= warmup) seconds.get(cell).add(s);
                if (cell.equals("mixed")) check = out;
                if (cell.equals("one_at_a_time") && check != null && !Arrays.deepEquals(check, out)) {
                    throw new IllegalStateException("the mixed batch generated other tokens than one adapter at a time");
                }
            }
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode report = json.createObjectNode();
        report.put("cpu", SyncModesBenchmark.cpuModel()).put("shape", "gpt2 L=" + layers + " d=" + d + " heads=" + heads + " vocab=" + vocab)
                .put("adapters", adapters).put("rows_per_adapter", rows).put("prompt", promptLen).put("new_tokens", newTokens).put("rank", rank)
                .put("reps", reps);
        ObjectNode cells = report.putObject("tokens_per_second_median");
        for (var e : seconds.entrySet()) {
            double[] s = e.getValue().stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double med = s[s.length / 2];
            cells.put(e.getKey(), tokens / med);
            System.out.printf(Locale.ROOT, "%-22s %8.1f tokens/s  (median of %d: %.3f s; all %s)%n", e.getKey(), tokens / med, s.length, med,
                    Arrays.toString(Arrays.stream(s).map(x -> Math.round(x * 1000) / 1000.0).toArray()));
        }
        Path out = Path.of(a.getOrDefault("out", "bench/out/mixed-adapters.json"));
        Files.createDirectories(out.toAbsolutePath().getParent());
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        Files.writeString(tmp, json.writerWithDefaultPrettyPrinter().writeValueAsString(report));
        Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        System.out.println("wrote " + out);
    }

    private static void active(TransformerLM model, List<String> names) {
        for (Linear l : model.allLinears()) l.setActive(names);
    }
}
