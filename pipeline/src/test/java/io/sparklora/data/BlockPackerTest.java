package io.sparklora.data;

import io.sparklora.train.TokenBlocks;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class BlockPackerTest {

    @Test
    void givesExactlyTheBlocksOfTokenBlocksPack() throws IOException {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 200; trial++) {
            int seqLen = 2 + rnd.nextInt(12);
            int nDocs = rnd.nextInt(8);
            List<int[]> docs = new ArrayList<>();
            List<boolean[]> masks = new ArrayList<>();
            for (int d = 0; d < nDocs; d++) {
                // lengths around seqLen, so blocks end exactly at document ends too
                int[] doc = rnd.ints(rnd.nextInt(2 * seqLen + 2), 0, 50).toArray();
                docs.add(doc);
                boolean[] m = null;
                if (rnd.nextBoolean()) {
                    m = new boolean[doc.length];
                    for (int i = 0; i < m.length; i++) m[i] = rnd.nextBoolean();
                }
                masks.add(m);
            }
            TokenBlocks expected = TokenBlocks.pack(docs, masks, 99, seqLen, 98);
            List<int[]> got = new ArrayList<>();
            List<boolean[]> gotMasks = new ArrayList<>();
            BlockPacker packer = new BlockPacker(seqLen, 99, 98, (t, m) -> {
                got.add(t.clone());
                gotMasks.add(m.clone());
            });
            for (int d = 0; d < nDocs; d++) packer.add(docs.get(d), masks.get(d));
            packer.finish();
            assertEquals(expected.size(), got.size(), "trial " + trial);
            long targets = 0;
            for (int b = 0; b < got.size(); b++) {
                assertArrayEquals(expected.block(b), got.get(b), "trial " + trial + " block " + b);
                assertArrayEquals(expected.mask(b), gotMasks.get(b), "trial " + trial + " block " + b);
                for (int i = 1; i <= seqLen; i++) if (expected.mask(b)[i]) targets++;
            }
            assertEquals(got.size(), packer.blocks());
            assertEquals(nDocs, packer.documents());
            assertEquals(docs.stream().mapToLong(d -> d.length + 1).sum(), packer.tokens());
            assertEquals(targets, packer.targets());
        }
    }
}
