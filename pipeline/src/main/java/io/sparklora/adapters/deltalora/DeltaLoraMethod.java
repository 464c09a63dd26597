package io.sparklora.adapters.deltalora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.TrainingHooks;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.model.Linear;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Delta-LoRA (Zi et al.): the frozen weight follows the adapter's change, W_{t+1} = W_t + λ·(B_{t+1}A_{t+1} − B_tA_t)
 * after {@code delta_warmup} steps, with no gradient and no optimizer state for W, and no dropout on the adapter
 * path (the paper requires it). Implemented in the telescoped form ({@link DeltaLoraAdapter}): no base tensor is
 * ever written, so executors share the frozen base and never diverge; the snapshot (A_K, B_K) taken after step K
 * is this method's round state, broadcast by the driver with the adapter and written into checkpoints.
 *
 * <p>Trainable r·(in + out) per layer (A, B). The snapshot, as many values again, is round state, not parameters
 * (it is not counted in "all params"). The adapter file is an exact PEFT
 * LoRA of rank 2r (see {@link DeltaLoraAdapter}); {@code spark-lora merge} writes W_0 + ΔW_T.
 */
public final class DeltaLoraMethod extends LoraMethod {
    public static final String LAMBDA = "delta_lambda";
    public static final String WARMUP = "delta_warmup";

    @Override public String name() { return "delta_lora"; }

    /** Its base update telescopes over the snapshots of (A, B) it keeps; a re-factorised pair would break that chain. */
    @Override public String[] productFactors(AdapterConfig config) { return null; }

    @Override public String description() { return "Delta-LoRA: W follows λ·Δ(BA) after a warm-up; telescoped, W0 untouched; saved as a rank-2r LoRA"; }

    @Override
    public Map<String, String> optionDefaults() {
        Map<String, String> m = new LinkedHashMap<>(super.optionDefaults());
        m.put(LAMBDA, "2");
        m.put(WARMUP, "500");
        return m;
    }

    @Override
    public void validate(AdapterConfig c) {
        super.validate(c);
        double l = c.doubleOption(LAMBDA);
        if (!(l > 0) || Double.isInfinite(l)) throw new IllegalArgumentException(LAMBDA + " must be positive, got " + l);
        if (c.longOption(WARMUP) < 0) throw new IllegalArgumentException(WARMUP + " must be >= 0, got " + c.longOption(WARMUP));
        if (c.dropout() != 0) {
            throw new IllegalArgumentException("adapter type 'delta_lora' needs dropout 0 on the adapter path (the Delta-LoRA paper's"
                    + " update assumes it); got dropout " + c.dropout());
        }
    }

    @Override
    protected LoraAdapter newLayer(String adapterName, Linear layer, AdapterConfig config, Random rng) {
        DeltaLoraAdapter a = new DeltaLoraAdapter(adapterName, layer, config, rng, config.doubleOption(LAMBDA));
        if (config.longOption(WARMUP) == 0) a.snapshot();     // no warm-up: the snapshot is the initial (B = 0) adapter
        return a;
    }

    @Override
    protected LoraAdapter sharedLayer(String adapterName, Linear layer, AdapterConfig config, LoraAdapter owner) {
        throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not delta_lora");
    }

    @Override public boolean supportsSharing() { return false; }

    @Override
    public TrainingHooks hooks(AttachedAdapter adapter) {
        long warmup = adapter.config().longOption(WARMUP);
        return new TrainingHooks() {
            @Override
            public void afterStep(long step) {
                // after step K−1 (0-based), i.e. K optimizer steps: the warm-up is over, W starts to follow BA
                if (step + 1 == warmup) {
                    for (Adapter a : adapter.layers().values()) ((DeltaLoraAdapter) a).snapshot();
                }
            }

            @Override
            public void beforeRound(int round, long firstStep) {
                // parameter sync: the driver takes no optimizer step, so afterStep never runs here; it takes the snapshot
                // from the averaged adapter at the first round boundary past the warm-up (gradient sync took it in
                // afterStep, at step K exactly, and this finds it taken)
                if (firstStep < warmup) return;
                for (Adapter a : adapter.layers().values()) {
                    DeltaLoraAdapter d = (DeltaLoraAdapter) a;
                    if (!d.active()) d.snapshot();
                }
            }

            @Override
            public Map<String, INDArray> roundState() {
                Map<String, INDArray> s = new LinkedHashMap<>();
                for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
                    DeltaLoraAdapter a = (DeltaLoraAdapter) e.getValue();
                    if (a.active()) {
                        s.put(e.getKey() + ".delta_A_K", a.snapshotA());
                        s.put(e.getKey() + ".delta_B_K", a.snapshotB());
                    }
                }
                return s;
            }

            @Override
            public void loadRoundState(Map<String, INDArray> state) {
                for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
                    INDArray sa = state.get(e.getKey() + ".delta_A_K"), sb = state.get(e.getKey() + ".delta_B_K");
                    ((DeltaLoraAdapter) e.getValue()).setSnapshot(sa, sb);
                }
            }
        };
    }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        super.writePeftConfig(o, c);
        // the file holds the rank-2r form; the same scale alpha/r is alpha'/r' with r' = 2r, alpha' = 2·alpha
        o.put("r", 2 * c.r());
        o.put("lora_alpha", 2 * c.alpha());
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        AdapterConfig lora = super.readPeftConfig(root, where, base);
        if (lora.r() % 2 != 0) throw new IllegalArgumentException(where + ": a delta_lora file is a LoRA of even rank 2r, got r = " + lora.r());
        return new AdapterConfig("delta_lora", lora.r() / 2, lora.alpha() / 2, 0.0, lora.targetModules(), lora.rslora(), lora.bias(), lora.init());
    }
}
