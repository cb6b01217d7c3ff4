package io.mlkv.storage.dram;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.ReservedKeys;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The known-keys table: lossy, never wrong. Seeds are printed on failure. */
class KnownKeysTest {
    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    @Test
    void addedKeysAreKnownUntilRemoved() {
        try (KnownKeys k = new KnownKeys(4096)) {
            for (long key = -50; key <= 50; key++) {
                k.add(key);
            }
            for (long key = -50; key <= 50; key++) {
                assertTrue(k.contains(key), "key " + key);
            }
            assertFalse(k.contains(1_000), "never added");
            k.remove(7);
            assertFalse(k.contains(7), "removed");
            assertTrue(k.contains(8));
            k.add(7);
            assertTrue(k.contains(7), "added again");
            assertTrue(k.contains(0), "key 0 is a key like any other");
            assertFalse(k.contains(ReservedKeys.EMPTY), "the empty marker is never a known key");
            k.add(ReservedKeys.EMPTY);
            assertFalse(k.contains(ReservedKeys.EMPTY), "nor becomes one");
        }
    }

    @Test
    void sizesAreAPowerOfTwoWithinBounds() {
        long[][] cases = {{0, 1024}, {1500, 1024}, {1600, 2048}, {5000, 4096}, {6200, 8192}};
        for (long[] c : cases) {
            try (KnownKeys k = new KnownKeys(c[0])) {
                assertEquals(c[1], k.slots(), "room for " + c[0]);
            }
        }
        assertEquals(272, KnownKeys.slotsFor(64, 64), "an eighth of a DRAM entry's bytes, 8 bytes a key");
    }

    @Test
    void nativeMemoryIsTakenAsChunksAreFirstWritten() {
        try (KnownKeys k = new KnownKeys(1L << 22)) {
            assertEquals(0, k.bytes(), "nothing before the first key");
            assertFalse(k.contains(42), "an unwritten chunk knows no key");
            k.remove(42);
            assertEquals(0, k.bytes(), "a removal writes nothing");
            for (long key = 0; key < 8; key++) {
                k.add(key);
            }
            assertTrue(k.bytes() > 0 && k.bytes() <= 8L << 20, "at most one 1 MiB chunk a key, was " + k.bytes());
            for (long key = 0; key < 8; key++) {
                assertTrue(k.contains(key), "key " + key);
            }
        }
    }

    /**
     * Far more keys than slots, added, removed and added again at random: every key the table
     * claims to know is in the model set (nothing removed or never added is ever claimed), and a
     * table large enough for the keys keeps most of them.
     */
    @Test
    void neverClaimsAKeyItWasNotGivenOrThatWasRemoved() {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        Set<Long> model = new HashSet<>();
        try (KnownKeys k = new KnownKeys(1024)) {
            for (int op = 0; op < 200_000; op++) {
                long key = r.nextInt(20_000) - 10_000;
                if (r.nextInt(4) == 0) {
                    k.remove(key);
                    model.remove(key);
                } else {
                    k.add(key);
                    model.add(key);
                }
                long probe = r.nextInt(20_000) - 10_000;
                if (k.contains(probe)) {
                    assertTrue(model.contains(probe), "claimed key " + probe + " that is not in the set, op " + op
                            + ", seed " + seed);
                }
            }
        }
        try (KnownKeys roomy = new KnownKeys(6144)) {
            for (long key = 1; key <= 2000; key++) {
                roomy.add(key * 7919);
            }
            int kept = 0;
            for (long key = 1; key <= 2000; key++) {
                kept += roomy.contains(key * 7919) ? 1 : 0;
            }
            assertTrue(kept > 1800, "kept " + kept + " of 2,000 keys in " + roomy.slots() + " slots, seed " + seed);
        }
    }
}
