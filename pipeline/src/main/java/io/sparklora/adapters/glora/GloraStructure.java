package io.sparklora.adapters.glora;

import io.sparklora.adapters.TargetMatcher;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * The support of each of GLoRA's five terms on one layer (the GLoRA paper's search space, as PEFT's
 * {@code eval_config} holds it): W' = W0 + W0 ⊙ A + B, b' = b0 + b0 ⊙ D + E + W0·C.
 *
 * <ul>
 *   <li>A, B ([out, in]): {@code lora} (Xd·Xu, rank r), {@code vector} (one value per output, broadcast over
 *       the inputs: Xd[:, 0]), {@code constant} (one scalar: Xd[0, 0]) or {@code none};</li>
 *   <li>C ([in, 1]): {@code lora} (Cd·Cu), {@code vector} (Cd[:, 0]) or {@code none};</li>
 *   <li>D, E ([out]): {@code vector}, {@code constant} (D[0]) or {@code none}.</li>
 * </ul>
 *
 * <p>Written as five comma-separated names in the order A, B, C, D, E: {@code lora,lora,lora,constant,constant}
 * is PEFT's default ({@code config_A_B: lora}, {@code config_C: lora}, {@code config_D_E: constant}).
 */
public record GloraStructure(Support a, Support b, Support c, Support d, Support e) implements java.io.Serializable {

    /** How one term is parameterised. */
    public enum Support {
        LORA, VECTOR, CONSTANT, NONE;

        public String key() { return name().toLowerCase(Locale.ROOT); }

        /** A name as configs write it; PEFT's {@code lora_8} (rank suffix) reads as {@code lora}. */
        public static Support parse(String s, String term, List<Support> allowed) {
            String v = s.trim().toLowerCase(Locale.ROOT);
            if (v.startsWith("lora")) v = "lora";
            for (Support x : allowed) if (x.key().equals(v)) return x;
            throw new IllegalArgumentException("GLoRA term " + term + " cannot be '" + s.trim() + "' (allowed: "
                    + String.join(", ", allowed.stream().map(Support::key).toList()) + ")");
        }
    }

    /** What A and B may be. */
    public static final List<Support> A_B = List.of(Support.LORA, Support.VECTOR, Support.CONSTANT, Support.NONE);
    /** What C may be. */
    public static final List<Support> C = List.of(Support.LORA, Support.VECTOR, Support.NONE);
    /** What D and E may be. */
    public static final List<Support> D_E = List.of(Support.VECTOR, Support.CONSTANT, Support.NONE);

    /** PEFT's defaults. */
    public static final GloraStructure DEFAULT = new GloraStructure(Support.LORA, Support.LORA, Support.LORA, Support.CONSTANT, Support.CONSTANT);
    /** The most general structure: every other one is a special case of its tensors (used to write PEFT's uniform config). */
    public static final GloraStructure GENERAL = new GloraStructure(Support.LORA, Support.LORA, Support.LORA, Support.VECTOR, Support.VECTOR);

    public GloraStructure {
        check(a, A_B, "A");
        check(b, A_B, "B");
        check(c, C, "C");
        check(d, D_E, "D");
        check(e, D_E, "E");
    }

    private static void check(Support s, List<Support> allowed, String term) {
        if (s == null || !allowed.contains(s)) {
            throw new IllegalArgumentException("GLoRA term " + term + " cannot be " + (s == null ? "null" : "'" + s.key() + "'"));
        }
    }

    /** PEFT's three settings: A and B share {@code config_A_B}, D and E share {@code config_D_E}. */
    public static GloraStructure of(String configAB, String configC, String configDE) {
        Support ab = Support.parse(configAB, "config_A_B", A_B);
        Support de = Support.parse(configDE, "config_D_E", D_E);
        return new GloraStructure(ab, ab, Support.parse(configC, "config_C", C), de, de);
    }

    /** Parses {@code "lora,vector,none,constant,none"} (A, B, C, D, E). */
    public static GloraStructure parse(String s) {
        String[] p = s.trim().split("\\s*,\\s*");
        if (p.length != 5) {
            throw new IllegalArgumentException("a GLoRA structure names the support of A, B, C, D and E, comma-separated "
                    + "(e.g. lora,lora,lora,constant,constant); got '" + s.trim() + "'");
        }
        return new GloraStructure(Support.parse(p[0], "A", A_B), Support.parse(p[1], "B", A_B), Support.parse(p[2], "C", C),
                Support.parse(p[3], "D", D_E), Support.parse(p[4], "E", D_E));
    }

