package io.mlkv.gpu.table;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.policy.FrequencySketch;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Frequency admission of the GPU table ({@link GpuHashTable#admitByFrequency()}): its sketch
 * against the host twin, and which screened installs a full bucket takes. Seeds are printed on
 * failure.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class FrequencyAdmissionTest {
    private static final int DIM = 4;

    /**
     * Lookups of host arrays (keys repeated up to 40 times, so counters saturate) leave the GPU
     * sketch word for word equal to a {@link FrequencySketch} that counted the same keys; peeks
     * count nothing.
     */
    @Test
    void lookupsCountInTheSketchAsInItsHostTwin() {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        SplittableRandom rnd = new SplittableRandom(seed);
        long capacity = 1 << 12;
        try (GpuHashTable t = GpuHashTable.create(DIM, capacity, ScoreMode.LRU, 1 << 10)) {
            t.scoreReads(true);
            assertNull(t.admissionSketchWords(), "no sketch until admission by frequency is on");
            t.admitByFrequency();
            FrequencySketch host = new FrequencySketch(t.capacity());
            int total = 0;
            // Stay below the halving (ten lookups per slot): the twins halve on slightly different counts.
            for (int round = 0; round < 20 && total + 2000 < FrequencySketch.sampleSize(t.capacity()) / 2; round++) {
                long[] keys = new long[1 + rnd.nextInt(2000)];
                for (int i = 0; i < keys.length; i++) {
                    keys[i] = rnd.nextInt(4) == 0 ? rnd.nextInt(50) : rnd.nextLong() >>> 2;
                }
                t.find(keys, new float[keys.length * DIM], new boolean[keys.length]);
                t.peek(keys, new float[keys.length * DIM], new boolean[keys.length]);
                host.incrementAll(keys, 0, keys.length);
                total += keys.length;
            }
            assertArrayEquals(host.words(), t.admissionSketchWords(), "sketch words after " + total + " lookups, seed " + seed);
            assertTrue(host.frequency(7) > 0, "seed " + seed);
        }
    }

    /**
     * One full bucket of keys looked up three times each: a screened install of a key looked up
     * once is refused (counted, not held, the bucket unchanged); the same install unscreened, or
     * of a dirty row, goes in; a key looked up more often than the victim goes in screened.
     */
    @Test
    void aFullBucketTakesOnlyNewcomersSeenMoreOftenThanItsVictim() {
        int slots = GpuHashTable.BUCKET_SLOTS;
        try (GpuHashTable t = GpuHashTable.create(DIM, slots, ScoreMode.LRU, 1 << 10)) {
            long[] held = fillWithKeysSeenThreeTimes(t);
            long cold = 5000;
            t.find(new long[] {cold}, new float[DIM], new boolean[1]); // seen once: a miss
            long[] evKeys = new long[1];
            float[] evRows = new float[DIM];
            boolean[] evDirty = new boolean[1];
            assertEquals(0, t.installAbsent(new long[] {cold}, rows(new long[] {cold}, 2), evKeys, evRows, evDirty, true));
            assertEquals(1, t.rejections(), "the refused install is counted");
            assertFalse(contains(t, cold), "refused: not held");
            assertEquals(slots, t.find(held, new float[slots * DIM], new boolean[slots]), "the bucket is unchanged");

            assertEquals(1, t.installAbsent(new long[] {cold}, rows(new long[] {cold}, 2), evKeys, evRows, evDirty, false),
                    "unscreened (a prefetch): it evicts");
            assertTrue(contains(t, cold));

            long hot = 6000;
            for (int r = 0; r < 8; r++) {
                t.find(new long[] {hot}, new float[DIM], new boolean[1]);
            }
            assertEquals(1, t.installAbsent(new long[] {hot}, rows(new long[] {hot}, 3), evKeys, evRows, evDirty, true),
                    "seen eight times, more than any victim");
            float[] out = new float[DIM];
            boolean[] found = new boolean[1];
            t.peek(new long[] {hot}, out, found);
            assertTrue(found[0]);
            assertArrayEquals(rows(new long[] {hot}, 3), out);
            assertEquals(1, t.rejections(), "nothing else refused");
        }
    }

    /** A dirty row has no copy below: a screened install of one is never refused. */
    @Test
    void dirtyInstallsAreNeverRefused() {
        int slots = GpuHashTable.BUCKET_SLOTS;
        int dim = DIM;
        try (GpuHashTable t = GpuHashTable.create(dim, slots, ScoreMode.LRU, 1 << 10);
                io.mlkv.gpu.cuda.DeviceMemory k = new io.mlkv.gpu.cuda.DeviceMemory(8, "test key");
                io.mlkv.gpu.cuda.DeviceMemory v = new io.mlkv.gpu.cuda.DeviceMemory(dim * 4L, "test row");
                io.mlkv.gpu.cuda.DeviceMemory ek = new io.mlkv.gpu.cuda.DeviceMemory(8, "evicted key");
                io.mlkv.gpu.cuda.DeviceMemory ev = new io.mlkv.gpu.cuda.DeviceMemory(dim * 4L, "evicted row");
                io.mlkv.gpu.cuda.DeviceMemory ed = new io.mlkv.gpu.cuda.DeviceMemory(1, "evicted mark")) {
            fillWithKeysSeenThreeTimes(t);
            long key = 7000;
            io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyHtoD(k.pointer(), jcuda.Pointer.to(new long[] {key}), 8),
                    "cuMemcpyHtoD");
            io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyHtoD(v.pointer(),
                    jcuda.Pointer.to(rows(new long[] {key}, 4)), dim * 4L), "cuMemcpyHtoD");
            Evictions into = Evictions.withMarks(ek.pointer(), ev.pointer(), ed.pointer());
            assertEquals(0, t.installAbsent(k.pointer(), v.pointer(), 1, EntryState.CLEAN, into, true), "clean: refused");
            assertFalse(contains(t, key));
            assertEquals(1, t.installAbsent(k.pointer(), v.pointer(), 1, EntryState.DIRTY, into, true), "dirty: installed");
            assertTrue(contains(t, key));
        }
    }

    /**
     * Turns on read scoring and frequency admission, fills the one-bucket table {@code t} with
     * keys 100 to 227 and looks each up three times; returns the keys.
     */
    private static long[] fillWithKeysSeenThreeTimes(GpuHashTable t) {
        int slots = GpuHashTable.BUCKET_SLOTS;
        t.scoreReads(true);
        t.admitByFrequency();
        long[] held = new long[slots];
        for (int i = 0; i < slots; i++) {
            held[i] = 100 + i;
        }
        t.insertOrAssign(held, rows(held, 1), null);
        for (int r = 0; r < 3; r++) {
            assertEquals(slots, t.find(held, new float[slots * DIM], new boolean[slots]));
        }
        return held;
    }

    private static boolean contains(GpuHashTable t, long key) {
        boolean[] in = new boolean[1];
        t.containsKeys(new long[] {key}, in);
        return in[0];
    }

    private static float[] rows(long[] keys, float salt) {
        float[] v = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            Arrays.fill(v, i * DIM, (i + 1) * DIM, keys[i] + salt);
        }
        return v;
    }
}
