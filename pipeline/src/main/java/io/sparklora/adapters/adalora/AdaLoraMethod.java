package io.sparklora.adapters.adalora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AdapterMethod;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.TrainingHooks;
import io.sparklora.model.Linear;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA (Zhang et al., 2023): each adapted matrix is ΔW = P·Λ·Q in SVD form ({@link AdaLoraAdapter}), and a rank
 * budget that falls from {@code r} (PEFT's {@code init_r}) per matrix to {@code target_r} on average is spent where
 * the importance of the singular-value triplets is highest ({@link RankAllocator}, driven by {@link AdaLoraHooks}).
 *
 * <p>Settings (PEFT's names and defaults): {@code target_r} 8, {@code tinit} 0, {@code tfinal} 0, {@code deltaT} 1,
 * {@code beta1} 0.85, {@code beta2} 0.85, {@code orth_reg_weight} 0.5, {@code total_step} (0: the run's own number of
 * steps). {@code r} is the initial rank.
 *
 * <p>File: {@code peft_type: ADALORA}; tensors {@code lora_A} [r, in], {@code lora_E} [r, 1], {@code lora_B} [out, r]
 * sliced to the triplets in use, with {@code rank_pattern} mapping each {@code <module>.lora_E} to its boolean mask;
 * no {@code ranknum} (PEFT rebuilds it as init_r). Checkpoints keep the full-rank tensors, since a pruned triplet can
 * come back. Reading such a file puts the kept rows back in place and leaves the pruned triplets at zero.
 */
public final class AdaLoraMethod implements AdapterMethod {
    public static final String TARGET_R = "target_r";
    public static final String TINIT = "tinit";
    public static final String TFINAL = "tfinal";
    public static final String DELTA_T = "deltaT";
    public static final String BETA1 = "beta1";
    public static final String BETA2 = "beta2";
    public static final String ORTH = "orth_reg_weight";
    public static final String TOTAL_STEP = "total_step";
    /** A loaded file's masks, "module=1101...;module=..." (empty while training: the masks are then the hooks'). */
    public static final String RANK_PATTERN = "rank_pattern";

    @Override public String name() { return "adalora"; }

    @Override public String description() { return "AdaLoRA: ΔW = P·Λ·Q, a rank budget falling from r to target_r, spent where the triplets matter"; }

    @Override
    public Map<String, String> optionDefaults() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(TARGET_R, "8");
        m.put(TINIT, "0");
        m.put(TFINAL, "0");
        m.put(DELTA_T, "1");
        m.put(BETA1, "0.85");
        m.put(BETA2, "0.85");
        m.put(ORTH, "0.5");
        m.put(TOTAL_STEP, "0");
        m.put(RANK_PATTERN, "");
        return m;
    }

    @Override
    public void validate(AdapterConfig c) {
        AdapterMethod.super.validate(c);
        if (c.rslora()) throw new IllegalArgumentException("adapter type 'adalora' scales by alpha/init_r as PEFT does; rslora does not apply");
        long target = c.longOption(TARGET_R);
        if (target < 1 || target > c.r()) throw new IllegalArgumentException(TARGET_R + " must be in [1, r = " + c.r() + "] (r is the initial rank), got " + target);
        for (String k : new String[]{BETA1, BETA2}) {
            double b = c.doubleOption(k);
            if (!(b > 0 && b < 1)) throw new IllegalArgumentException(k + " must be in (0, 1), got " + b);
        }
        double orth = c.doubleOption(ORTH);
        if (!(orth >= 0) || Double.isInfinite(orth)) throw new IllegalArgumentException(ORTH + " must be >= 0, got " + orth);
        if (c.longOption(DELTA_T) < 1) throw new IllegalArgumentException(DELTA_T + " must be >= 1, got " + c.longOption(DELTA_T));
        long tinit = c.longOption(TINIT), tfinal = c.longOption(TFINAL), total = c.longOption(TOTAL_STEP);
        if (tinit < 0 || tfinal < 0 || total < 0) throw new IllegalArgumentException(TINIT + ", " + TFINAL + " and " + TOTAL_STEP + " must be >= 0");
        if (total > 0 && tinit >= total - tfinal) {
            throw new IllegalArgumentException(TINIT + " (" + tinit + ") must be below " + TOTAL_STEP + " − " + TFINAL + " (" + total + " − " + tfinal + ")");
        }
        rankPattern(c);
    }

    /** The masks of a loaded file's {@code rank_pattern}, by module (empty when the option is). */
    public static Map<String, boolean[]> rankPattern(AdapterConfig c) {
        Map<String, boolean[]> m = new LinkedHashMap<>();
        String s = c.options().getOrDefault(RANK_PATTERN, "");
        if (s.isBlank()) return m;
        for (String part : s.split(";")) {
            int eq = part.lastIndexOf('=');
            if (eq <= 0) throw new IllegalArgumentException(RANK_PATTERN + ": expected module=bits, got '" + part + "'");
            String bits = part.substring(eq + 1);
            boolean[] k = new boolean[bits.length()];
            for (int i = 0; i < k.length; i++) {
                char ch = bits.charAt(i);
                if (ch != '0' && ch != '1') throw new IllegalArgumentException(RANK_PATTERN + ": mask of " + part.substring(0, eq) + " must be 0s and 1s");
                k[i] = ch == '1';
            }
            m.put(part.substring(0, eq), k);
        }
        return m;
    }

    private static String encode(Map<String, boolean[]> pattern) {
        List<String> parts = new ArrayList<>();
        pattern.forEach((mod, k) -> {
            StringBuilder b = new StringBuilder(mod).append('=');
            for (boolean x : k) b.append(x ? '1' : '0');
            parts.add(b.toString());
        });
        return String.join(";", parts);
    }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        if (!shareGroups.isEmpty()) throw new IllegalArgumentException("shared adapters (LoRA-drop) are defined for lora and lora_fa, not adalora");
        Random rng = io.sparklora.model.Seeds.rng(seed);
        Map<String, boolean[]> pattern = rankPattern(config);
        Map<String, Adapter> layers = new LinkedHashMap<>();
        for (String m : modules) {
            Linear l = model.linears().get(m);
            AdaLoraAdapter a = new AdaLoraAdapter(adapterName, l, config, rng);
            boolean[] k = pattern.get(m);
            if (k != null) a.setMask(k);
            layers.put(m, a);
        }
        return new Layers(layers, Map.of());
    }

    /** r·(in + out + 1): A, B and the singular values. */
    @Override
    public long trainableCount(Map<String, int[]> shapes, AdapterConfig config) {
        long n = 0;
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            int[] s = e.getValue();
            io.sparklora.adapters.ParameterCounter.requireRankFits(e.getKey(), s[0], s[1], config.r());
            n += (long) config.r() * (s[0] + s[1] + 1);
        }
        return n;
    }

    @Override
    public TrainingHooks hooks(AttachedAdapter adapter) {
        AdapterConfig c = adapter.config();
        List<AdaLoraAdapter> layers = adapter.layers().values().stream().map(a -> (AdaLoraAdapter) a).toList();
        RankAllocator allocator = new RankAllocator(layers, (int) c.longOption(TARGET_R), (int) c.longOption(TINIT), (int) c.longOption(TFINAL),
                (int) c.longOption(DELTA_T), c.doubleOption(BETA1), c.doubleOption(BETA2));
        return new AdaLoraHooks(layers, allocator, c.doubleOption(ORTH), c.longOption(TOTAL_STEP));
    }

    @Override
    public Map<String, Integer> ranksInUse(AttachedAdapter adapter) {
        Map<String, Integer> m = new LinkedHashMap<>();
        adapter.layers().forEach((mod, a) -> m.put(mod, ((AdaLoraAdapter) a).rank()));
        return m;
    }

    @Override public String peftType() { return "ADALORA"; }

    @Override
    public void writePeftConfig(ObjectNode o, AdapterConfig c) {
        o.put("r", c.longOption(TARGET_R));                 // PEFT's AdaLoraConfig ignores r; init_r is the initial rank
        o.put("lora_alpha", c.alpha());
        o.put("lora_dropout", c.dropout());
        o.put("use_rslora", false);
        o.put("use_dora", false);
        o.put("init_lora_weights", true);
        o.put("init_r", c.r());
        o.put(TARGET_R, c.longOption(TARGET_R));
        o.put(TINIT, c.longOption(TINIT));
        o.put(TFINAL, c.longOption(TFINAL));
        o.put(DELTA_T, c.longOption(DELTA_T));
        o.put(BETA1, c.doubleOption(BETA1));
        o.put(BETA2, c.doubleOption(BETA2));
        o.put(ORTH, c.doubleOption(ORTH));
        long total = c.longOption(TOTAL_STEP);
        if (total > 0) o.put(TOTAL_STEP, total);
        else o.putNull(TOTAL_STEP);
        Map<String, boolean[]> pattern = rankPattern(c);
        if (pattern.isEmpty()) o.putNull(RANK_PATTERN);
        else writePattern(o.putObject(RANK_PATTERN), pattern);
        o.putObject("alpha_pattern");
    }

    private static void writePattern(ObjectNode node, Map<String, boolean[]> pattern) {
        pattern.forEach((mod, k) -> {
            ArrayNode arr = node.putArray(mod + ".lora_E");
            for (boolean x : k) arr.add(x);
        });
    }

    /**
     * The file PEFT reads: each layer's tensors sliced to its triplets in use, {@code rank_pattern} and the run's
     * {@code total_step} in the config.
     */
    @Override
    public Map<String, INDArray> peftFile(AttachedAdapter adapter, Map<String, INDArray> tensors, ObjectNode config, String prefix) {
        Map<String, INDArray> out = new LinkedHashMap<>(tensors);
        Map<String, boolean[]> pattern = new LinkedHashMap<>();
        boolean pruned = false;
        for (Map.Entry<String, Adapter> e : adapter.layers().entrySet()) {
            AdaLoraAdapter l = (AdaLoraAdapter) e.getValue();
            l.slicedStateDict().forEach((k, v) -> out.put(prefix + e.getKey() + "." + k, v));
            pattern.put(e.getKey(), l.mask());
            pruned |= l.rank() < l.initialRank();
        }
        // PEFT's rank_pattern is null until an allocation pruned something
        if (pruned) writePattern(config.putObject(RANK_PATTERN), pattern);
        // PEFT needs total_step > 0 to load: the run's, once a run planned it (an untrained adapter keeps the configured one)
        if (adapter.hooks() instanceof AdaLoraHooks h && h.allocator.totalStep() > 0) config.put(TOTAL_STEP, h.allocator.totalStep());
        return out;
    }

    @Override
    public AdapterConfig readPeftConfig(JsonNode root, String where, AdapterConfig base) {
        java.util.SortedMap<String, String> opts = new java.util.TreeMap<>();
        for (String k : new String[]{TARGET_R, TINIT, TFINAL, DELTA_T, BETA1, BETA2, ORTH, TOTAL_STEP}) {
            JsonNode v = root.get(k);
            if (v != null && !v.isNull()) opts.put(k, v.asText());
        }
        JsonNode rp = root.get(RANK_PATTERN);
        if (rp != null && rp.isObject() && rp.size() > 0) {
            Map<String, boolean[]> pattern = new LinkedHashMap<>();
            for (var it = rp.fields(); it.hasNext(); ) {
                var e = it.next();
                String key = e.getKey();
                if (!key.endsWith(".lora_E") || !e.getValue().isArray()) {
                    throw new IllegalArgumentException(where + ": rank_pattern entry '" + key + "' is not a <module>.lora_E mask");
                }
                boolean[] k = new boolean[e.getValue().size()];
                for (int i = 0; i < k.length; i++) k[i] = e.getValue().get(i).asBoolean();
                pattern.put(key.substring(0, key.length() - ".lora_E".length()), k);
            }
            opts.put(RANK_PATTERN, encode(pattern));
        }
        int initR = root.path("init_r").asInt(12);
        return new AdapterConfig(name(), initR, root.path("lora_alpha").asDouble(8), root.path("lora_dropout").asDouble(0.0),
                base.targetModules(), false, base.bias(), "kaiming", opts);
    }
}
