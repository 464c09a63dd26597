package io.sparklora.train;

import io.sparklora.checkpoint.BaseModelRef;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.privacy.DpSpec;
import io.sparklora.train.TrainingOptions;

import java.io.Serializable;
import java.util.Map;

/**
 * Everything a distributed adapter-training run needs besides its data.
 *
 * @param base                  the frozen base checkpoint (by reference: never broadcast)
 * @param adapter               the adapter to train (method, rank, targets, ...)
 * @param shareGroups           module → group name for adapters that share one set of tensors (LoRA-drop);
 *                              empty: every module has its own
 * @param rounds                synchronisation rounds
 * @param localSteps            optimizer steps each task takes per round (K)
 * @param sync                  {@code gradients}: K must be 1; tasks return gradients, the driver averages them
 *                              (weighted by target tokens) and steps its optimizer, which equals one-process
 *                              training on the union of the batches. {@code parameters}: tasks take K local
 *                              steps and return adapter tensors, which the driver averages weighted by
 *                              target tokens
 * @param averageOptimizerState with {@code parameters}: broadcast and average AdamW's moments too (3x the
 *                              bytes); otherwise every round starts from fresh moments
 * @param options               batch size per task, accumulation, lr, schedule over rounds·K steps, clipping, seed
 * @param sampleFraction        fraction of each shard used (LoRA-drop's brief warm-up on a subset); 1 = all
 * @param checkpointEvery       checkpoint every N rounds (0: never)
 * @param outputUri             where checkpoints and the final adapter go (any Hadoop URI)
 * @param dp                    differentially private training ({@link DpSpec#OFF}: none)
 * @param outer                 with {@code parameters}: the driver's outer step on the averaged change (DiLoCo's Nesterov
 *                              momentum, {@link OuterOptimizer}); {@link OuterOptimizer.Spec#NONE}: plain averaging
 * @param aggregate             with {@code parameters}: how the workers' adapters combine ({@link ExactAggregation}):
 *                              {@code mean}, {@code frozen_a}, {@code svd} or {@code stack}
 */
