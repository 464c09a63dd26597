package io.sparklora.bench;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.BatchOrder;
import io.sparklora.train.MultiAdapterTrainer;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Several adapters trained together over one base against the same adapters trained one after another, side by side
 * in one JVM over one base model (random weights, random tokens): for each N, (a) N separate runs, each its warm-up
 * steps untimed, then its timed steps; (b) one {@link MultiAdapterTrainer} run of the N jobs, whose every step batches
 * all N adapters' sequences. The same jobs (method, rank, data, seed) in both. Prints one JSON line per N: tokens/s of
 * both and their ratio. The separate runs here share the JVM and its loaded base; real separate jobs would also each
 * start a JVM and load the base, which this leaves out.
 *
 * <p>Options: --layers 12 --d 768 --heads 12 --vocab 50257 --seq 256 --batch 2 (sequences per adapter per step)
 * --steps 3 --warmup 2 --ns 1,2,4,8 --rank 8 --targets c_attn
 */
public final class MultiAdapterTrainBenchmark {
    private MultiAdapterTrainBenchmark() {}

    static TokenBlocks randomBlocks(int n, int seq, int vocab, long seed) {
        java.util.Random r = new java.util.Random(seed);
        TokenBlocks b = new TokenBlocks(seq);
        for (int i = 0; i < n; i++) {
            int[] t = new int[seq + 1];
            boolean[] m = new boolean[seq + 1];
            for (int j = 0; j <= seq; j++) {
                t[j] = r.nextInt(vocab);
                m[j] = true;
            }
            b.add(t, m);
        }
        return b;
    }

    public static void main(String[] args) {
        Map<String, String> a = BenchArgs.parse(args);
        int layers = Integer.parseInt(a.getOrDefault("layers", "12")), d = Integer.parseInt(a.getOrDefault("d", "768"));
        int heads = Integer.parseInt(a.getOrDefault("heads", "12")), vocab = Integer.parseInt(a.getOrDefault("vocab", "50257"));
        int seq = Integer.parseInt(a.getOrDefault("seq", "256")), batch = Integer.parseInt(a.getOrDefault("batch", "2"));
        int steps = Integer.parseInt(a.getOrDefault("steps", "3")), warmup = Integer.parseInt(a.getOrDefault("warmup", "2"));
        int rank = Integer.parseInt(a.getOrDefault("rank", "8"));
        List<String> targets = List.of(a.getOrDefault("targets", "c_attn").split(","));
        ModelConfig cfg = ModelConfig.gpt2(vocab, d, layers, heads, Math.max(seq, 128));
        TransformerLM model = TransformerLM.randomInit(cfg, 1);
        for (String nText : a.getOrDefault("ns", "1,2,4,8").split(",")) {
            int n = Integer.parseInt(nText.trim());
            List<MultiAdapterTrainer.Job> jobs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                TrainingOptions o = TrainingOptions.defaults(warmup + steps).withBatch(batch, 1).withLr(1e-3).withWarmup(0, "constant").withSeed(100 + i);
                jobs.add(new MultiAdapterTrainer.Job("a" + i, AdapterConfig.lora(rank, 2 * rank, targets), o,
                        randomBlocks(batch * (warmup + steps), seq, vocab, 1000 + i)));
            }
            // (a) one after another
            double separateSeconds = 0;
            for (MultiAdapterTrainer.Job j : jobs) {
                AttachedAdapter ad = AttachedAdapter.attach(model, j.name(), j.config(), j.options().seed());
                Trainer t = Trainer.forAdapter(ad, j.options());
                BatchOrder order = new BatchOrder(j.data().size(), j.options().seed());
                for (int s = 0; s < warmup; s++) t.step(j.data(), order);
                long t0 = System.nanoTime();
                for (int s = 0; s < steps; s++) t.step(j.data(), order);
                separateSeconds += (System.nanoTime() - t0) / 1e9;
                ad.detach();
            }
            // (b) together: the clock starts when the last adapter ends its last warm-up step
            long[] start = {0};
            String last = jobs.get(n - 1).name();
            long t0 = System.nanoTime();
            Map<String, MultiAdapterTrainer.Outcome> out = new MultiAdapterTrainer(model, jobs).train((name, s) -> {
                if (name.equals(last) && s.step() == warmup) start[0] = System.nanoTime();
            });
            double togetherSeconds = (System.nanoTime() - (warmup == 0 ? t0 : start[0])) / 1e9;
            for (MultiAdapterTrainer.Outcome o : out.values()) {
                if (!o.succeeded()) throw new IllegalStateException(o.error());
                o.adapter().detach();
            }
            long tokens = (long) n * steps * batch * seq;
            System.out.printf(Locale.ROOT, "{\"model\":\"gpt2 L=%d d=%d V=%d\",\"adapters\":%d,\"batch_per_adapter\":%d,\"seq\":%d,\"timed_steps\":%d,"
                            + "\"separate_tokens_per_s\":%.1f,\"together_tokens_per_s\":%.1f,\"together_over_separate\":%.3f,\"cpu\":\"%s\"}%n",
                    layers, d, vocab, n, batch, seq, steps, tokens / separateSeconds, tokens / togetherSeconds, separateSeconds / togetherSeconds,
                    DistributedRoundBenchmark.cpuModel());
        }
    }
}
