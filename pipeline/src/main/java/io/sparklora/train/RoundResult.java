package io.sparklora.train;

import java.io.Serializable;
import java.util.TreeSet;

/**
 * What tasks send back, summed in partition order ({@code spark/PartitionOrderSum}): weighted adapter tensors (or summed gradients),
 * optionally weighted moments, and the counts needed to turn sums into means. Only adapter-sized tensors.
 */
public final class RoundResult implements Serializable {
    private static final long serialVersionUID = 1L;
    /** Σ w·θ (parameters sync) or Σ per-token gradients (gradients sync); w = target tokens. */
    public AdapterTensors payload = new AdapterTensors();
    public AdapterTensors moments;                  // Σ w·moments, when averaged
    public AdapterTensors methodStats;              // Σ w·(the method's round statistics), parameter sync (AdaLoRA's importance)
    /** {@code train.aggregate: svd}: each task's own factors, in partition order (concatenated, never summed). */
    public final java.util.ArrayList<PartitionFactors> factors = new java.util.ArrayList<>();
    /** Digests of the method state each task applied (TrainingHooks.roundState() after loading): one value when all agree. */
    public final TreeSet<String> methodStateDigests = new TreeSet<>();
    public double weight;                           // Σ w (target tokens)
    public double lossSum;                          // Σ loss·targets over steps
    public long targets, tokens, steps;
    public long skippedSteps;                       // non-finite gradients
    /** Partitions whose loss or contribution was not finite (NaN or infinite), each with what: empty in a healthy round. */
    public final TreeSet<String> nonFinite = new TreeSet<>();
    /** Refused input met by a task ("partition p: message"): returned rather than thrown, so Spark does not retry it. */
    public final TreeSet<String> inputErrors = new TreeSet<>();
    public long shardExamples;                      // examples in the tasks' shards (DP-SGD's expected batch is q times this)
    public long sampled;                            // DP: examples (DP-SGD) or clients (DP-FedAvg) that contributed
    public double maxClippedNorm;                   // DP: the largest contribution's norm after clipping (≤ C)
    public final TreeSet<String> executors = new TreeSet<>();
    public final TreeSet<String> gpus = new TreeSet<>();
    /** Per executor JVM: how many times it has read a base model from storage (1 = cached after the first read). */
    public final java.util.TreeMap<String, Integer> baseLoads = new java.util.TreeMap<>();

    /** Bytes of tensors in this result (what one task sends up the tree). */
    public long bytes() {
        // sums keep one task's size however many are added; factors are concatenated, and each task sends its own
        long f = factors.isEmpty() ? 0 : factors.get(0).factors().bytes();
        return payload.bytes() + (moments == null ? 0 : moments.bytes()) + (methodStats == null ? 0 : methodStats.bytes()) + f;
    }

    public RoundResult add(RoundResult o) {
        payload.addScaled(o.payload, 1.0);
        if (o.moments != null) moments = (moments == null ? new AdapterTensors() : moments).addScaled(o.moments, 1.0);
        if (o.methodStats != null) methodStats = (methodStats == null ? new AdapterTensors() : methodStats).addScaled(o.methodStats, 1.0);
        methodStateDigests.addAll(o.methodStateDigests);
        factors.addAll(o.factors);
        weight += o.weight;
        lossSum += o.lossSum;
        targets += o.targets;
        tokens += o.tokens;
        steps += o.steps;
        skippedSteps += o.skippedSteps;
        nonFinite.addAll(o.nonFinite);
        inputErrors.addAll(o.inputErrors);
        shardExamples += o.shardExamples;
        sampled += o.sampled;
        maxClippedNorm = Math.max(maxClippedNorm, o.maxClippedNorm);
        executors.addAll(o.executors);
        gpus.addAll(o.gpus);
        o.baseLoads.forEach((k, v) -> baseLoads.merge(k, v, Math::max));
        return this;
    }
}
