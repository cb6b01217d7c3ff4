package io.mlkv.storage.dram;

import static io.mlkv.storage.dram.OffHeapMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The documented native layout and sequence-count protocol, checked by a reader that follows
 * only the documentation (as the GPU kernel does) and reads raw memory while writers run.
 */
class DramTierNativeLayoutTest {
    private static final int DIM = 16;

    /** A reader of the raw layout: the row of {@code key} into {@code out}, or false if absent or changing. */
    private static boolean readInPlace(DramTier.NativeLayout l, long key, float[] out) {
        long h = key * 0x9E3779B97F4A7C15L;
        h ^= h >>> 29;
        long bucket = ((h >>> 32) * l.buckets()) >>> 32;
        long seqAddr = l.seqAddress(bucket);
        long seq = UNSAFE.getLongVolatile(null, seqAddr);
        if ((seq & 1) != 0) {
            return false;
        }
        UNSAFE.loadFence();
        for (long slot = bucket * DramTier.BUCKET_SLOTS; slot < (bucket + 1) * DramTier.BUCKET_SLOTS; slot++) {
            if (UNSAFE.getLong(l.keysAddress() + slot * 8) == key) {
                for (int d = 0; d < l.dim(); d++) {
                    out[d] = UNSAFE.getFloat(l.valuesAddress() + (slot * l.dim() + d) * 4);
                }
                UNSAFE.loadFence();
                return UNSAFE.getLongVolatile(null, seqAddr) == seq;
            }
        }
        return false;
    }

    private static float[] row(long key, int version) {
        float[] r = new float[DIM];
        for (int d = 0; d < DIM; d++) {
            r[d] = key * 1000 + version;
        }
        return r;
    }

