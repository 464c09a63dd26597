package io.sparklora.model;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * A {@code rope_scaling} entry of config.json, as transformers' rope initialisation functions read it
 * ({@code modeling_rope_utils}). Supported types:
 *
 * <ul>
 *   <li>{@code default}: none (also what a null or absent entry means).</li>
 *   <li>{@code linear}: positions divided by {@code factor} (inv_freq / factor).</li>
 *   <li>{@code dynamic}: NTK-aware; when a sequence of T positions exceeds {@code original} (the config's
 *       {@code max_position_embeddings}), the base becomes θ·((factor·T/original) − (factor − 1))^(D/(D−2)).
 *       Stateless here: each forward uses its own T. transformers caches the longest T seen so far and keeps
 *       its frequencies until a sequence shorter than the original context comes, so after a long sequence
 *       the two differ for medium ones; for a fresh model and for equal lengths they agree.</li>
 *   <li>{@code llama3}: Llama 3.1's per-frequency rule: wavelengths above original/low_freq_factor are
 *       divided by {@code factor}, those below original/high_freq_factor kept, and those between
 *       interpolated smoothly.</li>
 * </ul>
 */
public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {

    public static final RopeScaling NONE = new RopeScaling("default", 1.0, 0, 0, 0);

    public boolean isNone() { return type.equals("default"); }

    /** Whether inv_freq for a sequence of {@code seq} positions differs from that for a shorter one (dynamic scaling past the original context). */
    public boolean dependsOnLength(int seq) { return type.equals("dynamic") && seq > originalMaxPositions; }

    /**
     * Reads {@code rope_scaling} (null or absent: none). {@code maxPositions} is the config's
     * {@code max_position_embeddings}, the original context of dynamic scaling.
     */
    public static RopeScaling fromJson(JsonNode node, int maxPositions, String where) {
        if (node == null || node.isNull()) return NONE;
        if (!node.isObject()) throw new ModelConfigException(where + ": rope_scaling must be an object or null, got " + node);
        String type = node.hasNonNull("rope_type") ? node.get("rope_type").asText() : node.path("type").asText("");
        switch (type) {
            case "default":
                return NONE;
            case "linear":
                return new RopeScaling("linear", factor(node, where), 0, 0, 0);
            case "dynamic":
                return new RopeScaling("dynamic", factor(node, where), 0, 0, maxPositions);
            case "llama3": {
                double f = factor(node, where);
                double low = number(node, "low_freq_factor", where), high = number(node, "high_freq_factor", where);
                if (!(high > low)) {
                    throw new ModelConfigException(where + ": rope_scaling (llama3) needs high_freq_factor > low_freq_factor, got "
                            + high + " and " + low);
                }
                JsonNode orig = node.get("original_max_position_embeddings");
                if (orig == null || !orig.canConvertToInt() || orig.asInt() <= 0) {
                    throw new ModelConfigException(where + ": rope_scaling (llama3) needs a positive integer original_max_position_embeddings");
                }
                return new RopeScaling("llama3", f, low, high, orig.asInt());
            }
            default:
                throw new ModelConfigException(where + ": rope_scaling type '" + type
                        + "' is not supported (supported: default, linear, dynamic, llama3)");
        }
    }

    private static double factor(JsonNode node, String where) {
        double f = number(node, "factor", where);
        if (!(f >= 1.0)) throw new ModelConfigException(where + ": rope_scaling factor must be at least 1, got " + f);
        return f;
    }

    private static double number(JsonNode node, String key, String where) {
        JsonNode n = node.get(key);
        if (n == null || !n.isNumber()) {
            throw new ModelConfigException(where + ": rope_scaling (" + node.path("rope_type").asText(node.path("type").asText())
                    + ") needs a number '" + key + "'");
        }
        return n.asDouble();
    }

    /**
     * inv_freq [D/2] for a sequence of {@code seq} positions, in float32 and in the order of operations
     * transformers uses, so that the angles (pos · inv_freq, float32) are the same numbers.
     */
    public float[] inverseFrequencies(int headDim, double theta, int seq) {
        int half = headDim / 2;
        double base = theta;
        if (type.equals("dynamic") && seq > originalMaxPositions) {
            // base · ((factor · T / original) − (factor − 1)) ^ (D / (D − 2)), evaluated in float32 as with a tensor T
            float ratio = (float) factor * seq / originalMaxPositions - (float) (factor - 1);
            float scale = (float) Math.pow(ratio, (double) headDim / (headDim - 2));
            base = (float) theta * scale;
        }
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            inv[i] = 1f / (float) Math.pow(base, exponent);
        }
        switch (type) {
            case "linear" -> { for (int i = 0; i < half; i++) inv[i] = inv[i] / (float) factor; }
            case "llama3" -> llama3(inv);
            default -> { }
        }
        return inv;
    }

    /**
     * Python's {@code scalar / tensor} is {@code tensor.reciprocal() * scalar} in torch, so the wavelength and
     * the smoothing ratio are computed as a float32 reciprocal times a float32 constant, as here.
     */
    private void llama3(float[] inv) {
        float f = (float) factor, low = (float) lowFreqFactor, span = (float) (highFreqFactor - lowFreqFactor);
        float old = originalMaxPositions;
        float lowWavelen = (float) (originalMaxPositions / lowFreqFactor), highWavelen = (float) (originalMaxPositions / highFreqFactor);
        float twoPi = (float) (2 * Math.PI);
        for (int i = 0; i < inv.length; i++) {
            float wavelen = (1f / inv[i]) * twoPi;
            float scaled = wavelen > lowWavelen ? inv[i] / f : inv[i];
            boolean medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
            if (medium) {
                float smooth = ((1f / wavelen) * old - low) / span;
                scaled = (1 - smooth) * scaled / f + smooth * scaled;
            }
            inv[i] = scaled;
        }
    }
}
