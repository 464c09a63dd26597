package io.sparklora.train;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** {@link TokenBlocks#targetCount} counts what the built batch counts: masked positions and the first token excluded. */
class TokenBlocksTest {
    @Test
    void targetCountEqualsTheBuiltBatchs() {
        Random r = new Random(3);
        TokenBlocks data = new TokenBlocks(12);
        for (int i = 0; i < 20; i++) {
            int[] b = new int[13];
            boolean[] m = new boolean[13];
            for (int j = 0; j < 13; j++) {
                b[j] = r.nextInt(50);
                m[j] = r.nextDouble() < 0.6;
            }
            data.add(b, m);
        }
        long total = 0;
        for (int trial = 0; trial < 30; trial++) {
            int[] idx = r.ints(1 + r.nextInt(6), 0, data.size()).toArray();
            long want = data.batch(idx).targetCount();
            assertEquals(want, data.targetCount(idx), java.util.Arrays.toString(idx));
            total += want;
        }
        assertTrue(total > 0);
        boolean[] none = new boolean[13];
        none[0] = true;     // the first token is never a target
        data.add(new int[13], none);
        assertEquals(0, data.targetCount(new int[]{data.size() - 1}));
    }
}
