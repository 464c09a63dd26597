package io.sparklora.adapters.lycoris;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.model.Architecture;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the LyCORIS-derived methods (LoHa, LoKr) share, as PEFT's {@code LycorisConfig}/{@code LycorisLayer} do:
 * the {@code alpha} key, rank and module dropout instead of input dropout, kaiming-uniform factors, PEFT's
 * config keys, and the caveat that PEFT attaches them to {@code nn.Linear} only.
 */
public final class Lycoris {
    public static final String RANK_DROPOUT = "rank_dropout";
    public static final String MODULE_DROPOUT = "module_dropout";

    private Lycoris() {}

    /** Checks the shared settings of {@code method}: both dropouts in [0, 1), no input dropout, no rsLoRA. */
    public static void validate(AdapterConfig c, String method) {
        for (String k : List.of(RANK_DROPOUT, MODULE_DROPOUT)) {
            double p = c.doubleOption(k);
            if (!(p >= 0 && p < 1)) throw new IllegalArgumentException(k + " must be in [0, 1), got " + p);
        }
        if (c.dropout() != 0) {
            throw new IllegalArgumentException("adapter type '" + method + "' has no input dropout (PEFT's has rank_dropout and module_dropout); got dropout "
                    + c.dropout());
        }
        if (c.rslora()) throw new IllegalArgumentException("adapter type '" + method + "' scales by alpha/r; rslora does not apply");
    }

    /** kaiming_uniform_(a = √5) of a [rows, cols] tensor: U(−1/√cols, 1/√cols). */
    public static INDArray kaiming(Random rng, int rows, int cols, DataType dt) {
        double bound = 1.0 / Math.sqrt(cols);
        return Nd4j.rand(rng, rows, cols).castTo(dt).muli(2 * bound).subi(bound);
    }

    /** Whether a training forward skips the adapter (module dropout with probability p). */
    public static boolean skipModule(ForwardContext ctx, double p) {
        return ctx.training() && p > 0 && ctx.random() != null && ctx.random().nextDouble() < p;
    }

    /**
     * Rank dropout's mask over the {@code out} output channels (null when off): kept with probability 1 − p, the kept
     * ones scaled by 1/mean(kept) when {@code rescale} (every channel kept in the one case where all would be dropped).
     */
    public static INDArray rankMask(ForwardContext ctx, double p, boolean rescale, long out, DataType dt) {
        if (!ctx.training() || p <= 0 || ctx.random() == null) return null;
        INDArray keep = Nd4j.rand(ctx.random(), 1, out).castTo(dt).gt(p).castTo(dt).reshape(out);
        if (!rescale) return keep;
        double mean = keep.meanNumber().doubleValue();
        return mean == 0 ? Nd4j.ones(dt, out) : keep.divi(mean);
    }

    /** The layer's tensors under their PEFT keys: the LyCORIS methods tag each tensor with its key ({@code hada_w1_a}, {@code lokr_w2}, ...). */
    public static Map<String, INDArray> stateDict(List<Parameter> parameters) {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (Parameter p : parameters) m.put(p.group(), p.value());
        return m;
    }

    /** Loads what {@link #stateDict} wrote, every tensor checked by key and shape. */
    public static void loadStateDict(List<Parameter> parameters, Map<String, INDArray> tensors, String module, String where) {
        for (Parameter p : parameters) io.sparklora.adapters.Adapter.load(p, tensors.get(p.group()), module, p.group(), where);
    }

    /** PEFT cannot load a LyCORIS method on GPT-2's Conv1D layers (it attaches them to nn.Linear only). */
    public static String peftCaveat(Architecture arch, String methodLabel) {
        return arch == Architecture.GPT2
                ? "PEFT and LyCORIS attach " + methodLabel + " to nn.Linear only, and GPT-2's projections are Conv1D: PEFT cannot load this adapter."
                  + " Use it with spark-lora, merge it into the base (spark-lora merge), or convert it (spark-lora export --to lora)."
                : null;
    }

    /** The shared PEFT keys (the method adds its own after). */
    public static void writeConfig(ObjectNode o, AdapterConfig c) {
        o.remove("fan_in_fan_out");          // the LyCORIS configs have no such key
        o.put("r", c.r());
        o.put("alpha", c.alpha());
        o.put(RANK_DROPOUT, c.doubleOption(RANK_DROPOUT));
        o.put(MODULE_DROPOUT, c.doubleOption(MODULE_DROPOUT));
        o.put("use_effective_conv2d", false);
        o.put("init_weights", true);
        o.putObject("rank_pattern");
        o.putObject("alpha_pattern");
    }

    /** Checks the shared PEFT keys of a file and returns the shared options that differ from their defaults. */
    public static Map<String, String> readConfig(JsonNode root, String where) {
        for (String key : new String[]{"rank_pattern", "alpha_pattern"}) {
            if (root.has(key) && root.get(key).isObject() && root.get(key).size() > 0) {
                throw new IllegalArgumentException(where + ": " + key + " is not supported yet");
            }
        }
        if (root.has("init_weights") && !root.get("init_weights").asBoolean(true)) {
            throw new IllegalArgumentException(where + ": init_weights=false is not supported");
        }
        Map<String, String> o = new LinkedHashMap<>();
        for (String k : List.of(RANK_DROPOUT, MODULE_DROPOUT)) {
            double p = root.path(k).asDouble(0.0);
            if (p != 0) o.put(k, Double.toString(p));
        }
        return o;
    }
}
