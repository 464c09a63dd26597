package io.sparklora.privacy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The accountant against an independent implementation of the same analysis: {@code bench/reference/rdp_reference.py}
 * integrates the Rényi divergence of the sampled Gaussian mixture numerically (60-digit arithmetic) instead of using
 * the series, and converts to ε as Opacus does; its output is the fixture {@code privacy/rdp_reference.json}.
 */
class RdpAccountantTest {
    private static JsonNode fixture() throws Exception {
        try (InputStream in = RdpAccountantTest.class.getResourceAsStream("/privacy/rdp_reference.json")) {
            return new ObjectMapper().readTree(in);
        }
    }

    @Test
    void rdpAtIntegerAndFractionalOrdersEqualsTheNumericalIntegral() throws Exception {
        for (JsonNode c : fixture().get("rdp")) {
            double q = c.get("q").asDouble(), s = c.get("sigma").asDouble(), a = c.get("order").asDouble();
            double expected = c.get("rdp").asDouble(), got = SampledGaussianRdp.rdp(q, s, a);
            assertEquals(expected, got, 1e-6 * Math.abs(expected), "q=" + q + " sigma=" + s + " order=" + a);
        }
    }

    @Test
    void epsilonAndBestOrderEqualTheReferenceToOneInAThousand() throws Exception {
        for (JsonNode c : fixture().get("epsilon")) {
            double q = c.get("q").asDouble(), s = c.get("sigma").asDouble(), d = c.get("delta").asDouble();
            long n = c.get("steps").asLong();
            RdpAccountant.Spent sp = RdpAccountant.epsilon(q, s, n, d);
            double expected = c.get("epsilon").asDouble();
            assertEquals(expected, sp.epsilon(), 1e-3 * expected, "q=" + q + " sigma=" + s + " steps=" + n);
            assertEquals(c.get("best_order").asDouble(), sp.order(), 1e-9);
        }
    }

    @Test
    void closedFormsAndLimits() {
        // no subsampling: the Gaussian mechanism, α/(2σ²)
        assertEquals(3.0 / (2 * 0.25), SampledGaussianRdp.rdp(1.0, 0.5, 3.0), 1e-12);
        // order 2: log(1 + q²(e^(1/σ²) − 1))
        double q = 0.03, s = 1.3;
        assertEquals(Math.log1p(q * q * Math.expm1(1 / (s * s))), SampledGaussianRdp.rdp(q, s, 2), 1e-12);
        assertEquals(0.0, SampledGaussianRdp.rdp(0, 1, 5));
        assertEquals(Double.POSITIVE_INFINITY, SampledGaussianRdp.rdp(0.1, 0, 5));
        assertEquals(Double.POSITIVE_INFINITY, RdpAccountant.epsilon(0.1, 0, 10, 1e-5).epsilon(), "no noise: no privacy");
        // log erfc where erfc underflows: the continued fraction against the asymptotic series
        double x = 30;
        double asym = -x * x - Math.log(x * Math.sqrt(Math.PI)) + Math.log1p(-1 / (2 * x * x) + 3 / (4 * Math.pow(x, 4)) - 15 / (8 * Math.pow(x, 6)));
        assertEquals(asym, SampledGaussianRdp.logErfc(x), 1e-9);
        assertEquals(Math.log(2), SampledGaussianRdp.logErfc(-40), 1e-12);
        // ε grows with steps and falls with noise
        assertTrue(RdpAccountant.epsilon(0.01, 1.0, 2000, 1e-5).epsilon() > RdpAccountant.epsilon(0.01, 1.0, 1000, 1e-5).epsilon());
        assertTrue(RdpAccountant.epsilon(0.01, 1.5, 1000, 1e-5).epsilon() < RdpAccountant.epsilon(0.01, 1.0, 1000, 1e-5).epsilon());
    }

    @Test
    void theNoiseForATargetEpsilonReachesItAndNoLess() {
        double sigma = RdpAccountant.noiseFor(2.0, 0.01, 1000, 1e-5);
        assertTrue(RdpAccountant.epsilon(0.01, sigma, 1000, 1e-5).epsilon() <= 2.0);
        assertTrue(RdpAccountant.epsilon(0.01, sigma * (1 - 1e-4), 1000, 1e-5).epsilon() > 2.0);
    }

    @Test
    void anAccountantAddsUpRoundsAndResumesFromItsHistory() {
        RdpAccountant a = new RdpAccountant();
        for (int i = 0; i < 300; i++) a.step(0.02, 1.1, 1);
        a.step(0.05, 1.1, 100);
        assertEquals(400, a.steps());
        assertEquals(2, a.history().size(), "runs of one mechanism are kept as one entry");
        RdpAccountant b = RdpAccountant.of(a.history());
        assertEquals(a.spent(1e-5), b.spent(1e-5));
        double[] rdp = new double[RdpAccountant.ORDERS.length];
        for (int i = 0; i < rdp.length; i++) {
            rdp[i] = 300 * SampledGaussianRdp.rdp(0.02, 1.1, RdpAccountant.ORDERS[i]) + 100 * SampledGaussianRdp.rdp(0.05, 1.1, RdpAccountant.ORDERS[i]);
        }
        assertEquals(RdpAccountant.epsilon(rdp, 1e-5), a.spent(1e-5), "composition adds RDP order by order");
        assertEquals(151, RdpAccountant.ORDERS.length);
        assertEquals(List.of(1.1, 10.9, 12.0, 63.0), List.of(RdpAccountant.ORDERS[0], RdpAccountant.ORDERS[98], RdpAccountant.ORDERS[99], RdpAccountant.ORDERS[150]));
    }
}
