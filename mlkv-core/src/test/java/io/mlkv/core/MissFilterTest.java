package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class MissFilterTest {
    @Test
    void aKeyIsAdmittedOnItsSecondMissOnly() {
        MissFilter f = new MissFilter(1 << 16);
        assertEquals(1L << 19, f.size(), "eight bits per entry");
        assertFalse(f.missedBefore(42));
        assertTrue(f.missedBefore(42));
        assertTrue(f.missedBefore(42), "stays admitted until the filter clears");
        int remembered = 0;
        for (long k = 1_000_000; k < 1_000_100; k++) {
            f.missedBefore(k);
        }
        for (long k = 1_000_000; k < 1_000_100; k++) {
            remembered += f.missedBefore(k) ? 1 : 0;
        }
        assertEquals(100, remembered, "recent misses are remembered");
    }

    @Test
    void keysSeenOnceAreMostlyRefusedAndTheFilterForgets() {
        long seed = System.nanoTime();
        SplittableRandom rnd = new SplittableRandom(seed);
        MissFilter f = new MissFilter(1 << 12);
        for (long k = 1_000_000; k < 1_000_100; k++) {
            f.missedBefore(k);
        }
        int falsePositives = 0;
        int n = (int) (f.size() / 4) - 200; // stay below the clear
        for (int i = 0; i < n; i++) {
            falsePositives += f.missedBefore(rnd.nextLong()) ? 1 : 0;
        }
        assertTrue(falsePositives < n / 4, "first misses admitted: " + falsePositives + " of " + n + " (seed " + seed + ")");
        for (long i = 0; i < f.size() / 2; i++) {
            f.missedBefore(rnd.nextLong()); // at least a quarter of the bits newly set: the filter clears
        }
        int kept = 0;
        for (long k = 1_000_000; k < 1_000_100; k++) {
            kept += f.missedBefore(k) ? 1 : 0;
        }
        assertTrue(kept < 60, "old misses are forgotten after a clear: " + kept + " of 100 still set (seed " + seed + ")");
    }
}
