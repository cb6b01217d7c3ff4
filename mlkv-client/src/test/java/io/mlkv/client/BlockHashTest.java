package io.mlkv.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class BlockHashTest {
    private static int[] range(int from, int to) {
        int[] t = new int[to - from];
        Arrays.setAll(t, i -> from + i);
        return t;
    }

    /** Vectors computed by the reference xxhsum 0.8.1 ({@code xxhsum -H3}) over the documented bytes. */
    @Test
    void matchesTheReferenceImplementationOnTheDocumentedVectors() {
        long first = BlockHash.of(BlockHash.ROOT, range(0, 128), 0, 128);
        assertEquals(0x2be4082dc62ebdd4L, first);
        assertEquals(0xe1e439048a9998c4L, BlockHash.of(first, range(128, 256), 0, 128));
        assertEquals(0x2dae2d9ff1e44dbdL, BlockHash.of(0, new int[] {-1, -1, -1, -1}, 0, 4), "tokens are unsigned 32-bit");
        assertEquals(0x6c5b964d9473ac1aL, BlockHash.partitionId("default"));
    }

    @Test
    void promptHashesChainAndIgnoreATrailingPartialBlock() {
        int[] prompt = range(0, 256 + 100);
        long[] hashes = BlockHash.ofPrompt(prompt, 128);
        assertEquals(2, hashes.length);
        assertEquals(BlockHash.of(BlockHash.ROOT, prompt, 0, 128), hashes[0]);
        assertEquals(BlockHash.of(hashes[0], prompt, 128, 128), hashes[1]);
        assertArrayEquals(hashes, BlockHash.ofPrompt(Arrays.copyOf(prompt, 256), 128));
    }

    @Test
    void aDifferentEarlierBlockChangesEveryLaterHash() {
        int[] a = range(0, 384);
        int[] b = a.clone();
        b[5] = 99_999;
        long[] ha = BlockHash.ofPrompt(a, 128);
        long[] hb = BlockHash.ofPrompt(b, 128);
        for (int i = 0; i < 3; i++) {
            assertNotEquals(ha[i], hb[i], "block " + i);
        }
    }

    @Test
    void badArgumentsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> BlockHash.of(0, new int[10], 0, 0));
        assertThrows(IllegalArgumentException.class, () -> BlockHash.of(0, new int[10], 5, 8));
        assertThrows(IllegalArgumentException.class, () -> BlockHash.ofPrompt(new int[10], -1));
    }
}