public record TrainSpec(BaseModelRef base, AdapterConfig adapter, Map<String, String> shareGroups, int rounds, int localSteps,
                        String sync, boolean averageOptimizerState, TrainingOptions options, double sampleFraction,
                        int checkpointEvery, String outputUri, DpSpec dp, OuterOptimizer.Spec outer, String aggregate) implements Serializable {
    public static final String ADAPTER_NAME = "default";

    public TrainSpec {
        if (rounds <= 0) throw new IllegalArgumentException("train.rounds must be positive, got " + rounds);
        if (localSteps <= 0) throw new IllegalArgumentException("train.local_steps must be positive, got " + localSteps);
        if (!sync.equals("gradients") && !sync.equals("parameters")) {
            throw new IllegalArgumentException("train.sync must be 'gradients' or 'parameters', got '" + sync + "'");
        }
        if (sync.equals("gradients") && localSteps != 1) {
            throw new IllegalArgumentException("train.sync: gradients averages one step's gradients, so train.local_steps must be 1 (got "
                    + localSteps + "); use sync: parameters for K local steps");
        }
        if (!(sampleFraction > 0 && sampleFraction <= 1)) throw new IllegalArgumentException("sample fraction must be in (0, 1], got " + sampleFraction);
        shareGroups = Map.copyOf(shareGroups);
        if (dp == null) dp = DpSpec.OFF;
        if (dp.exampleLevel() && !sync.equals("gradients")) {
            throw new IllegalArgumentException("train.dp.mode: example (DP-SGD) clips each example's gradient, so it needs train.sync: gradients");
        }
        if (dp.clientLevel() && !sync.equals("parameters")) {
            throw new IllegalArgumentException("train.dp.mode: client (DP-FedAvg) clips each client's round update, so it needs train.sync: parameters");
        }
        if (dp.on() && !adapter.bias().equals("none")) {
            throw new IllegalArgumentException("train.dp: trained biases are not clipped per example; use adapter.bias: none");
        }
        if (dp.on() && adapter.trainableTokenIndices().length > 0) {
            throw new IllegalArgumentException("train.dp: trainable token rows are not clipped per example; leave " + AdapterConfig.TRAINABLE_TOKENS + " empty");
        }
        if (outer == null) outer = OuterOptimizer.Spec.NONE;
        checkOuter(outer, sync);
        if (aggregate == null) aggregate = "mean";
        checkAggregate(aggregate, sync, adapter, averageOptimizerState, outer, dp);
        if (aggregate.equals("stack") && base != null && base.quantization().nf4()) {
            throw new IllegalArgumentException("train.aggregate: stack merges into a private full-precision copy of the targeted weights,"
                    + " which an NF4 base (base.quantization: nf4) would lose its memory saving to; use train.aggregate: svd or mean");
        }
        if (dp.on() && averageOptimizerState) {
            throw new IllegalArgumentException("train.dp: averaging optimizer state would send unclipped, un-noised moments; set average_optimizer_state: false");
        }
    }

    /** A run with plain averaging (no outer optimizer). */
    public TrainSpec(BaseModelRef base, AdapterConfig adapter, Map<String, String> shareGroups, int rounds, int localSteps,
                     String sync, boolean averageOptimizerState, TrainingOptions options, double sampleFraction,
                     int checkpointEvery, String outputUri, DpSpec dp) {
        this(base, adapter, shareGroups, rounds, localSteps, sync, averageOptimizerState, options, sampleFraction, checkpointEvery,
                outputUri, dp, OuterOptimizer.Spec.NONE, "mean");
    }

    /** A run without differential privacy. */
    public TrainSpec(BaseModelRef base, AdapterConfig adapter, Map<String, String> shareGroups, int rounds, int localSteps,
                     String sync, boolean averageOptimizerState, TrainingOptions options, double sampleFraction,
                     int checkpointEvery, String outputUri) {
        this(base, adapter, shareGroups, rounds, localSteps, sync, averageOptimizerState, options, sampleFraction, checkpointEvery,
                outputUri, DpSpec.OFF);
    }

    /** This spec with other DP settings. */
    public TrainSpec withDp(DpSpec d) {
        return new TrainSpec(base, adapter, shareGroups, rounds, localSteps, sync, averageOptimizerState, options, sampleFraction,
                checkpointEvery, outputUri, d, outer, aggregate);
    }

    /** This spec with another outer optimizer. */
    public TrainSpec withOuter(OuterOptimizer.Spec o) {
        return new TrainSpec(base, adapter, shareGroups, rounds, localSteps, sync, averageOptimizerState, options, sampleFraction,
                checkpointEvery, outputUri, dp, o, aggregate);
    }

    /** This spec with another way of combining the workers' adapters ({@code train.aggregate}). */
    public TrainSpec withAggregate(String a) {
        return new TrainSpec(base, adapter, shareGroups, rounds, localSteps, sync, averageOptimizerState, options, sampleFraction,
                checkpointEvery, outputUri, dp, outer, a);
    }

    /** Checks {@code train.outer} against {@code train.sync}; throws {@link IllegalArgumentException} naming the conflict. */
    public static void checkOuter(OuterOptimizer.Spec outer, String sync) {
        if (outer.on() && !sync.equals("parameters")) {
            throw new IllegalArgumentException("train.outer: the outer optimizer steps on the averaged change of K local steps, so it needs train.sync: parameters");
        }
    }

    /** Checks {@code train.aggregate} against the other settings; throws {@link IllegalArgumentException} naming what conflicts. */
    public static void checkAggregate(String aggregate, String sync, AdapterConfig adapter, boolean averageOptimizerState,
                                       OuterOptimizer.Spec outer, DpSpec dp) {
        if (!ExactAggregation.MODES.contains(aggregate)) {
            throw new IllegalArgumentException("train.aggregate must be one of " + ExactAggregation.MODES + ", got '" + aggregate + "'");
        }
        if (aggregate.equals("mean")) return;
        if (!sync.equals("parameters")) {
            throw new IllegalArgumentException("train.aggregate: " + aggregate + " combines the workers' adapters, which only sync: parameters sends"
                    + " (with sync: gradients the averaged gradient is already exact)");
        }
        var method = adapter.adapterMethod();
        if (aggregate.equals("frozen_a") && !method.averagingIsExact(adapter)) {
            throw new IllegalArgumentException("train.aggregate: frozen_a is exact only when A is frozen and the same on every worker;"
                    + " adapter type " + adapter.method() + " trains its factors together. Use adapter.type: lora_fa, or train.aggregate: svd");
        }
        if (aggregate.equals("svd") && method.productFactors(adapter) == null) {
            throw new IllegalArgumentException("train.aggregate: svd re-factorises a trained B·A pair, which adapter type " + adapter.method()
                    + " does not have or cannot take (lora, loraplus and dora can); use train.aggregate: mean");
        }
        if (aggregate.equals("stack")) {
            if (method.productFactors(adapter) == null || !method.foldsLinearly(adapter)) {
                throw new IllegalArgumentException("train.aggregate: stack merges each worker's B·A into the weights and starts a fresh adapter,"
                        + " which adapter type " + adapter.method() + " cannot take (lora and loraplus can); use train.aggregate: svd or mean");
            }
            if (!adapter.bias().equals("none")) {
                throw new IllegalArgumentException("train.aggregate: stack restarts the adapter every round, which trained biases would not survive;"
                        + " use adapter.bias: none");
            }
        }
        if (aggregate.equals("svd") || aggregate.equals("stack")) {
            if (averageOptimizerState) {
                throw new IllegalArgumentException("train.aggregate: " + aggregate + " puts new factors in place each round, in whose basis averaged"
                        + " AdamW moments mean nothing; set train.average_optimizer_state: false");
            }
            if (outer.on()) {
                throw new IllegalArgumentException("train.aggregate: " + aggregate + " with train.outer: the outer momentum would add up changes of"
                        + " factors expressed in a different basis each round; use one or the other");
            }
            if (dp.on()) {
                throw new IllegalArgumentException("train.aggregate: " + aggregate + " needs every worker's own factors, which differentially private"
                        + " training does not release; use train.aggregate: mean");
            }
        }
    }

    public long totalSteps() { return (long) rounds * localSteps; }

    /** Blocks a task consumes per round. */
    public long blocksPerRound() { return (long) localSteps * options.batchSize() * options.gradAccumulation(); }
}
