package io.sparklora.optim;

import io.sparklora.model.Parameter;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;

/**
 * A named set of parameters that share a learning rate and a weight decay, like a PyTorch param group.
 *
 * <p>The group's peak learning rate is either a multiple of the optimizer's base rate or an absolute
 * value; the schedule factor scales it either way. LoRA+ uses a multiplier: {@code lora_B} gets
 * {@code lr × ratio}.
 */
public final class ParamGroup {
    private final String name;
    private final List<Parameter> params;
    private final double lrMultiplier;
    private final OptionalDouble absoluteLr;
    private final double weightDecay;

    private ParamGroup(String name, List<Parameter> params, double lrMultiplier, OptionalDouble absoluteLr,
                       double weightDecay) {
        if (!(lrMultiplier >= 0) || Double.isInfinite(lrMultiplier)) {
            throw new IllegalArgumentException("group " + name + ": lr multiplier must be finite and >= 0, got " + lrMultiplier);
        }
        if (absoluteLr.isPresent() && (!(absoluteLr.getAsDouble() >= 0) || Double.isInfinite(absoluteLr.getAsDouble()))) {
            throw new IllegalArgumentException("group " + name + ": lr must be finite and >= 0, got " + absoluteLr.getAsDouble());
        }
        if (!(weightDecay >= 0) || Double.isInfinite(weightDecay)) {
            throw new IllegalArgumentException("group " + name + ": weight decay must be finite and >= 0, got " + weightDecay);
        }
        this.name = name;
        this.params = List.copyOf(params);
        this.lrMultiplier = lrMultiplier;
        this.absoluteLr = absoluteLr;
        this.weightDecay = weightDecay;
    }

    /** A group whose peak lr is {@code baseLr × lrMultiplier}. */
    public static ParamGroup withLrMultiplier(String name, List<Parameter> params, double lrMultiplier, double weightDecay) {
        return new ParamGroup(name, params, lrMultiplier, OptionalDouble.empty(), weightDecay);
    }

    /** A group whose peak lr is {@code lr}, whatever the optimizer's base rate. */
    public static ParamGroup withAbsoluteLr(String name, List<Parameter> params, double lr, double weightDecay) {
        return new ParamGroup(name, params, 1.0, OptionalDouble.of(lr), weightDecay);
    }

    /**
     * Groups the trainable parameters by their {@link Parameter#group()} tag, in order of first appearance.
     * Frozen parameters are left out entirely, so they get neither a group nor optimizer state.
     * Tags without an entry in {@code overrides} use the base lr and {@code defaultWeightDecay};
     * overrides for tags that no trainable parameter carries are ignored (e.g. LoRA+ settings on a model
     * without B matrices).
     */
    public static List<ParamGroup> byTag(List<Parameter> params, double defaultWeightDecay, Map<String, Settings> overrides) {
        Map<String, List<Parameter>> byTag = new LinkedHashMap<>();
        for (Parameter p : params) {
            if (!p.trainable()) continue;
            byTag.computeIfAbsent(p.group(), k -> new ArrayList<>()).add(p);
        }
        List<ParamGroup> groups = new ArrayList<>(byTag.size());
        for (Map.Entry<String, List<Parameter>> e : byTag.entrySet()) {
            Settings s = overrides.getOrDefault(e.getKey(), Settings.DEFAULT);
            double wd = s.weightDecay().orElse(defaultWeightDecay);
            groups.add(new ParamGroup(e.getKey(), e.getValue(), s.lrMultiplier(), s.absoluteLr(), wd));
        }
        return Collections.unmodifiableList(groups);
    }

    /** {@link #byTag(List, double, Map)} without overrides. */
    public static List<ParamGroup> byTag(List<Parameter> params, double defaultWeightDecay) {
        return byTag(params, defaultWeightDecay, Map.of());
    }

    public String name() { return name; }
    public List<Parameter> params() { return params; }
    public double lrMultiplier() { return lrMultiplier; }
    public OptionalDouble absoluteLr() { return absoluteLr; }
    public double weightDecay() { return weightDecay; }

    /** The peak (unscheduled) learning rate of this group given the optimizer's base rate. */
    public double peakLr(double baseLr) {
        return absoluteLr.isPresent() ? absoluteLr.getAsDouble() : baseLr * lrMultiplier;
    }

    @Override public String toString() {
        return "ParamGroup[" + name + ", " + params.size() + " params, "
                + (absoluteLr.isPresent() ? "lr=" + absoluteLr.getAsDouble() : "lr×" + lrMultiplier)
                + ", wd=" + weightDecay + "]";
    }

    /**
     * Per-tag overrides for {@link #byTag}. Unset weight decay falls back to the default; an absolute lr,
     * when set, wins over the multiplier.
     */
    public record Settings(double lrMultiplier, OptionalDouble absoluteLr, OptionalDouble weightDecay) {
        public static final Settings DEFAULT = new Settings(1.0, OptionalDouble.empty(), OptionalDouble.empty());

        public static Settings lrTimes(double multiplier) {
            return new Settings(multiplier, OptionalDouble.empty(), OptionalDouble.empty());
        }

        public static Settings fixedLr(double lr) {
            return new Settings(1.0, OptionalDouble.of(lr), OptionalDouble.empty());
        }

        public static Settings onlyWeightDecay(double weightDecay) {
            return new Settings(1.0, OptionalDouble.empty(), OptionalDouble.of(weightDecay));
        }

        public Settings withWeightDecay(double weightDecay) {
            return new Settings(lrMultiplier, absoluteLr, OptionalDouble.of(weightDecay));
        }
    }
}
