package io.mlkv.storage.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class PoliciesTest {
    @Test
    void policiesAreChosenByNameCaseInsensitively() {
        assertEquals("lru", Policies.create("LRU", 10).name());
        assertEquals("lfu", Policies.create("lfu", 10).name());
        assertEquals("tinylfu", Policies.create("TinyLFU", 10).name());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Policies.create("arc", 10));
        assertTrue(e.getMessage().contains("arc") && e.getMessage().contains("tinylfu"), e.getMessage());
    }

    @Test
    void sketchEstimatesGrowWithAccessesAndNeverUnderCount() {
        FrequencySketch s = new FrequencySketch(1 << 16);
        long[] keys = new long[1000];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = i * 7919L;
        }
        for (int round = 1; round <= 5; round++) {
            s.incrementAll(keys, 0, keys.length);
            for (long k : keys) {
                assertTrue(s.frequency(k) >= round, "key " + k + " estimated " + s.frequency(k) + " < " + round);
            }
        }
        int unseenAboveZero = 0;
        for (long k = 1L << 40; k < (1L << 40) + 1000; k++) {
            unseenAboveZero += s.frequency(k) > 0 ? 1 : 0;
        }
        assertTrue(unseenAboveZero < 50, unseenAboveZero + " of 1000 unseen keys look seen");
    }

    /** One key's record counts as a batch of that key does: tinylfu admits on it, the same way. */
    @Test
    void aSingleKeysAccessCountsAsABatchOfItDoes() {
        EvictionPolicy one = Policies.create("tinylfu", 1 << 10);
        EvictionPolicy batch = Policies.create("tinylfu", 1 << 10);
        for (int i = 0; i < 5; i++) {
            one.recordAccess(7);
            batch.recordAccesses(new long[] {7}, 0, 1);
        }
        one.recordAccess(9);
        batch.recordAccesses(new long[] {9}, 0, 1);
        assertTrue(one.admit(7, 9), "five accesses of 7 beat one of 9");
        assertTrue(!one.admit(9, 7), "and not the other way");
        assertEquals(batch.admit(7, 9), one.admit(7, 9));
        assertEquals(batch.admit(9, 7), one.admit(9, 7));
        for (String name : new String[] {"lru", "lfu"}) {
            Policies.create(name, 10).recordAccess(7); // a no-op there, as recordAccesses is
        }
    }

    @Test
    void sketchCountersSaturateAndAgeAway() {
        FrequencySketch s = new FrequencySketch(16);
        long[] hot = {42};
        for (int i = 0; i < 100; i++) {
            s.incrementAll(hot, 0, 1);
        }
        assertTrue(s.frequency(42) <= 15);
        int before = s.frequency(42);
        long[] others = new long[1];
        for (long k = 0; k < 2000; k++) {
            others[0] = 1000 + k;
            s.incrementAll(others, 0, 1);
        }
        assertTrue(s.frequency(42) < before, "old popularity should fade: " + s.frequency(42) + " vs " + before);
    }
}