    /** Whether PEFT's three settings can say it (A = B and D = E). */
    public boolean uniformPairs() { return a == b && d == e; }

    /** Trainable scalars this structure actually uses on an [in → out] layer of rank r (the tensors hold more: {@link GloraMethod}). */
    public long effectiveCount(int in, int out, int r) {
        return matrixCount(a, in, out, r) + matrixCount(b, in, out, r)
                + switch (c) { case LORA -> (long) r * (in + 1); case VECTOR -> in; default -> 0; }
                + vectorCount(d, out) + vectorCount(e, out);
    }

    private static long matrixCount(Support s, int in, int out, int r) {
        return switch (s) { case LORA -> (long) r * (in + out); case VECTOR -> out; case CONSTANT -> 1; case NONE -> 0; };
    }

    private static long vectorCount(Support s, int out) {
        return switch (s) { case VECTOR -> out; case CONSTANT -> 1; default -> 0; };
    }

    /** Whether this structure adds a bias term on a layer without one (E or C is not none). */
    public boolean addsBias() { return e != Support.NONE || c != Support.NONE; }

    @Override public String toString() { return a.key() + "," + b.key() + "," + c.key() + "," + d.key() + "," + e.key(); }

    /** Every structure of the search space (4·4·3·3·3 = 432), in a fixed order. */
    public static List<GloraStructure> all() {
        List<GloraStructure> l = new ArrayList<>();
        for (Support x : A_B) for (Support y : A_B) for (Support z : C) for (Support u : D_E) for (Support v : D_E) {
            l.add(new GloraStructure(x, y, z, u, v));
        }
        return l;
    }

    /** One structure drawn uniformly from the search space. */
    public static GloraStructure random(Random rng) {
        return new GloraStructure(A_B.get(rng.nextInt(4)), A_B.get(rng.nextInt(4)), C.get(rng.nextInt(3)),
                D_E.get(rng.nextInt(3)), D_E.get(rng.nextInt(3)));
    }

    /** This structure with one term (0..4 = A..E) redrawn to a different support. */
    public GloraStructure mutate(Random rng) {
        int term = rng.nextInt(5);
        List<Support> allowed = term < 2 ? A_B : term == 2 ? C : D_E;
        Support[] s = {a, b, c, d, e};
        Support now = s[term];
        Support next;
        do next = allowed.get(rng.nextInt(allowed.size())); while (next == now);
        s[term] = next;
        return new GloraStructure(s[0], s[1], s[2], s[3], s[4]);
    }

    // ---- per-layer structures in a config ------------------------------------------------------

    /**
     * Parses the {@code layer_structures} setting: {@code module=A,B,C,D,E} entries separated by {@code ;}, each
     * module matched as targets are (exact name or dotted suffix, or {@code re:}); empty means none.
     */
    public static Map<String, GloraStructure> parseLayers(String setting) {
        Map<String, GloraStructure> m = new LinkedHashMap<>();
        String v = setting == null ? "" : setting.trim();
        if (v.isEmpty()) return m;
        for (String entry : v.split(";")) {
            if (entry.isBlank()) continue;
            int eq = entry.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("layer_structures entry '" + entry.trim() + "' must be module=A,B,C,D,E "
                        + "(e.g. attn.c_attn=lora,vector,none,constant,none)");
            }
            String module = entry.substring(0, eq).trim();
            if (m.put(module, parse(entry.substring(eq + 1))) != null) {
                throw new IllegalArgumentException("layer_structures names module '" + module + "' twice");
            }
        }
        return m;
    }

    /** Writes what {@link #parseLayers} reads. */
    public static String formatLayers(Map<String, GloraStructure> layers) {
        StringBuilder sb = new StringBuilder();
        layers.forEach((m, s) -> {
            if (sb.length() > 0) sb.append("; ");
            sb.append(m).append('=').append(s);
        });
        return sb.toString();
    }

    /** The structure of {@code module}: the first matching entry of {@code layers}, else {@code uniform}. */
    public static GloraStructure forModule(String module, Map<String, GloraStructure> layers, GloraStructure uniform) {
        for (Map.Entry<String, GloraStructure> e : layers.entrySet()) {
            if (TargetMatcher.matches(module, e.getKey())) return e.getValue();
        }
        return uniform;
    }
}
