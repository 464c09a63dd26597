package io.sparklora.train;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.rng.Random;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Several adapters trained at once over one frozen base (the mLoRA idea): each step's batch holds sequences of every
 * adapter still training, the base runs forward and backward once for all of them, and each adapter gets the
 * gradient of its own sequences only ({@link TransformerLM#forwardBackwardMixed}). Everything else is per adapter:
 * its method and rank, its data and data order, its {@link Trainer} (AdamW over its groups, schedule, clipping,
 * hooks, dropout stream), its step count and its outcome.
 *
 * <p>Each adapter follows exactly the run it would have trained alone with the same seed and options: the same
 * batches in the same order, the same dropout masks, the same updates, to fp32 rounding of the shared matmuls.
 *
 * <p>A job that cannot train fails alone: a bad config, empty data, token ids outside the vocabulary, a block length
 * the other jobs do not share, an error while drawing its batch, or a non-finite loss. Its adapter is detached and its
 * outcome says why; the others finish.
 *
 * <p>Adapters that change a base tensor (trained biases, trainable token rows) cannot share the base and are
 * refused: their change would reach every row of the batch.
 */
public final class MultiAdapterTrainer {

    /** One adapter to train: its name (also its directory name), method config, options and training blocks. */
    public record Job(String name, AdapterConfig config, TrainingOptions options, TokenBlocks data) {
        public Job {
            checkName(name);
        }

        /** A job's name names its output directory: letters, digits, '_', '.', '-', starting with a letter or digit. */
        public static void checkName(String name) {
            if (name == null || !name.matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")) {
                throw new IllegalArgumentException("adapter job name '" + name + "': use letters, digits, '_', '.' or '-' (it names a directory)");
            }
            if (name.equals(TransformerLM.BASE_ONLY)) throw new IllegalArgumentException("adapter job name " + name + " is reserved");
        }
    }

    /** How one job ended: its adapter (attached, trained) and step figures, or the reason it failed. */
    public record Outcome(String name, AttachedAdapter adapter, List<Trainer.StepStats> steps, String error) {
        public boolean succeeded() { return error == null; }

        /** The last step's loss (NaN before any step). */
        public double finalLoss() { return steps.isEmpty() ? Double.NaN : steps.get(steps.size() - 1).loss(); }
    }

    /** Called after each adapter's optimizer step. */
    public interface StepListener {
        void onStep(String adapter, Trainer.StepStats stats);
    }

    private final TransformerLM model;
    private final List<Job> jobs;

    /** @param model the shared base, with no adapter of the jobs' names attached yet */
    public MultiAdapterTrainer(TransformerLM model, List<Job> jobs) {
        if (jobs.isEmpty()) throw new IllegalArgumentException("no adapter jobs to train");
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Job j : jobs) if (!names.add(j.name())) throw new IllegalArgumentException("two adapter jobs are named '" + j.name() + "'");
        this.model = model;
        this.jobs = List.copyOf(jobs);
    }

    private static final class Running {
        final Job job;
        final AttachedAdapter adapter;
        final Trainer trainer;
        final BatchOrder order;
        final List<Trainer.StepStats> steps = new ArrayList<>();

        Running(Job job, AttachedAdapter adapter) {
            this.job = job;
            this.adapter = adapter;
            this.trainer = Trainer.forAdapter(adapter, job.options());
            this.order = new BatchOrder(job.data().size(), job.options().seed());
        }

        boolean stepping() { return trainer.stepsTaken() < job.options().steps(); }
    }

    /**
     * Trains every job to its step count; returns each job's outcome in the jobs' order. On return the model holds
     * every trained adapter, attached and active (a plain forward would apply all of them to every row): run one with
     * {@code Linear.setActive}, several in one batch with a mixed-adapter context, or save each
     * ({@code PeftAdapterFormat.save(outcome.adapter(), ...)}). Adapters already attached to the model are deactivated.
     */
    public Map<String, Outcome> train(StepListener listener) {
        Map<String, String> failed = new LinkedHashMap<>();
        Map<String, Running> running = new LinkedHashMap<>();
        int seqLen = -1;
        for (Job j : jobs) {
            try {
                checkData(j, model.config().vocabSize());
                if (seqLen >= 0 && j.data().seqLen() != seqLen) {
                    throw new IllegalArgumentException("its blocks hold " + j.data().seqLen() + " tokens, the other jobs' " + seqLen
                            + " (one batch needs one block length)");
                }
                if (!AttachedAdapter.trainedBaseTensors(model.config(), j.config()).isEmpty() || j.config().trainableTokenIndices().length > 0) {
                    throw new IllegalArgumentException("it trains base tensors (bias: " + j.config().bias() + ", trainable tokens: "
                            + j.config().trainableTokenIndices().length + "), which every adapter sharing the base would see;"
                            + " train it alone");
                }
                running.put(j.name(), new Running(j, AttachedAdapter.attach(model, j.name(), j.config(), j.options().seed())));
                seqLen = j.data().seqLen();
            } catch (RuntimeException e) {
                failed.put(j.name(), "adapter '" + j.name() + "': " + e.getMessage());
            }
        }
        for (Linear l : model.allLinears()) l.setActive(new ArrayList<>(running.keySet()));

        while (running.values().stream().anyMatch(Running::stepping)) {
            List<Running> active = running.values().stream().filter(Running::stepping).toList();
            List<Member> members = active.stream().map(r -> new Member(r.job.name(), r.trainer, r.job.data(), r.order)).toList();
            Map<String, Trainer.StepStats> stats = stepTogether(model, members, failed);
            for (Running r : active) {
                Trainer.StepStats s = stats.get(r.job.name());
                if (s == null) continue;
                r.steps.add(s);
                if (!Double.isFinite(s.loss())) {
                    failed.put(r.job.name(), "adapter '" + r.job.name() + "': step " + s.step() + ": the loss is " + s.loss()
                            + "; its adapter keeps the values of the last finite step. Lower its lr or max_grad_norm, or look for corrupt input in its data");
                    continue;
                }
                if (listener != null) listener.onStep(r.job.name(), s);
            }
            for (String name : failed.keySet()) {
                Running r = running.remove(name);
                if (r != null) r.adapter.detach();
            }
        }
        Map<String, Outcome> out = new LinkedHashMap<>();
        for (Job j : jobs) {
            Running r = running.get(j.name());
            out.put(j.name(), r != null ? new Outcome(j.name(), r.adapter, Collections.unmodifiableList(r.steps), null)
                    : new Outcome(j.name(), null, List.of(), failed.get(j.name())));
        }
        return out;
    }

    /** One adapter taking part in a shared step: its trainer (optimizer, schedule, hooks, dropout stream), data and order. */
    public record Member(String name, Trainer trainer, TokenBlocks data, BatchOrder order) {}

    /**
     * One optimizer step of every member, their micro-batches sharing each batch: {@link Trainer#begin}, then for
     * micro-batch m a batch of the sequences of every member with more than m micro-batches per step (each member's
     * one run of consecutive sequences, drawn from its own order, with its own dropout stream and its gradients
     * scaled by its 1/accumulation), one forward and backward, then {@link Trainer#finish}. A member whose batch
     * cannot be drawn goes into {@code failed} (name → reason) and gets no step. This is the one shared step of the
     * one-process trainer above and of a Spark task's round ({@link RoundWork#runTogether}).
     *
     * @return each member's step figures, in the members' order (failed members absent)
     */
    public static Map<String, Trainer.StepStats> stepTogether(TransformerLM model, List<Member> members, Map<String, String> failed) {
        Map<String, StepSums> sums = new LinkedHashMap<>();
        int micro = 0;
        for (Member mb : members) {
            sums.put(mb.name(), new StepSums(mb.trainer().begin()));
            micro = Math.max(micro, mb.trainer().options().gradAccumulation());
        }
        for (int m = 0; m < micro; m++) {
            MixedBatch mixed = new MixedBatch();
            Map<String, Random> streams = new LinkedHashMap<>();
            Map<String, Double> scale = new HashMap<>();
            for (Member mb : members) {
                TrainingOptions o = mb.trainer().options();
                if (m >= o.gradAccumulation() || failed.containsKey(mb.name())) continue;
                int[] idx;
                try {
                    idx = mb.order().next(o.batchSize());
                } catch (RuntimeException e) {
                    failed.put(mb.name(), "adapter '" + mb.name() + "': step " + (sums.get(mb.name()).index + 1) + ": " + e.getMessage());
                    continue;
                }
                mixed.add(mb.name(), mb.data(), idx);
                streams.put(mb.name(), mb.trainer().dropoutStream());
                scale.put(mb.name(), 1.0 / o.gradAccumulation());
            }
            if (mixed.isEmpty()) continue;
            TokenBatch batch = mixed.batch();
            Map<String, CrossEntropyLoss.Result> losses = model.forwardBackwardMixed(batch, mixed.context(streams), scale);
            for (Member mb : members) {
                CrossEntropyLoss.Result r = losses.get(mb.name());
                if (r == null) continue;
                StepSums sum = sums.get(mb.name());
                sum.meanLosses += r.meanLoss();
                sum.tokens += (long) mb.trainer().options().batchSize() * batch.seq();
                sum.targets += r.count();
            }
        }
        Map<String, Trainer.StepStats> out = new LinkedHashMap<>();
        for (Member mb : members) {
            if (failed.containsKey(mb.name())) {
                mb.trainer().optimizer().zeroGrad();
                continue;
            }
            StepSums sum = sums.get(mb.name());
            out.put(mb.name(), mb.trainer().finish(sum.index, sum.meanLosses, sum.tokens, sum.targets));
        }
        return out;
    }

    /** What one member's micro-batches of a shared step add up to, for {@link Trainer#finish}. */
    private static final class StepSums {
        final long index;
        double meanLosses;
        long tokens, targets;

        StepSums(long index) { this.index = index; }
    }

    /** Non-empty data whose every token id is inside the vocabulary; the error names the first bad block. */
    static void checkData(Job j, int vocab) {
        if (j.data().size() == 0) throw new IllegalArgumentException("its training data holds no blocks");
        checkTokens(j.data(), vocab);
    }

    /** Every token id of {@code d} is inside a vocabulary of {@code vocab}; otherwise an error naming the first bad block and position. */
    public static void checkTokens(TokenBlocks d, int vocab) {
        for (int b = 0; b < d.size(); b++) {
            int[] block = d.block(b);
            for (int t = 0; t < block.length; t++) {
                if (block[t] < 0 || block[t] >= vocab) {
                    throw new IllegalArgumentException("block " + b + ", position " + t + ": token id " + block[t]
                            + " is outside the model's vocabulary of " + vocab + " (was the data tokenized for another model?)");
                }
            }
        }
    }
}
