package io.sparklora.api;

import io.sparklora.adapters.AdapterConfig;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Two VeRA adapters in one set, each with its own shared random projections (projection_prng_key 1 and 2): a mixed
 * batch gives each row what its adapter gives alone, so one adapter's shared pair never stands in for the other's.
 */
class VeraPairTest {
    @Test
    void twoVeraAdaptersWithTheirOwnProjectionsMixAsAlone(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path v1 = AdapterSetTest.adapter(base, tmp.resolve("v1"), AdapterConfig.of("vera", 16, 8, List.of("c_attn")).withOption("projection_prng_key", "1"), 1);
        Path v2 = AdapterSetTest.adapter(base, tmp.resolve("v2"), AdapterConfig.of("vera", 16, 8, List.of("c_attn")).withOption("projection_prng_key", "2"), 2);
        AdapterSet alone1 = AdapterSet.on(new Configuration(), base.toString()).add("v1", v1.toString());
        AdapterSet alone2 = AdapterSet.on(new Configuration(), base.toString()).add("v2", v2.toString());
        AdapterSet both = AdapterSet.on(new Configuration(), base.toString()).add("v1", v1.toString()).add("v2", v2.toString());
        String t = "the river runs to the sea";
        double[] mixed = both.meanLoss(List.of(t, t, t), List.of("v1", "v2", AdapterSet.BASE));
        double a1 = alone1.meanLoss(List.of(t), List.of("v1"))[0], a2 = alone2.meanLoss(List.of(t), List.of("v2"))[0];
        assertEquals(a1, mixed[0], 1e-5);
        assertEquals(a2, mixed[1], 1e-5);
        assertNotEquals(a1, a2, 1e-5, "the two adapters differ, so the comparison means something");
    }
}
