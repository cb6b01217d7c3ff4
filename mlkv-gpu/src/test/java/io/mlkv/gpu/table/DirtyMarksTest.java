package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.storage.ReservedKeys;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The table's dirty marks, the write-back store's view of it. Seeds are printed on failure. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class DirtyMarksTest {
    private static final int DIM = 4;

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    private static DeviceMemory upload(GpuHashTable t, long[] keys) {
        t.makeDeviceCurrent();
        DeviceMemory d = new DeviceMemory(Math.max(8, keys.length * 8L), "test keys");
        cuMemcpyHtoD(d.pointer(), Pointer.to(keys), keys.length * 8L);
        return d;
    }

    private static DeviceMemory upload(GpuHashTable t, float[] rows) {
        t.makeDeviceCurrent();
        DeviceMemory d = new DeviceMemory(Math.max(4, rows.length * 4L), "test rows");
        cuMemcpyHtoD(d.pointer(), Pointer.to(rows), rows.length * 4L);
        return d;
    }

    private static long[] longs(GpuHashTable t, DeviceMemory d, int n) {
        long[] out = new long[n];
        t.makeDeviceCurrent();
        cuMemcpyDtoH(Pointer.to(out), d.pointer(), n * 8L);
        return out;
    }

    private static int[] ints(GpuHashTable t, DeviceMemory d, int n) {
        int[] out = new int[n];
        t.makeDeviceCurrent();
        cuMemcpyDtoH(Pointer.to(out), d.pointer(), n * 4L);
        return out;
    }

    /** Every dirty entry of the table, key to row, through exportDirty. */
    private static Map<Long, float[]> dirtyEntries(GpuHashTable t) {
        Map<Long, float[]> out = new HashMap<>();
        long chunk = 4096;
        try (DeviceMemory k = new DeviceMemory(chunk * 8, "export keys");
             DeviceMemory v = new DeviceMemory(chunk * DIM * 4, "export rows")) {
            for (long off = 0; off < t.capacity(); off += chunk) {
                int n = (int) t.exportDirty(off, Math.min(chunk, t.capacity() - off), k.pointer(), v.pointer());
                long[] keys = longs(t, k, n);
                float[] rows = new float[n * DIM];
                cuMemcpyDtoH(Pointer.to(rows), v.pointer(), rows.length * 4L);
                for (int i = 0; i < n; i++) {
                    out.put(keys[i], Arrays.copyOfRange(rows, i * DIM, (i + 1) * DIM));
                }
            }
        }
        return out;
    }

    @Test
    void firstReservedKeyFindsTheLowestPositionOfEither() {
        try (GpuHashTable t = GpuHashTable.create(DIM, 1024, ScoreMode.LRU)) {
            long[] keys = new long[10_000];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i + 1;
            }
            try (DeviceMemory d = upload(t, keys)) {
                assertEquals(-1, t.firstReservedKey(d.pointer(), keys.length));
            }
            keys[7_777] = ReservedKeys.LOCKED;
            keys[9_000] = ReservedKeys.EMPTY;
            try (DeviceMemory d = upload(t, keys)) {
                assertEquals(7_777, t.firstReservedKey(d.pointer(), keys.length));
                assertEquals(-1, t.firstReservedKey(d.pointer(), 7_777), "a prefix without one");
            }
        }
    }

    /**
     * Checks run without the table's lock, on streams of their own: threads checking their own
     * batches at once, while another thread keeps the table busy, each get their own batch's
     * answer; after close a check is refused.
     */
    @Test
    void reservedKeyChecksOfSeveralThreadsAtOnceEachSeeTheirOwnBatch() throws Exception {
        int threads = 6;
        int n = 50_000;
        GpuHashTable t = GpuHashTable.create(DIM, 1 << 16, ScoreMode.LRU);
        DeviceMemory[] batches = new DeviceMemory[threads];
        try {
            for (int c = 0; c < threads; c++) {
                long[] keys = new long[n];
                for (int i = 0; i < n; i++) {
                    keys[i] = i + 1L;
                }
                if (c > 0) {
                    keys[c * 1_000 + 17] = c % 2 == 0 ? ReservedKeys.LOCKED : ReservedKeys.EMPTY; // thread 0: none
                }
                batches[c] = upload(t, keys);
            }
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads + 1);
            try {
                java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
                java.util.concurrent.Future<?> busy = pool.submit(() -> {
                    long[] keys = new long[4096];
                    float[] rows = new float[keys.length * DIM];
                    for (long round = 0; !stop.get(); round++) {
                        for (int i = 0; i < keys.length; i++) {
                            keys[i] = round * keys.length + i + 1;
                        }
                        t.insertOrAssign(keys, rows, null);
                    }
                });
                java.util.List<java.util.concurrent.Future<long[]>> results = new java.util.ArrayList<>();
                for (int c = 0; c < threads; c++) {
                    DeviceMemory b = batches[c];
                    results.add(pool.submit(() -> {
                        long[] seen = new long[200];
                        for (int round = 0; round < seen.length; round++) {
                            seen[round] = t.firstReservedKey(b.pointer(), n);
                        }
                        return seen;
                    }));
                }
                for (int c = 0; c < threads; c++) {
                    long want = c == 0 ? -1 : c * 1_000 + 17;
                    for (long got : results.get(c).get()) {
                        assertEquals(want, got, "thread " + c);
                    }
                }
                stop.set(true);
                busy.get();
            } finally {
                pool.shutdownNow();
            }
        } finally {
            for (DeviceMemory b : batches) {
                if (b != null) {
                    t.makeDeviceCurrent();
                    b.close();
                }
            }
            t.close();
        }
        org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> t.firstReservedKey(
                new jcuda.driver.CUdeviceptr(), 1));
    }

    /** lastOccurrences returns each distinct key's last position once, with and without repeated keys. */
    @Test
    void lastOccurrencesGivesEachDistinctKeysLastPosition() {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        try (GpuHashTable t = GpuHashTable.create(DIM, 1024, ScoreMode.LRU)) {
            for (boolean repeats : new boolean[] {true, false}) {
                int n = 300_000;
                long[] keys = new long[n];
                Map<Long, Integer> last = new HashMap<>();
                for (int i = 0; i < n; i++) {
                    keys[i] = repeats ? r.nextInt(50_000) : i * 3L + 1;
                    last.put(keys[i], i);
                }
                try (DeviceMemory k = upload(t, keys); DeviceMemory out = new DeviceMemory(n * 4L, "positions")) {
                    int distinct = (int) t.lastOccurrences(k.pointer(), n, out.pointer());
                    assertEquals(last.size(), distinct, "repeats " + repeats + ", seed " + seed);
                    Set<Integer> got = new HashSet<>();
                    for (int p : ints(t, out, distinct)) {
                        assertTrue(got.add(p), "position " + p + " once; seed " + seed);
                    }
                    assertEquals(new HashSet<>(last.values()), got, "repeats " + repeats + ", seed " + seed);
                }
            }
        }
    }

    /**
     * lastOccurrencesAt, given keys with shuffled batch positions (as an assigning kernel reports
     * its misses), returns each distinct key once with its highest position, with and without
     * repeated keys.
     */
    @Test
    void lastOccurrencesAtGivesEachDistinctKeyItsHighestPosition() {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        try (GpuHashTable t = GpuHashTable.create(DIM, 1024, ScoreMode.LRU)) {
            for (boolean repeats : new boolean[] {true, false}) {
                int n = 200_000;
                int[] positions = new int[n];
                for (int i = 0; i < n; i++) {
                    positions[i] = i * 5 + r.nextInt(5); // distinct, ascending, then shuffled below
                }
                for (int i = n - 1; i > 0; i--) {
                    int j = r.nextInt(i + 1);
                    int p = positions[i];
                    positions[i] = positions[j];
                    positions[j] = p;
                }
                long[] keys = new long[n];
                Map<Long, Integer> highest = new HashMap<>();
                for (int i = 0; i < n; i++) {
                    keys[i] = repeats ? r.nextInt(30_000) : i * 7L + 3;
                    highest.merge(keys[i], positions[i], Math::max);
                }
                try (DeviceMemory k = upload(t, keys); DeviceMemory at = new DeviceMemory(n * 4L, "positions in");
                        DeviceMemory outKeys = new DeviceMemory(n * 8L, "keys out");
                        DeviceMemory outAt = new DeviceMemory(n * 4L, "positions out")) {
                    t.makeDeviceCurrent();
                    cuMemcpyHtoD(at.pointer(), Pointer.to(positions), n * 4L);
                    int distinct = (int) t.lastOccurrencesAt(k.pointer(), at.pointer(), n, outKeys.pointer(), outAt.pointer());
                    String where = "repeats " + repeats + ", seed " + seed;
                    assertEquals(highest.size(), distinct, where);
                    long[] gotKeys = longs(t, outKeys, distinct);
                    int[] gotAt = ints(t, outAt, distinct);
                    Map<Long, Integer> got = new HashMap<>();
                    for (int j = 0; j < distinct; j++) {
                        assertEquals(null, got.put(gotKeys[j], gotAt[j]), "key " + gotKeys[j] + " once; " + where);
                    }
                    assertEquals(highest, got, where);
                }
            }
        }
    }

    /**
     * assignHeld and accumulateHeld (DIRTY) write and mark the keys the table holds and report every
     * position of the others (across assign chunks, with repeated keys); exportDirty returns
     * exactly the marked entries with their newest values and markClean clears them.
     */
    @Test
    void dirtyWritesMarkHeldKeysReportMissesAndExportExactlyTheMarkedEntries() {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        try (GpuHashTable t = GpuHashTable.create(DIM, 1 << 14, ScoreMode.LRU, 1024)) {
            int held = 3000;
            long[] keys = new long[held];
            float[] rows = new float[held * DIM];
            for (int i = 0; i < held; i++) {
                keys[i] = 1_000 + i;
                Arrays.fill(rows, i * DIM, (i + 1) * DIM, i);
            }
            t.insertOrAssign(keys, rows, null);
            assertTrue(dirtyEntries(t).isEmpty(), "plain inserts are clean; seed " + seed);
            int n = (1 << 20) + 5000; // two assigning launches: the second reports positions after the first's
            long[] batch = new long[n];
            float[] values = new float[n * DIM];
            Map<Long, float[]> expectDirty = new HashMap<>();
            Set<Integer> expectMissed = new HashSet<>();
            for (int j = 0; j < n; j++) {
                boolean hit = r.nextInt(4) != 0;
                batch[j] = hit ? 1_000 + r.nextInt(held) : 1_000_000 + r.nextInt(500);
                Arrays.fill(values, j * DIM, (j + 1) * DIM, 10_000 + j);
                if (hit) {
                    expectDirty.put(batch[j], Arrays.copyOfRange(values, j * DIM, (j + 1) * DIM)); // last row wins
                } else {
                    expectMissed.add(j);
                }
            }
            try (DeviceMemory k = upload(t, batch); DeviceMemory v = upload(t, values);
                 DeviceMemory mk = new DeviceMemory(n * 8L, "missed keys");
                 DeviceMemory mi = new DeviceMemory(n * 4L, "missed positions")) {
                int missed = (int) t.assignHeld(k.pointer(), v.pointer(), n, EntryState.DIRTY, mk.pointer(), mi.pointer());
                assertEquals(expectMissed.size(), missed, "seed " + seed);
                long[] missedKeys = longs(t, mk, missed);
                int[] missedAt = ints(t, mi, missed);
                Set<Integer> reported = new HashSet<>();
                for (int m = 0; m < missed; m++) {
                    assertEquals(batch[missedAt[m]], missedKeys[m], "seed " + seed);
                    assertTrue(reported.add(missedAt[m]), "each position once; seed " + seed);
                }
                assertEquals(expectMissed, reported, "seed " + seed);
            }
            Map<Long, float[]> dirty = dirtyEntries(t);
            assertEquals(expectDirty.keySet(), dirty.keySet(), "seed " + seed);
            for (Map.Entry<Long, float[]> e : expectDirty.entrySet()) {
                assertArrayEquals(e.getValue(), dirty.get(e.getKey()), "key " + e.getKey() + ", seed " + seed);
            }
            t.markClean(0, t.capacity());
            assertTrue(dirtyEntries(t).isEmpty(), "seed " + seed);

            // accumulateHeld: every occurrence adds; misses reported.
            long[] acc = {1_000, 1_000, 1_001, 5, 1_000};
            float[] deltas = new float[acc.length * DIM];
            Arrays.fill(deltas, 1f);
            float[] before = new float[2 * DIM];
            t.find(new long[] {1_000, 1_001}, before, new boolean[2]);
            try (DeviceMemory k = upload(t, acc); DeviceMemory v = upload(t, deltas);
                 DeviceMemory mk = new DeviceMemory(acc.length * 8L, "missed keys");
                 DeviceMemory mi = new DeviceMemory(acc.length * 4L, "missed positions")) {
                assertEquals(1, t.accumulateHeld(k.pointer(), v.pointer(), acc.length, EntryState.DIRTY, mk.pointer(), mi.pointer()));
                assertEquals(5, longs(t, mk, 1)[0]);
                assertEquals(3, ints(t, mi, 1)[0]);
            }
            dirty = dirtyEntries(t);
            assertEquals(Set.of(1_000L, 1_001L), dirty.keySet());
            assertEquals(before[0] + 3, dirty.get(1_000L)[0]);
            assertEquals(before[DIM] + 1, dirty.get(1_001L)[0]);
        }
    }

    /**
     * installAbsent never overwrites a present entry (value and mark stay), inserts absent ones
     * in the state asked for, and returns every entry it evicts with its mark.
     */
    @Test
    void installAbsentKeepsPresentEntriesAndEvictsWithTheirMarks() {
        long seed = seed();
        try (GpuHashTable t = GpuHashTable.create(DIM, 128, ScoreMode.LRU)) { // one bucket
            long[] first = new long[128];
            float[] firstRows = new float[128 * DIM];
            for (int i = 0; i < 128; i++) {
                first[i] = i + 1;
                Arrays.fill(firstRows, i * DIM, (i + 1) * DIM, 100 + i);
            }
            t.insertOrAssign(first, firstRows, null);
            // Half of them become dirty with new values.
            long[] half = Arrays.copyOf(first, 64);
            float[] newer = new float[64 * DIM];
            Arrays.fill(newer, -1f);
            boolean[] found = new boolean[64];
            t.assignDirty(half, newer, found);
            for (boolean f : found) {
                assertTrue(f);
            }
            // An install offering stale rows for present keys changes nothing.
            long[] ek = new long[128];
            float[] ev = new float[128 * DIM];
            boolean[] ed = new boolean[128];
            assertEquals(0, t.installAbsent(first, firstRows, ek, ev, ed));
            float[] out = new float[128 * DIM];
            t.find(first, out, new boolean[128]);
            assertEquals(-1f, out[0]);
            assertEquals(100 + 100, out[100 * DIM]);
            assertEquals(64, dirtyEntries(t).size());
            // 128 new keys push out every old one: each comes back once, with its mark and row.
            long[] fresh = new long[128];
            float[] freshRows = new float[128 * DIM];
            for (int i = 0; i < 128; i++) {
                fresh[i] = 10_000 + i;
            }
            int evicted = t.installAbsent(fresh, freshRows, ek, ev, ed);
            assertEquals(128, evicted, "seed " + seed);
            Set<Long> seen = new HashSet<>();
            for (int e = 0; e < evicted; e++) {
                assertTrue(seen.add(ek[e]));
                boolean wasDirty = ek[e] <= 64;
                assertEquals(wasDirty, ed[e], "key " + ek[e]);
                assertEquals(wasDirty ? -1f : 100 + ek[e] - 1, ev[e * DIM], "key " + ek[e]);
            }
            assertTrue(dirtyEntries(t).isEmpty(), "installed clean");
        }
        // Device form: dirty installs are exported as dirty.
        try (GpuHashTable t = GpuHashTable.create(DIM, 1024, ScoreMode.LRU)) {
            long[] keys = {3, 4, 5};
            float[] rows = new float[3 * DIM];
            Arrays.fill(rows, 2f);
            try (DeviceMemory k = upload(t, keys); DeviceMemory v = upload(t, rows);
                 DeviceMemory xk = new DeviceMemory(3 * 8, "evicted keys");
                 DeviceMemory xv = new DeviceMemory(3 * DIM * 4, "evicted rows");
                 DeviceMemory xd = new DeviceMemory(3, "evicted marks")) {
                assertEquals(0, t.installAbsent(k.pointer(), v.pointer(), 3, EntryState.DIRTY,
                        Evictions.withMarks(xk.pointer(), xv.pointer(), xd.pointer())));
            }
            assertEquals(Set.of(3L, 4L, 5L), dirtyEntries(t).keySet());
        }
    }
}
