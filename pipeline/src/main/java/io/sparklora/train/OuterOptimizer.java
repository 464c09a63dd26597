package io.sparklora.train;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The driver's outer optimizer of {@code sync: parameters} (DiLoCo, Douillard et al. 2023). A round starts every
 * worker from θ, each takes K local steps, and the driver averages what they return into θ̄. Plain averaging sets
 * θ ← θ̄: an outer SGD step on the pseudo-gradient Δ = θ − θ̄ with rate 1 and no momentum. This class takes that step
 * with its own rate and (Nesterov) momentum instead:
 * <pre>
 *   Δ = θ − θ̄                       pseudo-gradient
 *   v = Δ                (first round)
 *   v = μ·v + Δ          (later rounds)
 *   u = Δ + μ·v          (nesterov)   or   u = v   (heavy ball)
 *   θ ← θ − η·u
 * </pre>
 * which is PyTorch's {@code SGD(lr=η, momentum=μ, nesterov=...)} applied to Δ; DiLoCo uses η = 0.7, μ = 0.9, Nesterov.
 * With η = 1 and μ = 0 it is plain averaging. Its state, v, is adapter-sized, lives on the driver only and goes into
 * the training checkpoints (as {@code outer.<tensor>.momentum_buffer}); nothing of it is broadcast.
 */
public final class OuterOptimizer {
    /** Prefix and suffix of the momentum buffer's tensors in a checkpoint's optimizer state. */
    public static final String STATE_PREFIX = "outer.", STATE_SUFFIX = ".momentum_buffer";

    /**
     * {@code train.outer}: {@code optimizer} {@code none} (plain averaging, the default) or {@code sgd}; its learning rate,
     * momentum and whether the momentum is Nesterov's.
     */
    public record Spec(String optimizer, double lr, double momentum, boolean nesterov) implements Serializable {
        public static final Spec NONE = new Spec("none", 1.0, 0.0, false);

        /** DiLoCo's setting: SGD, rate 0.7, Nesterov momentum 0.9. */
        public static final Spec DILOCO = new Spec("sgd", 0.7, 0.9, true);

        public Spec {
            if (!optimizer.equals("none") && !optimizer.equals("sgd")) {
                throw new IllegalArgumentException("train.outer.optimizer must be 'none' (plain averaging) or 'sgd' (DiLoCo's outer step), got '" + optimizer + "'");
            }
            if (!(lr > 0) || !Double.isFinite(lr)) throw new IllegalArgumentException("train.outer.lr must be positive and finite, got " + lr);
            if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("train.outer.momentum must be in [0, 1), got " + momentum);
        }

        public boolean on() { return optimizer.equals("sgd"); }

        @Override
        public String toString() {
            return on() ? "sgd(lr=" + lr + ",momentum=" + momentum + (nesterov ? ",nesterov" : "") + ")" : "none";
        }
    }

    private final Spec spec;
    private AdapterTensors velocity;      // v; null before the first step

    public OuterOptimizer(Spec spec) {
        this.spec = spec;
    }

    public Spec spec() { return spec; }

    /**
     * The next θ from the round's starting point {@code start} and the workers' average {@code averaged} (same names and
     * sizes). Neither argument is changed. Returns {@code averaged} itself when the optimizer is {@code none}.
     */
    public AdapterTensors step(AdapterTensors start, AdapterTensors averaged) {
        if (!spec.on()) return averaged;
        AdapterTensors delta = pseudoGradient(start, averaged);
        float mu = (float) spec.momentum();
        if (velocity == null) {
            velocity = delta;       // Δ is this round's own copy; later rounds update v in place, each with a new Δ
        } else {
            for (Map.Entry<String, float[]> e : delta.data().entrySet()) {
                float[] v = velocity.data().get(e.getKey()), d = e.getValue();
                if (v == null || v.length != d.length) throw new IllegalStateException("outer optimizer: tensor " + e.getKey() + " changed between rounds");
                for (int i = 0; i < d.length; i++) v[i] = mu * v[i] + d[i];
            }
        }
        AdapterTensors next = new AdapterTensors().addScaled(start, 1.0);
        float lr = (float) spec.lr();
        for (Map.Entry<String, float[]> e : next.data().entrySet()) {
            float[] t = e.getValue(), d = delta.data().get(e.getKey()), v = velocity.data().get(e.getKey());
            for (int i = 0; i < t.length; i++) {
                float u = spec.nesterov() ? d[i] + mu * v[i] : v[i];
                t[i] -= lr * u;
            }
        }
        return next;
    }

    /** Δ = start − averaged, tensor by tensor; every tensor of start must be in averaged with the same size. */
    public static AdapterTensors pseudoGradient(AdapterTensors start, AdapterTensors averaged) {
        for (Map.Entry<String, float[]> e : start.data().entrySet()) {
            float[] a = averaged.data().get(e.getKey());
            if (a == null || a.length != e.getValue().length) {
                throw new IllegalStateException("outer optimizer: the averaged adapter lacks tensor " + e.getKey() + " or has another size");
            }
        }
        return new AdapterTensors().addScaled(start, 1.0).addScaled(averaged, -1.0);
    }

    /** The momentum buffer as checkpoint tensors ({@code outer.<name>.momentum_buffer}); empty before the first step or when off. */
    public Map<String, INDArray> exportState() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        if (velocity != null) velocity.toArrays().forEach((k, v) -> m.put(STATE_PREFIX + k + STATE_SUFFIX, v));
        return m;
    }

    /** Takes the momentum buffer back from a checkpoint's optimizer state; tensors without the outer prefix are ignored. */
    public void importState(Map<String, INDArray> state) {
        AdapterTensors v = new AdapterTensors();
        state.forEach((k, t) -> {
            if (k.startsWith(STATE_PREFIX) && k.endsWith(STATE_SUFFIX)) {
                v.put(k.substring(STATE_PREFIX.length(), k.length() - STATE_SUFFIX.length()), t);
            }
        });
        velocity = v.isEmpty() ? null : v;
    }
}
