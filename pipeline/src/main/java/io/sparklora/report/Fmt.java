package io.sparklora.report;

import java.math.RoundingMode;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.Locale;

/**
 * Number formatting for the report: thousands separators and a decimal point as in
 * {@link Locale#ROOT} ({@code 1,234,567.89}), whatever the machine's locale, and a precision chosen
 * for what the number is. Non-finite values print as {@code NaN}, {@code ∞} and {@code -∞}.
 */
public final class Fmt {

    private static final DecimalFormatSymbols SYMBOLS = DecimalFormatSymbols.getInstance(Locale.ROOT);
    private static final String[] BYTE_UNITS = {"KiB", "MiB", "GiB", "TiB", "PiB"};

    private Fmt() {
    }

    /** A fixed number of decimals with thousands separators: {@code fixed(1234.5, 2)} is {@code 1,234.50}. */
    public static String fixed(double value, int decimals) {
        if (!Double.isFinite(value)) return nonFinite(value);
        DecimalFormat f = new DecimalFormat(decimals > 0 ? "#,##0." + "0".repeat(decimals) : "#,##0", SYMBOLS);
        f.setRoundingMode(RoundingMode.HALF_UP);
        String s = f.format(value);
        return s.matches("-0(\\.0*)?") ? s.substring(1) : s; // no "-0.00"
    }

    /** A count, rounded to a whole number: {@code 70,000}. */
    public static String integer(double value) {
        return fixed(value, 0);
    }

    /**
     * A measurement of unknown kind with about four significant digits: whole numbers keep all their
     * digits ({@code 600,000}), others get fewer decimals the larger they are ({@code 2,500.5},
     * {@code 4.79}, {@code 0.003}); tiny and huge values use scientific notation ({@code 1.5E-6}).
     */
    public static String number(double value) {
        if (!Double.isFinite(value)) return nonFinite(value);
        double a = Math.abs(value);
        if (value == Math.rint(value) && a < 1e15) return fixed(value, 0);
        if (a >= 1e15 || a < 1e-4) {
            DecimalFormat f = new DecimalFormat("0.###E0", SYMBOLS);
            f.setRoundingMode(RoundingMode.HALF_UP);
            return f.format(value);
        }
        int decimals = a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : 3 - (int) Math.floor(Math.log10(a));
        DecimalFormat f = new DecimalFormat("#,##0." + "#".repeat(decimals), SYMBOLS);
        f.setRoundingMode(RoundingMode.HALF_UP);
        return f.format(value);
    }

    /**
     * A fraction as a percentage, with more decimals the smaller it is: {@code 0.46} is {@code 46.0%},
     * {@code 0.1053} is {@code 10.5%}, {@code 0.02364} is {@code 2.36%}, {@code 0.002364} is {@code 0.236%}.
     */
    public static String percent(double fraction) {
        if (!Double.isFinite(fraction)) return nonFinite(fraction) + "%";
        double p = Math.abs(fraction * 100);
        int decimals = p == 0 || p >= 10 ? 1 : p >= 1 ? 2 : p >= 0.01 ? 3 : 4;
        return fixed(fraction * 100, decimals) + "%";
    }

    /** A relative change, always signed, one decimal unless it is under 1%: {@code +3.8%}, {@code -80.0%}, {@code +0.05%}. */
    public static String signedPercent(double fraction) {
        if (!Double.isFinite(fraction)) return nonFinite(fraction) + "%";
        double p = Math.abs(fraction * 100);
        String s = fixed(fraction * 100, p == 0 || p >= 0.95 ? 1 : p >= 0.0995 ? 2 : 3) + "%";
        return s.startsWith("-") || s.matches("0\\.0+%") ? s : "+" + s;
    }

    /** A byte count in binary units with three significant digits: {@code 512 B}, {@code 288 KiB}, {@code 2.67 MiB}. */
    public static String bytes(double bytes) {
        if (!Double.isFinite(bytes)) return nonFinite(bytes) + " B";
        if (Math.abs(bytes) < 1024) return fixed(bytes, 0) + " B";
        double v = bytes;
        int unit = -1;
        while (Math.abs(v) >= 1024 && unit < BYTE_UNITS.length - 1) {
            v /= 1024;
            unit++;
        }
        // 1023.96 KiB would print as "1,024 KiB": move up a unit instead.
        if (Math.abs(v) >= 999.5 && unit < BYTE_UNITS.length - 1) {
            v /= 1024;
            unit++;
        }
        double a = Math.abs(v);
        int decimals = a < 9.995 ? 2 : a < 99.95 ? 1 : 0;
        return fixed(v, decimals) + " " + BYTE_UNITS[unit];
    }

    /** How many times larger: {@code 9.5×}, {@code 421×}. */
    public static String times(double ratio) {
        if (!Double.isFinite(ratio)) return nonFinite(ratio) + "×";
        return fixed(ratio, Math.abs(ratio) < 9.95 ? 1 : 0) + "×";
    }

    /** A duration: {@code 0.25 s}, {@code 8.1 s}, {@code 2 min 30 s}, {@code 1 h 02 min 05 s}. */
    public static String duration(double seconds) {
        if (!Double.isFinite(seconds)) return nonFinite(seconds) + " s";
        if (seconds < 0) return fixed(seconds, 1) + " s";
        if (seconds < 59.95) return fixed(seconds, seconds < 0.995 ? 2 : 1) + " s";
        long total = Math.round(seconds);
        long h = total / 3600, m = total % 3600 / 60, s = total % 60;
        if (h == 0) return m + " min " + (s < 10 ? "0" : "") + s + " s";
        return fixed(h, 0) + " h " + (m < 10 ? "0" : "") + m + " min " + (s < 10 ? "0" : "") + s + " s";
    }

    private static String nonFinite(double value) {
        return Double.isNaN(value) ? "NaN" : value > 0 ? "∞" : "-∞";
    }
}
