package io.sparklora.adapters.adalora;

import io.sparklora.model.Parameter;
import io.sparklora.model.Tensors;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA's budget and importance (the paper's Algorithm 1 with PEFT's details):
 * <ul>
 *   <li><b>Importance</b> of every entry of A, E and B: I = |θ ⊙ ∇θ| after each optimizer step; smoothed sensitivity
 *       Ī ← β1·Ī + (1 − β1)·I; uncertainty Ū ← β2·Ū + (1 − β2)·|I − Ī|; score s = Ī ⊙ Ū.</li>
 *   <li><b>A triplet's score</b>: s(E_i) + mean_j s(A_ij) + mean_k s(B_ki).</li>
 *   <li><b>Budget</b> (total ranks in use) at step t: the initial total b0 = Σ init_r up to {@code tinit}; then the cubic
 *       b(t) = ⌊(b0 − b_T)·(1 − (t − tinit)/(T − tfinal − tinit))³ + b_T⌋, reallocated every {@code deltaT} steps; the
 *       target b_T = target_r × layers from T − tfinal on (T = total steps), fixed there.</li>
 *   <li><b>Allocation</b> to budget b: the triplets whose score is at most the (b0 − b)-th smallest are pruned (their
 *       singular values set to zero); so the ranks in use never exceed b (ties can leave fewer).</li>
 * </ul>
 */
final class RankAllocator {
    private final List<AdaLoraAdapter> layers;
    private final int targetR, tinit, tfinal, deltaT;
    private final double beta1, beta2;
    private long totalStep;
    final Map<String, INDArray> expIpt = new LinkedHashMap<>();   // Ī by parameter name
    final Map<String, INDArray> expUnc = new LinkedHashMap<>();   // Ū by parameter name

    RankAllocator(List<AdaLoraAdapter> layers, int targetR, int tinit, int tfinal, int deltaT, double beta1, double beta2) {
        this.layers = layers;
        this.targetR = targetR;
        this.tinit = tinit;
        this.tfinal = tfinal;
        this.deltaT = deltaT;
        this.beta1 = beta1;
        this.beta2 = beta2;
    }

    void setTotalStep(long t) {
        if (tinit >= t - tfinal) {
            throw new IllegalArgumentException("adalora: tinit (" + tinit + ") must be below total_step − tfinal (" + t + " − " + tfinal
                    + "): the budget needs steps to fall in");
        }
        totalStep = t;
    }

    long totalStep() { return totalStep; }

    int initialBudget() { return layers.stream().mapToInt(AdaLoraAdapter::initialRank).sum(); }

    int targetBudget() { return targetR * layers.size(); }

    /** The step at which the final allocation happens: T − tfinal. */
    long finalStep() { return totalStep - tfinal; }

    /** The budget at step t and whether t reallocates (PEFT's budget_schedule). */
    record Budget(int budget, boolean allocate) {}

    Budget budget(long step) {
        int b0 = initialBudget(), bT = targetBudget();
        if (step <= tinit) return new Budget(b0, false);
        if (step > totalStep - tfinal) return new Budget(bT, true);
        double mul = 1 - (double) (step - tinit) / (totalStep - tfinal - tinit);
        return new Budget((int) ((b0 - bT) * (mul * mul * mul) + bT), step % deltaT == 0);
    }

    /** Ī, Ū ← the smoothed importance after a step (gradients of that step still in the buffers). */
    void updateImportance() {
        for (AdaLoraAdapter l : layers) {
            for (Parameter p : l.parameters()) {
                INDArray g = p.grad();
                if (g == null) continue;
                INDArray ipt = Transforms.abs(p.value().mul(g), false);
                INDArray avg = expIpt.computeIfAbsent(p.name(), k -> Nd4j.zeros(p.value().dataType(), p.value().shape()));
                INDArray unc = expUnc.computeIfAbsent(p.name(), k -> Nd4j.zeros(p.value().dataType(), p.value().shape()));
                avg.muli(beta1).addi(ipt.mul(1 - beta1));
                INDArray dev = Transforms.abs(ipt.subi(avg), false);          // |I − Ī| with the updated Ī
                unc.muli(beta2).addi(dev.muli(1 - beta2));
                Tensors.release(ipt);
            }
        }
    }

    void resetImportance() {
        expIpt.clear();
        expUnc.clear();
    }

    boolean hasImportance() { return !expIpt.isEmpty(); }

    /** Each layer's triplet scores, [init_r] per layer, in layer order. */
    double[][] tripletScores() {
        double[][] out = new double[layers.size()][];
        for (int li = 0; li < layers.size(); li++) {
            AdaLoraAdapter l = layers.get(li);
            int r = l.initialRank();
            double[] s = new double[r];
            INDArray sa = score(l.loraA()), se = score(l.loraE()), sb = score(l.loraB());
            double[] aMean = sa.mean(1).toDoubleVector(), bMean = sb.mean(0).toDoubleVector(), e = se.reshape(r).toDoubleVector();
            for (int i = 0; i < r; i++) s[i] = e[i] + aMean[i] + bMean[i];
            Tensors.release(sa, se, sb);
            out[li] = s;
        }
        return out;
    }

    private INDArray score(Parameter p) {
        INDArray a = expIpt.get(p.name()), u = expUnc.get(p.name());
        if (a == null || u == null) return Nd4j.zeros(p.value().dataType(), p.value().shape());
        return a.mul(u);
    }

    /**
     * Prunes to {@code budget}: every triplet scoring at most the (b0 − budget)-th smallest score loses its singular
     * value; returns the new masks in layer order.
     */
    boolean[][] allocate(int budget) {
        double[][] scores = tripletScores();
        int b0 = initialBudget();
        int k = b0 - budget;
        boolean[][] masks = new boolean[layers.size()][];
        if (k <= 0) {
            for (int li = 0; li < layers.size(); li++) {
                masks[li] = new boolean[layers.get(li).initialRank()];
                Arrays.fill(masks[li], true);
            }
        } else {
            double[] all = Arrays.stream(scores).flatMapToDouble(Arrays::stream).toArray();
            double[] sorted = all.clone();
            Arrays.sort(sorted);
            double threshold = sorted[Math.min(k, sorted.length) - 1];   // the k-th smallest (torch.kthvalue)
            for (int li = 0; li < layers.size(); li++) {
                masks[li] = new boolean[scores[li].length];
                for (int i = 0; i < scores[li].length; i++) masks[li][i] = scores[li][i] > threshold;
            }
        }
        for (int li = 0; li < layers.size(); li++) layers.get(li).applyMask(masks[li]);
        return masks;
    }
}
