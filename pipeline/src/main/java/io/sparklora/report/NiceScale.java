package io.sparklora.report;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;

/**
 * An axis scale with round tick values, by Heckbert's "nice numbers" algorithm (Graphics Gems, 1990):
 * the tick step is 1, 2 or 5 times a power of ten, and the axis runs from a multiple of the step at or
 * below the data's minimum to one at or above its maximum. For data spanning 0 to 7.3 and at most five
 * ticks, the ticks are 0, 2, 4, 6, 8.
 */
public final class NiceScale {

    private final double min;
    private final double max;
    private final double step;
    private final int decimals;

    private NiceScale(double min, double max, double step) {
        this.step = step;
        // Digits after the point that the step needs: 0.25 -> 2, 0.5 -> 1, 20 -> 0.
        this.decimals = Math.max(0, BigDecimal.valueOf(step).stripTrailingZeros().scale());
        this.min = round(min, decimals);
        this.max = round(max, decimals);
    }

    /** A scale covering {@code lo..hi} with about {@code maxTicks} ticks (at least 2). */
    public static NiceScale of(double lo, double hi, int maxTicks) {
        return build(lo, hi, maxTicks, false);
    }

    /** As {@link #of}, with a whole-number step (for step and round counters). */
    public static NiceScale ofIntegers(double lo, double hi, int maxTicks) {
        return build(lo, hi, maxTicks, true);
    }

    private static NiceScale build(double lo, double hi, int maxTicks, boolean integers) {
        if (!Double.isFinite(lo) || !Double.isFinite(hi)) {
            lo = 0;
            hi = 1;
        }
        if (lo > hi) {
            double t = lo;
            lo = hi;
            hi = t;
        }
        if (lo == hi) { // one value: widen around it so that it sits inside the axis
            double pad = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            if (integers) pad = Math.max(1, Math.ceil(pad));
            lo -= pad;
            hi += pad;
        }
        int ticks = Math.max(2, maxTicks);
        double range = niceNumber(hi - lo, false);
        double step = niceNumber(range / (ticks - 1), true);
        if (integers) step = Math.max(1, Math.round(step));
        double niceMin = Math.floor(lo / step) * step;
        double niceMax = Math.ceil(hi / step) * step;
        return new NiceScale(niceMin, niceMax, step);
    }

    /**
     * The "nice" number near {@code x}: 1, 2, 5 or 10 times a power of ten; the nearest one if
     * {@code round}, otherwise the smallest one at or above {@code x}.
     */
    public static double niceNumber(double x, boolean round) {
        if (!(x > 0) || !Double.isFinite(x)) return 1;
        int exponent = (int) Math.floor(Math.log10(x));
        BigDecimal power = BigDecimal.ONE.scaleByPowerOfTen(exponent);
        double fraction = x / power.doubleValue();
        int nice;
        if (round) {
            nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
        } else {
            nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
        }
        return power.multiply(BigDecimal.valueOf(nice)).doubleValue();
    }

    public double min() {
        return min;
    }

    public double max() {
        return max;
    }

    public double step() {
        return step;
    }

    /** The tick values from {@link #min()} to {@link #max()}, free of floating-point noise (0.3, not 0.30000000000000004). */
    public List<Double> ticks() {
        List<Double> ticks = new ArrayList<>();
        long count = Math.round((max - min) / step);
        for (long i = 0; i <= count; i++) ticks.add(round(min + i * step, decimals));
        return ticks;
    }

    /** A tick value as text, with as many decimals as the step needs and thousands separators. */
    public String label(double tick) {
        return Fmt.fixed(tick, decimals);
    }

    /** Where {@code value} falls on the axis, from 0 at {@link #min()} to 1 at {@link #max()}. */
    public double fraction(double value) {
        return max == min ? 0.5 : (value - min) / (max - min);
    }

    private static double round(double v, int decimals) {
        return BigDecimal.valueOf(v).setScale(decimals, RoundingMode.HALF_UP).doubleValue() + 0.0; // + 0.0: no -0.0
    }
}