    /** changes() counts bucket changes, the ones a reader in place can see, and nothing else. */
    @Test
    void changesCountsEveryChangeOfABucketAndNoRead() {
        try (DramTier t = new DramTier(DIM, DramTier.bucketBytes(DIM), "lru")) {
            t.nativeLayout(); // counting starts with the layout
            long before = t.changes();
            t.put(1, row(1, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            assertEquals(before + 1, t.changes(), "an insert");
            t.put(1, row(1, 2), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            assertEquals(before + 2, t.changes(), "an update");
            long version = t.version(2);
            for (long k = 2; k <= DramTier.BUCKET_SLOTS; k++) {
                t.put(k, row(k, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            }
            long full = t.changes();
            assertEquals(before + 1 + DramTier.BUCKET_SLOTS, full, "inserts until the only bucket is full");
            float[] out = new float[DIM];
            t.getOrVersion(1, out, 0, t.tick());
            t.contains(3);
            t.sequence(4);
            t.remove(999);
            assertEquals(DramTier.PutResult.STALE,
                    t.put(5, row(5, 9), 0, false, version, t.tick(), (key, v, dirty) -> { }));
            assertEquals(full, t.changes(), "reads, removing an absent key and a stale conditional put change no slot");
            long[] evicted = new long[1];
            t.put(100, row(100, 1), 0, false, -1, t.tick(), (key, v, dirty) -> evicted[0] = key);
            assertTrue(evicted[0] != 0, "the full bucket evicted a key");
            assertEquals(full + 1, t.changes(), "an insert that evicts is one change");
            t.remove(100);
            assertEquals(full + 2, t.changes(), "a removal");
        }
    }

    /**
     * keyChanges() counts the changes that write a slot's key (inserts, with or without an
     * eviction, and removals), not the writes of a held key's row nor reads, and only once
     * counting has started.
     */
    @Test
    void keyChangesCountsInsertsAndRemovalsOnly() {
        try (DramTier t = new DramTier(DIM, DramTier.bucketBytes(DIM), "lru")) {
            t.put(50, row(50, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            assertEquals(0, t.keyChanges(), "not counted before the layout");
            t.nativeLayout();
            t.put(1, row(1, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            assertEquals(1, t.keyChanges(), "an insert");
            t.put(1, row(1, 2), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            assertTrue(t.addTo(1, row(1, 1), 0, t.tick()));
            assertTrue(t.replace(1, row(1, 3), 0, t.tick()));
            float[] out = new float[DIM];
            t.getOrVersion(1, out, 0, t.tick());
            t.remove(999);
            assertEquals(1, t.keyChanges(), "an update, an add, a replace, a read and removing an absent key change no key");
            for (long k = 2; k <= DramTier.BUCKET_SLOTS + 1; k++) {
                t.put(k, row(k, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            }
            assertEquals(1 + DramTier.BUCKET_SLOTS, t.keyChanges(), "inserts, the last one evicting");
            long[] held = {1, 50};
            long changed = t.keyChanges();
            for (long k : held) {
                if (t.remove(k)) {
                    changed++;
                }
            }
            assertEquals(changed, t.keyChanges(), "a removal of a held key");
            assertTrue(t.changes() > t.keyChanges(), "every key change is a change, not every change a key change");
        }
    }

    /** Slots without an entry hold ReservedKeys.EMPTY from the start and again after a removal, whatever key they held. */
    @Test
    void slotsWithoutAnEntryHoldTheVacantKey() {
        try (DramTier t = new DramTier(DIM, 4 * DramTier.bucketBytes(DIM), "lru")) {
            DramTier.NativeLayout l = t.nativeLayout();
            for (long slot = 0; slot < l.slots(); slot++) {
                assertEquals(io.mlkv.storage.ReservedKeys.EMPTY, UNSAFE.getLong(l.keysAddress() + slot * 8), "slot " + slot + " of a new tier");
            }
            float[] out = new float[DIM];
            assertFalse(readInPlace(l, 0, out), "key 0 is not in a new tier");
            for (long k = 0; k < 20; k++) {
                t.put(k, row(k, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            }
            long held = 0;
            for (long k = 0; k < 20; k++) {
                if (t.contains(k)) {
                    held++;
                    assertTrue(readInPlace(l, k, out), "key " + k);
                    assertTrue(t.remove(k));
                    assertFalse(readInPlace(l, k, out), "removed key " + k);
                }
            }
            assertTrue(held > 0, "some keys were held");
            for (long slot = 0; slot < l.slots(); slot++) {
                assertEquals(io.mlkv.storage.ReservedKeys.EMPTY, UNSAFE.getLong(l.keysAddress() + slot * 8), "slot " + slot + " after removals");
            }
        }
    }

    @Test
    void aReaderFollowingTheDocumentedLayoutFindsWhatWasPut() {
        try (DramTier t = new DramTier(DIM, 64 * DramTier.bucketBytes(DIM), "lru")) {
            DramTier.NativeLayout l = t.nativeLayout();
            assertEquals(DIM, l.dim());
            assertEquals(64, l.buckets());
            float[] out = new float[DIM];
            for (long k = 1; k <= 500; k++) {
                t.put(k, row(k, 1), 0, false, -1, t.tick(), (key, v, dirty) -> { });
            }
            int found = 0;
            for (long k = 1; k <= 500; k++) {
                boolean inTier = t.contains(k);
                assertEquals(inTier, readInPlace(l, k, out), "key " + k);
                if (inTier) {
                    found++;
                    assertEquals(k * 1000 + 1, out[0]);
                }
            }
            assertTrue(found > 400, "most keys fit: " + found);
            t.remove(7);
            assertTrue(!readInPlace(l, 7, out), "removed keys are not found");
        }
    }

    /**
     * The GPU reads a bucket's sequence count and version in one request: they are the two int64s
     * of the bucket's 16 bytes of counts, in that order, and move as the tier says they do.
     */
    @Test
    void eachBucketsSequenceCountAndVersionSitSideBySide() {
        try (DramTier t = new DramTier(DIM, 8 * DramTier.bucketBytes(DIM), "lru")) {
            DramTier.NativeLayout l = t.nativeLayout();
            assertEquals(8 * 16, l.countsBytes());
            for (long k = 1; k <= 40; k++) {
                long h = k * 0x9E3779B97F4A7C15L;
                h ^= h >>> 29;
                long bucket = ((h >>> 32) * l.buckets()) >>> 32;
                assertEquals(l.countsAddress() + bucket * 16, l.seqAddress(bucket));
                assertEquals(l.seqAddress(bucket) + 8, l.versionAddress(bucket));
                long seqBefore = UNSAFE.getLongVolatile(null, l.seqAddress(bucket));
                long versionBefore = UNSAFE.getLongVolatile(null, l.versionAddress(bucket));
                assertEquals(t.sequence(k), seqBefore, "key " + k);
                assertEquals(t.version(k), versionBefore, "key " + k);
                t.put(k, row(k, 1), 0, false, DramTier.ANY_VERSION, t.tick(), (key, v, dirty) -> { });
                assertEquals(seqBefore + 2, UNSAFE.getLongVolatile(null, l.seqAddress(bucket)), "one change, key " + k);
                assertEquals(versionBefore + 1, UNSAFE.getLongVolatile(null, l.versionAddress(bucket)),
                        "an unconditional put changes the version, key " + k);
            }
        }
    }

    /**
     * changesIfQuiet: the change count while no change is under way, -1 while a device write
     * announced by beginDeviceChanges has not ended, and the count again once it has.
     */
    @Test
    void changesIfQuietAnswersOnlyWhileNoChangeIsUnderWay() {
        try (DramTier t = new DramTier(DIM, 8 * DramTier.bucketBytes(DIM), "lru")) {
            t.put(3, row(3, 1), 0, false, DramTier.ANY_VERSION, t.tick(), (key, v, dirty) -> { });
            assertEquals(0, t.changes(), "a tier nobody took the layout of counts nothing");
            assertEquals(-1, t.changesIfQuiet(), "and answers no reader in place");
            t.nativeLayout();
            assertEquals(0, t.changesIfQuiet());
            t.put(1, row(1, 1), 0, false, DramTier.ANY_VERSION, t.tick(), (key, v, dirty) -> { });
            assertEquals(1, t.changes());
            assertEquals(1, t.changesIfQuiet(), "a put's change has ended when put returns");
            t.beginDeviceChanges(3);
            assertEquals(4, t.changes());
            assertEquals(-1, t.changesIfQuiet(), "device changes under way");
            t.put(2, row(2, 1), 0, false, DramTier.ANY_VERSION, t.tick(), (key, v, dirty) -> { });
            assertEquals(-1, t.changesIfQuiet(), "still under way after another change ended");
            t.endDeviceChanges(3);
            assertEquals(5, t.changesIfQuiet());
            t.addTo(1, row(1, 2), 0, t.tick());
            t.remove(2);
            assertEquals(7, t.changesIfQuiet(), "an add in place and a removal are changes too");
        }
    }

    /** Writers overwrite rows (each row's values all equal, so a torn read shows) while readers read in place. */
    @Test
    void inPlaceReadsThatPassTheSequenceCheckAreNeverTorn() throws Exception {
        long seed = System.nanoTime();
        try (DramTier t = new DramTier(DIM, 8 * DramTier.bucketBytes(DIM), "lru")) {
            DramTier.NativeLayout l = t.nativeLayout();
            int keys = 200; // more keys than slots: evictions replace slots under readers
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong checked = new AtomicLong();
            ExecutorService pool = Executors.newFixedThreadPool(4);
            List<Future<?>> tasks = new ArrayList<>();
            for (int w = 0; w < 2; w++) {
                SplittableRandom rnd = new SplittableRandom(seed + w);
                tasks.add(pool.submit(() -> {
                    for (int i = 0; !stop.get(); i++) {
                        long k = 1 + rnd.nextInt(keys);
                        if (rnd.nextInt(10) == 0) {
                            t.remove(k);
                        } else {
                            t.put(k, row(k, i % 1000), 0, false, -1, t.tick(), (key, v, dirty) -> { });
                        }
                    }
                    return null;
                }));
            }
            for (int r = 0; r < 2; r++) {
                SplittableRandom rnd = new SplittableRandom(seed - r - 1);
                tasks.add(pool.submit(() -> {
                    float[] out = new float[DIM];
                    while (!stop.get()) {
                        long k = 1 + rnd.nextInt(keys);
                        if (readInPlace(l, k, out)) {
                            for (int d = 1; d < DIM; d++) {
                                if (out[d] != out[0]) {
                                    throw new AssertionError("torn row of key " + k + " (seed " + seed + ")");
                                }
                            }
                            long owner = (long) Math.floor(out[0] / 1000);
                            if (owner != k) {
                                throw new AssertionError("key " + k + " read the row of key " + owner + " (seed " + seed + ")");
                            }
                            checked.incrementAndGet();
                        }
                    }
                    return null;
                }));
            }
            Thread.sleep(1500);
            stop.set(true);
            for (Future<?> f : tasks) {
                f.get(10, TimeUnit.SECONDS);
            }
            pool.shutdown();
            assertTrue(checked.get() > 1000, "reads that passed the check: " + checked.get());
        }
    }
}
