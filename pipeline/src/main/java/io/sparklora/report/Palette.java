package io.sparklora.report;

/**
 * Colours and dash patterns of the report's charts: the Okabe–Ito palette, which stays distinct for
 * the common kinds of colour blindness, and one dash pattern per series so that lines also stay
 * apart on a black-and-white print.
 */
public final class Palette {

    /** Series colours, in the order series are drawn (yellow left out: unreadable on white). */
    private static final String[] SERIES = {
        "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B",
    };

    /** Dash patterns, combined with the colours; the first series is solid. */
    private static final String[] DASHES = {"", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"};

    /** Bars of LoRA-drop layers that keep their own adapter. */
    public static final String KEPT = "#0072B2";
    /** Bars of LoRA-drop layers that share one adapter. */
    public static final String SHARED = "#E69F00";
    /** Bars whose role is not recorded. */
    public static final String NEUTRAL = "#9AA5B1";
    /** Reference lines and markers (thresholds). */
    public static final String MARK = "#D55E00";
    /** Overlay lines drawn over bars. */
    public static final String OVERLAY = "#323F4B";
    public static final String AXIS = "#3E4C59";
    public static final String GRID = "#E4E7EB";
    public static final String TEXT = "#1F2933";
    public static final String MUTED = "#52606D";

    private Palette() {
    }

    public static String seriesColour(int index) {
        return SERIES[Math.floorMod(index, SERIES.length)];
    }

    /**
     * The dash pattern of a series ({@code ""} for solid). With 8 colours and 6 patterns, the first 24
     * series all differ in colour, pattern or both.
     */
    public static String seriesDash(int index) {
        return DASHES[Math.floorMod(index, DASHES.length)];
    }
}
