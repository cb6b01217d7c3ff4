package io.mlkv.storage.dram;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class DramTierTest {
    private static final int DIM = 4;

    /** A tier of exactly one bucket, so every eviction decision is visible. */
    private static DramTier oneBucket(String policy) {
        return new DramTier(DIM, DramTier.bucketBytes(DIM), policy);
    }

    private static float[] vec(float v) {
        return new float[] {v, v, v, v};
    }

    @Test
    void addToAddsInPlaceToHeldKeysOnlyMarkingThemDirtyAndChangingTheBucket() {
        try (DramTier t = oneBucket("lru")) {
            t.put(7, vec(1.5f), 0, false, DramTier.ANY_VERSION, t.tick(), (k, v, d) -> { });
            long version = t.version(7);
            long seq = t.sequence(7);
            float[] deltas = {0.25f, -1f, 2f, 0f, 9f, 9f, 9f, 9f};
            assertTrue(t.addTo(7, deltas, 0, t.tick()));
            assertFalse(t.addTo(8, deltas, 1, t.tick()), "a key the tier lacks is left alone");
            assertFalse(t.contains(8));
            float[] out = new float[DIM];
            assertEquals(DramTier.HIT, t.getOrVersion(7, out, 0, t.tick()));
            assertArrayEquals(new float[] {1.75f, 0.5f, 3.5f, 1.5f}, out);
            assertTrue(t.version(7) != version, "the bucket's version changed");
            assertEquals(seq + 2, t.sequence(7), "one change of the bucket, even again");
            long[] dirty = {0};
            t.forEachDirty(0, t.buckets(), (k, v) -> dirty[0] += k);
            assertEquals(7, dirty[0], "the added-to entry is dirty");
        }
    }

    @Test
    void capacityIsDerivedFromBytesIncludingMetadata() {
        try (DramTier t = new DramTier(DIM, 10 * DramTier.bucketBytes(DIM) + 5, "lru")) {
            assertEquals(10 * DramTier.BUCKET_SLOTS, t.capacity());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new DramTier(DIM, 100, "lru"));
        assertTrue(e.getMessage().contains("less than one bucket"), e.getMessage());
    }

    @Test
    void aFullBucketEvictsTheLeastRecentlyUsedEntryUnderLru() {
        try (DramTier t = oneBucket("lru")) {
            List<Long> evicted = new ArrayList<>();
            for (int k = 0; k < DramTier.BUCKET_SLOTS; k++) {
                t.put(k, vec(k), 0, false, -1, t.tick(), (key, v, d) -> evicted.add(key));
            }
            // Touch every key but 3, so 3 is the least recent.
            for (int k = 0; k < DramTier.BUCKET_SLOTS; k++) {
                if (k != 3) {
                    assertEquals(DramTier.HIT, t.getOrVersion(k, new float[DIM], 0, t.tick()));
                }
            }
            assertEquals(DramTier.PutResult.INSERTED,
                    t.put(100, vec(100), 0, false, -1, t.tick(), (key, v, d) -> evicted.add(key)));
            assertEquals(List.of(3L), evicted);
            assertFalse(t.contains(3));
            assertTrue(t.contains(100));
            assertEquals(DramTier.BUCKET_SLOTS, t.size());
        }
    }

    @Test
    void lfuEvictsTheLeastFrequentlyUsedEntry() {
        try (DramTier t = oneBucket("lfu")) {
            for (int k = 0; k < DramTier.BUCKET_SLOTS; k++) {
                t.put(k, vec(k), 0, false, -1, t.tick(), EvictionSink.DISCARD);
            }
            for (int round = 0; round < 3; round++) {
                for (int k = 0; k < DramTier.BUCKET_SLOTS; k++) {
                    if (k != 7) {
                        t.getOrVersion(k, new float[DIM], 0, t.tick());
                    }
                }
            }
            // 7 was inserted earlier than some, but it is the only one never hit.
            List<Long> evicted = new ArrayList<>();
            t.put(200, vec(1), 0, false, -1, t.tick(), (key, v, d) -> evicted.add(key));
            assertEquals(List.of(7L), evicted);
        }
    }

    @Test
    void evictionHandsTheVictimsValueAndDirtyFlagToTheSink() {
        try (DramTier t = oneBucket("lru")) {
            for (int k = 0; k < DramTier.BUCKET_SLOTS; k++) {
                t.put(k, vec(k + 0.5f), 0, k == 0, -1, t.tick(), EvictionSink.DISCARD);
            }
            float[] got = new float[DIM];
            boolean[] dirty = new boolean[1];
            t.put(99, vec(9), 0, false, -1, t.tick(), (key, v, d) -> {
                assertEquals(0L, key);
                System.arraycopy(v, 0, got, 0, DIM);
                dirty[0] = d;
            });
            assertEquals(0.5f, got[3]);
            assertTrue(dirty[0]);
            assertEquals(1, t.evictions());
        }
    }

    /**
     * Twelve hot keys are read once per round; between rounds, fifty keys that are never seen
     * again are written. Returns how many hot keys are still resident at the end.
     */
    private static int hotKeysLeftAfterScans(String policy) {
        try (DramTier t = oneBucket(policy)) {
            long[] hot = new long[12];
            for (int k = 0; k < hot.length; k++) {
                hot[k] = k;
                t.put(k, vec(k), 0, false, -1, t.tick(), EvictionSink.DISCARD);
            }
            long next = 1000;
            long[] one = new long[1];
            for (int round = 0; round < 40; round++) {
                t.policy().recordAccesses(hot, 0, hot.length);
                long now = t.tick();
                for (long k : hot) {
                    t.getOrVersion(k, new float[DIM], 0, now);
                }
                for (int i = 0; i < 50; i++) {
                    one[0] = next++;
                    t.policy().recordAccesses(one, 0, 1);
                    t.put(one[0], vec(1), 0, false, -1, t.tick(), EvictionSink.DISCARD);
                }
            }
            int left = 0;
            for (long k : hot) {
                left += t.contains(k) ? 1 : 0;
            }
            return left;
        }
    }

    @Test
    void tinyLfuKeepsHotKeysAgainstScansOfOneHitKeys() {
        assertEquals(12, hotKeysLeftAfterScans("tinylfu"));
    }

    @Test
    void lruLosesHotKeysToTheSameScans() {
        // The baseline TinyLFU is compared against: plain LRU admits every newcomer.
        assertEquals(0, hotKeysLeftAfterScans("lru"));
    }

    @Test
    void aStaleVersionRefusesTheInstallAndRemoveChangesTheVersion() {
        try (DramTier t = oneBucket("lru")) {
            long v = t.getOrVersion(5, new float[DIM], 0, t.tick());
            assertNotEquals(DramTier.HIT, v);
            assertFalse(t.remove(5));
            assertEquals(DramTier.PutResult.STALE, t.put(5, vec(1), 0, false, v, t.tick(), EvictionSink.DISCARD));
            long v2 = t.getOrVersion(5, new float[DIM], 0, t.tick());
            assertEquals(DramTier.PutResult.INSERTED, t.put(5, vec(1), 0, false, v2, t.tick(), EvictionSink.DISCARD));
        }
    }

    @Test
    void conditionalInstallsOfOneBucketDoNotInvalidateEachOther() {
        try (DramTier t = oneBucket("lru")) {
            long v1 = t.getOrVersion(1, new float[DIM], 0, t.tick());
            long v2 = t.getOrVersion(2, new float[DIM], 0, t.tick());
            assertEquals(DramTier.PutResult.INSERTED, t.put(1, vec(1), 0, false, v1, t.tick(), EvictionSink.DISCARD));
            assertEquals(DramTier.PutResult.INSERTED, t.put(2, vec(2), 0, false, v2, t.tick(), EvictionSink.DISCARD));
            // An unconditional write does invalidate the bucket's snapshots.
            long v3 = t.getOrVersion(3, new float[DIM], 0, t.tick());
            t.put(4, vec(4), 0, true, -1, t.tick(), EvictionSink.DISCARD);
            assertEquals(DramTier.PutResult.STALE, t.put(3, vec(3), 0, false, v3, t.tick(), EvictionSink.DISCARD));
        }
    }

    @Test
    void dirtyEntriesAreListedUntilMarkedClean() {
        try (DramTier t = new DramTier(DIM, 64 * DramTier.bucketBytes(DIM), "lru")) {
            for (long k = 0; k < 100; k++) {
                t.put(k, vec(k), 0, k % 2 == 0, -1, t.tick(), EvictionSink.DISCARD);
            }
            Set<Long> dirty = new HashSet<>();
            t.forEachDirty(0, t.buckets(), (key, v) -> dirty.add(key));
            assertEquals(50, dirty.size());
            for (long k : dirty) {
                assertEquals(0, k % 2);
                assertTrue(t.markCleanIfUnchanged(k, vec(k), 0));
            }
            dirty.clear();
            t.forEachDirty(0, t.buckets(), (key, v) -> dirty.add(key));
            assertTrue(dirty.isEmpty());
        }
    }

    @Test
    void replaceWritesOnlyKeysTheTierHoldsAndAValueWrittenAfterAFlushReadStaysDirty() {
        try (DramTier t = new DramTier(DIM, 64 * DramTier.bucketBytes(DIM), "lru")) {
            t.put(1, vec(1), 0, false, -1, t.tick(), EvictionSink.DISCARD);
            long version = t.version(1);
            assertFalse(t.replace(2, vec(2), 0, t.tick()), "a key the tier lacks is left alone");
            assertFalse(t.contains(2));
            assertTrue(t.replace(1, vec(10), 0, t.tick()));
            assertTrue(t.version(1) != version, "a replace changes the bucket's version, as a put does");
            float[] out = new float[DIM];
            assertEquals(DramTier.HIT, t.getOrVersion(1, out, 0, t.tick()));
            assertArrayEquals(vec(10), out);
            Set<Long> dirty = new HashSet<>();
            t.forEachDirty(0, t.buckets(), (key, v) -> dirty.add(key));
            assertEquals(Set.of(1L), dirty, "a replaced entry is dirty");
            // A flush read vec(10); a writer replaced it with vec(11) before the flush marked it.
            assertTrue(t.replace(1, vec(11), 0, t.tick()));
            assertFalse(t.markCleanIfUnchanged(1, vec(10), 0), "the newer value is not marked clean");
            dirty.clear();
            t.forEachDirty(0, t.buckets(), (key, v) -> dirty.add(key));
            assertEquals(Set.of(1L), dirty);
            assertTrue(t.markCleanIfUnchanged(1, vec(11), 0));
            dirty.clear();
            t.forEachDirty(0, t.buckets(), (key, v) -> dirty.add(key));
            assertTrue(dirty.isEmpty());
            assertFalse(t.markCleanIfUnchanged(2, vec(2), 0), "absent");
        }
    }

    @Test
    void anEightGigabyteTierNeedsNoHeap() {
        // Reserves 8 GiB of native address space; pages are touched lazily only where written.
        // The test JVM runs with -Xmx1g, so a heap- or direct-buffer-backed tier would fail here.
        long bytes = 8L << 30;
        Runtime rt = Runtime.getRuntime();
        assertTrue(rt.maxMemory() < bytes / 4, "test must run with a small heap");
        try (DramTier t = new DramTier(128, bytes, "lru")) {
            assertTrue(t.capacity() > 15_000_000, "capacity " + t.capacity());
            float[] v = new float[128];
            v[127] = 3f;
            t.put(123456789L, v, 0, false, -1, t.tick(), EvictionSink.DISCARD);
            float[] out = new float[128];
            assertEquals(DramTier.HIT, t.getOrVersion(123456789L, out, 0, t.tick()));
            assertEquals(3f, out[127]);
        }
    }
}
