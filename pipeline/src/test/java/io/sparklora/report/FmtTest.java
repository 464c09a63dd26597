package io.sparklora.report;

import org.junit.jupiter.api.Test;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;

class FmtTest {

    @Test
    void thousandsSeparatorsWhateverTheDefaultLocale() {
        Locale before = Locale.getDefault();
        try {
            Locale.setDefault(Locale.GERMANY);
            assertEquals("70,000", Fmt.integer(70000));
            assertEquals("1,234,567.89", Fmt.fixed(1234567.891, 2));
            assertEquals("2,500.5", Fmt.number(2500.5));
        } finally {
            Locale.setDefault(before);
        }
    }

    @Test
    void sensiblePrecision() {
        assertEquals("600,000", Fmt.number(600000));
        assertEquals("4.79", Fmt.number(4.79));
        assertEquals("120.3", Fmt.number(120.3));
        assertEquals("0.003", Fmt.number(0.003));
        assertEquals("0.003123", Fmt.number(0.0031234));
        assertEquals("1.5E-6", Fmt.number(1.5e-6));
        assertEquals("0", Fmt.fixed(-0.0001, 2).replace("0.00", "0"));
        assertEquals("0.00", Fmt.fixed(-0.0001, 2), "no negative zero");
        assertEquals("NaN", Fmt.number(Double.NaN));
        assertEquals("∞", Fmt.fixed(Double.POSITIVE_INFINITY, 2));
    }

    @Test
    void percentages() {
        assertEquals("46.0%", Fmt.percent(0.46));
        assertEquals("10.5%", Fmt.percent(73728.0 / 700000));
        assertEquals("2.36%", Fmt.percent(0.02364));
        assertEquals("0.236%", Fmt.percent(0.002364));
        assertEquals("100.0%", Fmt.percent(1));
        assertEquals("+3.8%", Fmt.signedPercent(125.1 / 120.5 - 1));
        assertEquals("-80.0%", Fmt.signedPercent(120.3 / 600.1 - 1));
    }

    @Test
    void bytes() {
        assertEquals("512 B", Fmt.bytes(512));
        assertEquals("288 KiB", Fmt.bytes(294912));
        assertEquals("2.67 MiB", Fmt.bytes(2800000));
        assertEquals("1.00 MiB", Fmt.bytes(1024 * 1024 - 10), "never 1,024 KiB");
        assertEquals("475 MiB", Fmt.bytes(498_000_000));
        assertEquals("12.5 GiB", Fmt.bytes(12.5 * 1024 * 1024 * 1024));
    }

    @Test
    void ratiosAndDurations() {
        assertEquals("9.5×", Fmt.times(2800000.0 / 294912));
        assertEquals("423×", Fmt.times(423.2));
        assertEquals("0.25 s", Fmt.duration(0.25));
        assertEquals("8.1 s", Fmt.duration(8.1));
        assertEquals("2 min 30 s", Fmt.duration(150.2));
        assertEquals("1 min 00 s", Fmt.duration(59.97));
        assertEquals("1 h 02 min 05 s", Fmt.duration(3725));
    }
}
