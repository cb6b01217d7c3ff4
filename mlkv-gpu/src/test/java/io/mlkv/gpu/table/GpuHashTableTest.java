package io.mlkv.gpu.table;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** GPU table behaviour against plain-Java oracles. Seeds are printed on failure. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuHashTableTest {

    private static float[] rowsFor(long[] keys, int dim, float salt) {
        float[] v = new float[keys.length * dim];
        for (int i = 0; i < keys.length; i++) {
            for (int d = 0; d < dim; d++) {
                v[i * dim + d] = (keys[i] % 100_000) * 0.5f + d + salt;
            }
        }
        return v;
    }

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    @Test
    void millionsOfRandomKeysRoundTripBelowCapacity() {
        long seed = seed();
        int dim = 32;
        try (GpuHashTable t = GpuHashTable.create(dim, 8L << 20, ScoreMode.LRU, 1 << 20)) {
            SplittableRandom r = new SplittableRandom(seed);
            Map<Long, Integer> index = new HashMap<>();
            long[] keys = new long[2_000_000];
            for (int i = 0; i < keys.length; i++) {
                long k;
                do {
                    k = r.nextLong();
                } while (k == io.mlkv.storage.ReservedKeys.EMPTY || k == io.mlkv.storage.ReservedKeys.LOCKED || index.containsKey(k));
                keys[i] = k;
                index.put(k, i);
            }
            float[] values = rowsFor(keys, dim, 1);
            t.insertOrAssign(keys, values, null);
            assertEquals(keys.length, t.size(), "seed " + seed);
            assertEquals(0, t.evictions(), "seed " + seed);
            float[] out = new float[values.length];
            boolean[] found = new boolean[keys.length];
            assertEquals(keys.length, t.find(keys, out, found), "seed " + seed);
            assertArrayEquals(values, out, "seed " + seed);
            long[] absent = new long[100_000];
            for (int i = 0; i < absent.length; i++) {
                long k;
                do {
                    k = r.nextLong();
                } while (index.containsKey(k) || k == io.mlkv.storage.ReservedKeys.EMPTY || k == io.mlkv.storage.ReservedKeys.LOCKED);
                absent[i] = k;
            }
            assertEquals(0, t.find(absent, new float[absent.length * dim], new boolean[absent.length]), "seed " + seed);
        }
    }

    /**
     * Overfills a small table with insertAndEvict. After every call, each key that was in the
     * table or in the batch is either in the table with its newest value, or was returned as
     * evicted, its last returned copy holding its newest value; no other key is returned, and
     * every returned value is one the key really had.
     */
    @Test
    void atFullLoadEveryKeyIsFoundOrReturnedAsEvicted() {
        long seed = seed();
        int dim = 8;
        // 512 buckets, about 40 new keys each per call; then 2 buckets, thousands each, all racing for slots.
        for (long capacity : new long[] {1 << 16, 2 * GpuHashTable.BUCKET_SLOTS}) {
            try (GpuHashTable t = GpuHashTable.create(dim, capacity, ScoreMode.LRU, 1 << 15)) {
                SplittableRandom r = new SplittableRandom(seed);
                Map<Long, float[]> live = new HashMap<>();
                long inserted = 0;
                for (int call = 0; call < 12; call++) {
                    int n = 20_000;
                    long[] keys = new long[n];
                    for (int i = 0; i < n; i++) {
                        keys[i] = r.nextInt(400_000);
                    }
                    float[] values = rowsFor(keys, dim, call);
                    long[] ek = new long[n];
                    float[] ev = new float[n * dim];
                    int e = t.insertAndEvict(keys, values, null, ek, ev, null);
                    Map<Long, float[]> written = new HashMap<>();
                    for (int i = 0; i < n; i++) {
                        written.put(keys[i], Arrays.copyOfRange(values, i * dim, (i + 1) * dim));
                    }
                    Map<Long, float[]> lastEvicted = new HashMap<>();
                    for (int j = 0; j < e; j++) {
                        long k = ek[j];
                        float[] v = Arrays.copyOfRange(ev, j * dim, (j + 1) * dim);
                        float[] before = live.get(k);
                        float[] now = written.get(k);
                        assertTrue((before != null && Arrays.equals(before, v)) || (now != null && Arrays.equals(now, v)),
                                "evicted key " + k + " carried a value it never had, call " + call + ", capacity "
                                        + capacity + ", seed " + seed);
                        lastEvicted.put(k, v);
                    }
                    Map<Long, float[]> expected = new HashMap<>(live);
                    expected.putAll(written);
                    long[] all = expected.keySet().stream().mapToLong(Long::longValue).toArray();
                    float[] out = new float[all.length * dim];
                    boolean[] found = new boolean[all.length];
                    int present = t.find(all, out, found);
                    live.clear();
                    for (int i = 0; i < all.length; i++) {
                        float[] newest = expected.get(all[i]);
                        if (found[i]) {
                            assertArrayEquals(newest, Arrays.copyOfRange(out, i * dim, (i + 1) * dim),
                                    "value of key " + all[i] + ", call " + call + ", capacity " + capacity + ", seed " + seed);
                            live.put(all[i], newest);
                        } else {
                            float[] last = lastEvicted.get(all[i]);
                            assertTrue(last != null, "key " + all[i] + " was lost: neither present nor evicted, call "
                                    + call + ", capacity " + capacity + ", seed " + seed);
                            assertArrayEquals(newest, last, "last evicted copy of key " + all[i] + ", capacity "
                                    + capacity + ", seed " + seed);
                        }
                    }
                    assertEquals(present, t.size(), "size after call " + call + ", capacity " + capacity + ", seed " + seed);
                    inserted += n;
                }
                assertTrue(t.evictions() > 0, "the test must overflow the table of " + capacity);
                assertTrue(inserted > t.capacity());
            }
        }
    }

    private record Inserted(long[] keys, List<Long> evicted) {
    }

    /**
     * One insertAndEvict of random keys, at most one per bucket (so the GPU's choices are
     * deterministic), with random scores where the table takes custom ones; asserts that it
     * evicts exactly what the model evicts.
     */
    private static Inserted insertOnePerBucketAsTheModelSays(GpuHashTable t, BucketModel model, SplittableRandom r, int dim,
            String where) {
        Map<Integer, Long> perBucket = new HashMap<>();
        for (int tries = 0; tries < 40; tries++) {
            long k = r.nextInt(5000);
            perBucket.putIfAbsent(model.bucketOf(k), k);
        }
        long[] keys = perBucket.values().stream().mapToLong(Long::longValue).toArray();
        long[] scores = new long[keys.length];
        for (int i = 0; i < keys.length; i++) {
            scores[i] = r.nextInt(1000);
        }
        List<Long> expected = model.insert(keys, scores);
        long[] ek = new long[keys.length];
        int e = t.insertAndEvict(keys, new float[keys.length * dim], t.scoreMode() == ScoreMode.CUSTOM ? scores : null,
                ek, new float[keys.length * dim], null);
        List<Long> actual = new ArrayList<>();
        for (int j = 0; j < e; j++) {
            actual.add(ek[j]);
        }
        actual.sort(null);
        expected.sort(null);
        assertEquals(expected, actual, "evictions, " + where);
        return new Inserted(keys, actual);
    }

    @Test
    void fullBucketsEvictAsTheReferenceModelSays() {
        for (ScoreMode mode : ScoreMode.values()) {
            long seed = seed();
            try (GpuHashTable t = GpuHashTable.create(4, 16 * GpuHashTable.BUCKET_SLOTS, mode, 1 << 10)) {
                BucketModel model = new BucketModel(t.buckets(), mode);
                SplittableRandom r = new SplittableRandom(seed);
                for (int call = 0; call < 400; call++) {
                    insertOnePerBucketAsTheModelSays(t, model, r, 4, mode + " call " + call + ", seed " + seed);
                }
                assertTrue(t.evictions() > 0, mode + ": no bucket filled up");
            }
        }
    }

    @Test
    void readsThatScoreDecideWhichEntryAFullBucketEvicts() {
        for (ScoreMode mode : ScoreMode.values()) {
            for (boolean scoring : new boolean[] {true, false}) {
                long seed = seed();
                String where = mode + (scoring ? " scoring reads" : " plain reads") + ", seed " + seed;
                int dim = 4;
                try (GpuHashTable t = GpuHashTable.create(dim, 16 * GpuHashTable.BUCKET_SLOTS, mode, 1 << 10);
                     DeviceMemory dKeys = new DeviceMemory(400 * 8L, "test keys");
                     DeviceMemory dOut = new DeviceMemory(400L * dim * 4, "test out");
                     DeviceMemory dFound = new DeviceMemory(400, "test found")) {
                    t.scoreReads(scoring);
                    BucketModel model = new BucketModel(t.buckets(), mode);
                    SplittableRandom r = new SplittableRandom(seed);
                    List<Long> present = new ArrayList<>();
                    for (int call = 0; call < 300; call++) {
                        // Reads of present keys (repeats included), through both APIs and peek, which never scores.
                        long[] reads = new long[1 + r.nextInt(200)];
                        for (int i = 0; i < reads.length; i++) {
                            reads[i] = present.isEmpty() || r.nextInt(10) == 0 ? 10_000 + r.nextInt(1000)
                                    : present.get(r.nextInt(present.size()));
                        }
                        boolean[] found = new boolean[reads.length];
                        float[] out = new float[reads.length * dim];
                        switch (call % 3) {
                            case 0 -> t.find(reads, out, found);
                            case 1 -> {
                                Cuda.check(cuMemcpyHtoD(dKeys.pointer(), Pointer.to(reads), reads.length * 8L), "cuMemcpyHtoD");
                                t.find(dKeys.pointer(), reads.length, dOut.pointer(), dFound.pointer(), null, null);
                            }
                            default -> t.peek(reads, out, found);
                        }
                        if (scoring && call % 3 != 2) {
                            model.read(reads);
                        }
                        // Then at most one new or present key per bucket, so the GPU's choices are deterministic.
                        Inserted in = insertOnePerBucketAsTheModelSays(t, model, r, dim, "call " + call + ", " + where);
                        present.removeAll(in.evicted());
                        for (long k : in.keys()) {
                            if (model.contains(k) && !present.contains(k)) {
                                present.add(k);
                            }
                        }
                    }
                    assertTrue(t.evictions() > 0, "no bucket filled up, " + where);
                }
            }
        }
    }

    @Test
    void duplicatesInABatchAreStoredOnceAndTheLastOccurrenceWins() {
        int dim = 64;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 14, ScoreMode.LRU, 1 << 10)) {
            long[] keys = new long[300];
            float[] values = new float[keys.length * dim];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i % 7;
                Arrays.fill(values, i * dim, (i + 1) * dim, i);
            }
            t.insertOrAssign(keys, values, null);
            assertEquals(7, t.size());
            float[] out = new float[7 * dim];
            t.find(new long[] {0, 1, 2, 3, 4, 5, 6}, out, new boolean[7]);
            for (int k = 0; k < 7; k++) {
                float v = out[k * dim];
                int last = 299 - Math.floorMod(299 - k, 7);
                assertEquals(last, (int) v, "key " + k + " must keep its last occurrence's value");
                for (int d = 1; d < dim; d++) {
                    assertEquals(v, out[k * dim + d], "key " + k + " holds a mix of two occurrences");
                }
            }
            float[] reversed = new float[keys.length * dim];
            for (int i = 0; i < keys.length; i++) {
                Arrays.fill(reversed, i * dim, (i + 1) * dim, -i);
            }
            boolean[] assigned = new boolean[keys.length];
            t.assign(keys, reversed, null, assigned);
            t.find(new long[] {0, 1, 2, 3, 4, 5, 6}, out, new boolean[7]);
            for (int k = 0; k < 7; k++) {
                int last = 299 - Math.floorMod(299 - k, 7);
                assertEquals(-last, out[k * dim + dim - 1], "assign: key " + k + " must keep its last occurrence");
            }
            for (boolean a : assigned) {
                assertTrue(a, "every occurrence of an existing key reports it found");
            }
            float[] ones = new float[keys.length * dim];
            Arrays.fill(ones, 1f);
            long[] fresh = new long[keys.length];
            for (int i = 0; i < fresh.length; i++) {
                fresh[i] = 1000 + i % 5;
            }
            t.accumOrAssign(fresh, ones, null);
            t.find(new long[] {1000, 1004}, out, new boolean[2]);
            assertEquals(60f, out[0]);
            assertEquals(60f, out[dim + dim - 1]);
            float[] init = new float[keys.length * dim];
            for (int i = 0; i < keys.length; i++) {
                fresh[i] = 5000 + i % 3;
                Arrays.fill(init, i * dim, (i + 1) * dim, i + 0.5f);
            }
            float[] got = new float[keys.length * dim];
            t.findOrInsert(fresh, init, null, got, null);
            for (int i = 0; i < keys.length; i++) {
                assertEquals(got[(i % 3) * dim], got[i * dim], "occurrences of key " + fresh[i] + " disagree");
            }
            assertEquals(7 + 5 + 3, t.size());
        }
    }

    /**
     * accumExisting adds every occurrence's delta, whole rows: with 16-byte vector atomics where
     * the dimension and both rows allow them (dim 64, 68), element by element where they do not
     * (dim 6; deltas at an address 4 bytes off 16), with hot keys repeated thousands of times.
     */
    @Test
    void accumulateAddsEveryOccurrenceOfHotKeysToEveryElement() {
        long seed = seed();
        for (int dim : new int[] {6, 64, 68}) {
            for (int offset : new int[] {0, 4}) {
                accumulateHotKeys(dim, offset, seed + dim * 31L + offset);
            }
        }
    }

    private static void accumulateHotKeys(int dim, int offsetBytes, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int keys = 500;
        int n = 40_000;
        String where = "dim " + dim + ", deltas offset " + offsetBytes + " bytes, seed " + seed;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 14, ScoreMode.LRU)) {
            long[] loaded = new long[keys];
            float[] rows = new float[keys * dim];
            for (int k = 0; k < keys; k++) {
                loaded[k] = 10_000 + k;
                for (int x = 0; x < dim; x++) {
                    rows[k * dim + x] = k + x * 0.5f;
                }
            }
            t.insertOrAssign(loaded, rows, null);
            long[] batch = new long[n];
            float[] deltas = new float[n * dim];
            float[] want = rows.clone();
            for (int i = 0; i < n; i++) {
                // Half the batch on three hot keys, the rest spread over every key plus absent ones.
                int k = rnd.nextInt(2) == 0 ? rnd.nextInt(3) : rnd.nextInt(keys + 50);
                batch[i] = 10_000 + k;
                for (int x = 0; x < dim; x++) {
                    float d = rnd.nextInt(-4, 5) * 0.25f; // sums are exact in any order
                    deltas[i * dim + x] = d;
                    if (k < keys) {
                        want[k * dim + x] += d;
                    }
                }
            }
            t.makeDeviceCurrent();
            try (DeviceMemory k = new DeviceMemory(n * 8L, "keys");
                 DeviceMemory d = new DeviceMemory(n * dim * 4L + offsetBytes, "deltas");
                 DeviceMemory found = new DeviceMemory(n, "found")) {
                Cuda.check(cuMemcpyHtoD(k.pointer(), Pointer.to(batch), n * 8L), "cuMemcpyHtoD (keys)");
                Cuda.check(cuMemcpyHtoD(d.pointer().withByteOffset(offsetBytes), Pointer.to(deltas), n * dim * 4L),
                        "cuMemcpyHtoD (deltas)");
                t.accumExisting(k.pointer(), d.pointer().withByteOffset(offsetBytes), null, n, found.pointer());
                byte[] hit = new byte[n];
                Cuda.check(cuMemcpyDtoH(Pointer.to(hit), found.pointer(), n), "cuMemcpyDtoH (found)");
                for (int i = 0; i < n; i++) {
                    assertEquals(batch[i] < 10_000 + keys ? 1 : 0, hit[i], "found byte of key " + batch[i] + ", " + where);
                }
            }
            float[] got = new float[keys * dim];
            boolean[] present = new boolean[keys];
            assertEquals(keys, t.find(loaded, got, present), where);
            for (int k = 0; k < keys; k++) {
                assertArrayEquals(Arrays.copyOfRange(want, k * dim, (k + 1) * dim),
                        Arrays.copyOfRange(got, k * dim, (k + 1) * dim), "row of key " + loaded[k] + ", " + where);
            }
            float[] none = new float[dim];
            boolean[] absent = new boolean[1];
            t.find(new long[] {10_000 + keys}, none, absent);
            assertFalse(absent[0], "an absent key stays absent, " + where);
        }
    }

    @Test
    void findIntoWritesEachKeysResultAtItsOutputIndexAndLeavesMissedRowsAlone() {
        int dim = 20;
        int n = 3_000;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 16, ScoreMode.LRU, 1 << 12)) {
            long[] present = new long[n];
            for (int i = 0; i < n; i++) {
                present[i] = 1_000 + i;
            }
            float[] rows = rowsFor(present, dim, 3);
            t.insertOrAssign(present, rows, null);
            // Batch: every even position a present key, every odd one absent; results go in reverse order.
            long[] batch = new long[n];
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                batch[i] = i % 2 == 0 ? present[i] : -1 - i;
                index[i] = n - 1 - i;
            }
            float[] sentinel = new float[n * dim];
            Arrays.fill(sentinel, -7f);
            t.makeDeviceCurrent();
            try (DeviceMemory k = new DeviceMemory(n * 8L, "keys");
                 DeviceMemory at = new DeviceMemory(n * 4L, "output index");
                 DeviceMemory out = new DeviceMemory(n * dim * 4L, "out");
                 DeviceMemory found = new DeviceMemory(n, "found")) {
                Cuda.check(cuMemcpyHtoD(k.pointer(), Pointer.to(batch), n * 8L), "cuMemcpyHtoD (keys)");
                Cuda.check(cuMemcpyHtoD(at.pointer(), Pointer.to(index), n * 4L), "cuMemcpyHtoD (index)");
                Cuda.check(cuMemcpyHtoD(out.pointer(), Pointer.to(sentinel), n * dim * 4L), "cuMemcpyHtoD (out)");
                t.findInto(k.pointer(), n, at.pointer(), out.pointer(), found.pointer());
                float[] got = new float[n * dim];
                byte[] hit = new byte[n];
                Cuda.check(cuMemcpyDtoH(Pointer.to(got), out.pointer(), n * dim * 4L), "cuMemcpyDtoH (out)");
                Cuda.check(cuMemcpyDtoH(Pointer.to(hit), found.pointer(), n), "cuMemcpyDtoH (found)");
                for (int i = 0; i < n; i++) {
                    int o = index[i];
                    assertEquals(i % 2 == 0 ? 1 : 0, hit[o], "found byte of key " + batch[i] + " at output " + o);
                    float[] want = i % 2 == 0 ? Arrays.copyOfRange(rows, i * dim, (i + 1) * dim) : Arrays.copyOfRange(sentinel, 0, dim);
                    assertArrayEquals(want, Arrays.copyOfRange(got, o * dim, (o + 1) * dim), "row of key " + batch[i] + " at output " + o);
                }
            }
        }
    }

    /**
     * The pre-pass marks only batches (chunks of the staging size) that repeat a key; chunks with
     * and without repeats, in any order within and across calls, must each leave every key's last
     * occurrence, with no row mixed from two occurrences.
     */
    @Test
    void chunksWithAndWithoutRepeatedKeysEachKeepTheLastOccurrence() {
        // LRU repairs repeats after the write, LFU marks them before: both must give the same table.
        for (ScoreMode mode : new ScoreMode[] {ScoreMode.LRU, ScoreMode.LFU}) {
            lastOccurrencesWinInEveryChunk(mode, seed());
        }
    }

    private static void lastOccurrencesWinInEveryChunk(ScoreMode scoreMode, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int dim = 16;
        int chunk = 256;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 17, scoreMode, chunk)) {
            Map<Long, Float> model = new HashMap<>();
            float next = 1;
            for (int call = 0; call < 40; call++) {
                long[] keys = new long[chunk * (1 + rnd.nextInt(4)) - rnd.nextInt(chunk)];
                for (int i = 0; i < keys.length; i++) {
                    // Some chunks draw from a few keys (repeats certain), others are distinct.
                    boolean repeats = ((i / chunk) + call) % 3 == 0;
                    keys[i] = repeats ? rnd.nextInt(40) : 1000L + call * 4096L + i;
                }
                boolean assignOnly = call % 4 == 3;
                float[] rows = new float[keys.length * dim];
                for (int i = 0; i < keys.length; i++) {
                    Arrays.fill(rows, i * dim, (i + 1) * dim, next++);
                }
                if (assignOnly) {
                    t.assign(keys, rows, null, new boolean[keys.length]);
                } else {
                    t.insertOrAssign(keys, rows, null);
                }
                for (int i = 0; i < keys.length; i++) {
                    if (!assignOnly || model.containsKey(keys[i])) {
                        model.put(keys[i], rows[i * dim]);
                    }
                }
            }
            long[] all = model.keySet().stream().mapToLong(Long::longValue).toArray();
            float[] out = new float[all.length * dim];
            boolean[] found = new boolean[all.length];
            String where = scoreMode + ", seed " + seed;
            assertEquals(all.length, t.find(all, out, found), where);
            assertEquals(model.size(), t.size(), where);
            for (int k = 0; k < all.length; k++) {
                assertEquals(model.get(all[k]), out[k * dim], "key " + all[k] + ", " + where);
                assertEquals(out[k * dim], out[k * dim + dim - 1], "key " + all[k] + " mixes two rows, " + where);
            }
        }
    }

    /**
     * With unique keys promised, batches that keep the promise behave as always, and one that
     * breaks it still stores each key once, with values taken from its occurrences.
     */
    @Test
    void promisedUniqueKeysSkipThePrePassAndABrokenPromiseCorruptsNothing() {
        int dim = 16;
        long seed = seed();
        SplittableRandom rnd = new SplittableRandom(seed);
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 14, ScoreMode.LRU, 1 << 10)) {
            t.uniqueKeys(true);
            long[] keys = new long[3000];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = 1 + i;
            }
            t.insertOrAssign(keys, rowsFor(keys, dim, 1), null);
            float[] assigned = rowsFor(keys, dim, 2);
            t.assign(keys, assigned, null, null);
            float[] out = new float[keys.length * dim];
            assertEquals(keys.length, t.find(keys, out, new boolean[keys.length]));
            assertArrayEquals(assigned, out, "unique batches: every key holds its assigned row");

            // Broken promise: 20 keys, each 50 times, rows tagged with their position.
            long[] repeated = new long[1000];
            float[] rows = new float[repeated.length * dim];
            for (int i = 0; i < repeated.length; i++) {
                repeated[i] = 100_000 + rnd.nextInt(20);
                Arrays.fill(rows, i * dim, (i + 1) * dim, i);
            }
            long before = t.size();
            t.insertOrAssign(repeated, rows, null);
            Set<Long> distinct = new HashSet<>();
            for (long k : repeated) {
                distinct.add(k);
            }
            assertEquals(before + distinct.size(), t.size(), "each repeated key stored once (seed " + seed + ")");
            long[] ks = distinct.stream().mapToLong(Long::longValue).toArray();
            float[] got = new float[ks.length * dim];
            assertEquals(ks.length, t.find(ks, got, new boolean[ks.length]));
            for (int k = 0; k < ks.length; k++) {
                int from = (int) got[k * dim];
                assertEquals(ks[k], repeated[from], "insert: the value of key " + ks[k] + " comes from one of its occurrences (seed " + seed + ")");
                for (int d = 1; d < dim; d++) {
                    assertEquals(from, (int) got[k * dim + d], "insert: one occurrence's whole row (seed " + seed + ")");
                }
            }
            t.assign(repeated, rows, null, null);
            t.find(ks, got, new boolean[ks.length]);
            for (int k = 0; k < ks.length; k++) {
                for (int d = 0; d < dim; d++) {
                    int from = (int) got[k * dim + d];
                    assertEquals(ks[k], repeated[from], "assign: element " + d + " of key " + ks[k] + " comes from one of its occurrences (seed " + seed + ")");
                }
            }
            assertEquals(keys.length, t.find(keys, out, new boolean[keys.length]), "other keys untouched");
            assertArrayEquals(assigned, out);
        }
    }

    @Test
    void eraseThenReinsertAndAssignOnlyTouchesExistingKeys() {
        int dim = 4;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 12, ScoreMode.LFU, 1 << 10)) {
            long[] keys = {1, 2, 3, 4};
            t.insertOrAssign(keys, rowsFor(keys, dim, 0), null);
            assertEquals(2, t.erase(new long[] {2, 4, 4, 99}));
            boolean[] present = new boolean[4];
            assertEquals(2, t.containsKeys(keys, present));
            assertFalse(present[1]);
            boolean[] found = new boolean[2];
            t.assign(new long[] {2, 3}, new float[] {9, 9, 9, 9, 7, 7, 7, 7}, null, found);
            assertFalse(found[0]);
            assertTrue(found[1]);
            assertEquals(2, t.size());
            t.insertOrAssign(new long[] {2}, new float[] {5, 5, 5, 5}, null);
            float[] out = new float[3 * dim];
            assertEquals(3, t.find(new long[] {1, 2, 3}, out, new boolean[3]));
            assertArrayEquals(new float[] {5, 5, 5, 5}, Arrays.copyOfRange(out, dim, 2 * dim));
            assertArrayEquals(new float[] {7, 7, 7, 7}, Arrays.copyOfRange(out, 2 * dim, 3 * dim));
            t.clear();
            assertEquals(0, t.size());
        }
    }

    @Test
    void exportWalksEveryEntryExactlyOnce() {
        int dim = 16;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 16, ScoreMode.LRU, 5000)) {
            long[] keys = new long[30_000];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i * 3L + 1;
            }
            float[] values = rowsFor(keys, dim, 2);
            t.insertOrAssign(keys, values, null);
            Map<Long, float[]> seen = new HashMap<>();
            long[] pk = new long[t.stagingKeys()];
            float[] pv = new float[t.stagingKeys() * dim];
            for (long off = 0; off < t.capacity(); off += t.stagingKeys()) {
                int count = (int) Math.min(t.stagingKeys(), t.capacity() - off);
                int n = t.exportBatch(off, count, pk, pv, null);
                for (int i = 0; i < n; i++) {
                    if (seen.put(pk[i], Arrays.copyOfRange(pv, i * dim, (i + 1) * dim)) != null) {
                        fail("key " + pk[i] + " exported twice");
                    }
                }
            }
            assertEquals(keys.length, seen.size());
            for (int i = 0; i < keys.length; i++) {
                assertArrayEquals(Arrays.copyOfRange(values, i * dim, (i + 1) * dim), seen.get(keys[i]));
            }
        }
    }

    @Test
    void theDevicePointerApiRoundTripsAndCompactsMisses() {
        int dim = 8;
        int n = 1000;
        try (GpuHashTable t = GpuHashTable.create(dim, 1 << 14, ScoreMode.LRU, 1 << 10);
                DeviceMemory dKeys = new DeviceMemory(n * 8L, "test keys");
                DeviceMemory dValues = new DeviceMemory((long) n * dim * 4, "test values");
                DeviceMemory dOut = new DeviceMemory((long) n * dim * 4, "test out");
                DeviceMemory dFound = new DeviceMemory(n, "test found");
                DeviceMemory dMissed = new DeviceMemory(n * 8L, "test missed");
                DeviceMemory dMissedIdx = new DeviceMemory(n * 4L, "test missed index")) {
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = i;
            }
            float[] values = rowsFor(keys, dim, 3);
            Cuda.check(cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L), "cuMemcpyHtoD");
            Cuda.check(cuMemcpyHtoD(dValues.pointer(), Pointer.to(values), (long) n * dim * 4), "cuMemcpyHtoD");
            t.insertOrAssign(dKeys.pointer(), dValues.pointer(), null, n / 2);
            long missed = t.find(dKeys.pointer(), n, dOut.pointer(), dFound.pointer(), dMissed.pointer(), dMissedIdx.pointer());
            assertEquals(n / 2, missed);
            float[] out = new float[n * dim];
            byte[] found = new byte[n];
            long[] missedKeys = new long[n];
            int[] missedIdx = new int[n];
            Cuda.check(cuMemcpyDtoH(Pointer.to(out), dOut.pointer(), (long) n * dim * 4), "cuMemcpyDtoH");
            Cuda.check(cuMemcpyDtoH(Pointer.to(found), dFound.pointer(), n), "cuMemcpyDtoH");
            Cuda.check(cuMemcpyDtoH(Pointer.to(missedKeys), dMissed.pointer(), n * 8L), "cuMemcpyDtoH");
            Cuda.check(cuMemcpyDtoH(Pointer.to(missedIdx), dMissedIdx.pointer(), n * 4L), "cuMemcpyDtoH");
            assertArrayEquals(Arrays.copyOf(values, n / 2 * dim), Arrays.copyOf(out, n / 2 * dim));
            Set<Long> missedSet = new HashSet<>();
            for (int m = 0; m < missed; m++) {
                assertEquals(keys[missedIdx[m]], missedKeys[m]);
                missedSet.add(missedKeys[m]);
            }
            for (int i = 0; i < n; i++) {
                assertEquals(i < n / 2 ? 1 : 0, found[i]);
                assertEquals(i >= n / 2, missedSet.contains((long) i));
            }
        }
    }

    /**
     * Device insertAndEvict without a scores output returns every evicted key and row; rows
     * gathered by index and scattered back by the same index land where they came from.
     */
    @Test
    void deviceEvictionsNeedNoScoresAndGatherUndoesScatter() {
        int dim = 8;
        int n = 600; // into a one-bucket table of 128 slots
        try (GpuHashTable t = GpuHashTable.create(dim, 128, ScoreMode.LRU, 1 << 10);
                DeviceMemory dKeys = new DeviceMemory(n * 8L, "test keys");
                DeviceMemory dValues = new DeviceMemory((long) n * dim * 4, "test values");
                DeviceMemory dEvKeys = new DeviceMemory(n * 8L, "test evicted keys");
                DeviceMemory dEvValues = new DeviceMemory((long) n * dim * 4, "test evicted values");
                DeviceMemory dIndex = new DeviceMemory(n * 4L, "test index");
                DeviceMemory dGathered = new DeviceMemory((long) n * dim * 4, "test gathered");
                DeviceMemory dBack = new DeviceMemory((long) n * dim * 4, "test scattered back");
                DeviceMemory dFound = new DeviceMemory(n, "test found")) {
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 1000 + i;
            }
            float[] values = rowsFor(keys, dim, 7);
            Cuda.check(cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L), "cuMemcpyHtoD");
            Cuda.check(cuMemcpyHtoD(dValues.pointer(), Pointer.to(values), (long) n * dim * 4), "cuMemcpyHtoD");
            long evicted = t.insertAndEvict(dKeys.pointer(), dValues.pointer(), null, n, dEvKeys.pointer(),
                    dEvValues.pointer(), null);
            assertEquals(n - t.size(), evicted, "every key is held or returned");
            long[] evKeys = new long[(int) evicted];
            float[] evValues = new float[(int) evicted * dim];
            Cuda.check(cuMemcpyDtoH(Pointer.to(evKeys), dEvKeys.pointer(), evicted * 8), "cuMemcpyDtoH");
            Cuda.check(cuMemcpyDtoH(Pointer.to(evValues), dEvValues.pointer(), evicted * dim * 4), "cuMemcpyDtoH");
            for (int e = 0; e < evicted; e++) {
                int i = (int) (evKeys[e] - 1000);
                assertArrayEquals(Arrays.copyOfRange(values, i * dim, (i + 1) * dim),
                        Arrays.copyOfRange(evValues, e * dim, (e + 1) * dim), "row of evicted key " + evKeys[e]);
            }

            int[] index = new int[n];
            for (int j = 0; j < n; j++) {
                index[j] = (j * 7 + 3) % n; // a permutation: 7 is coprime to 600
            }
            Cuda.check(cuMemcpyHtoD(dIndex.pointer(), Pointer.to(index), n * 4L), "cuMemcpyHtoD");
            t.gatherRows(dValues.pointer(), dIndex.pointer(), n, dGathered.pointer());
            float[] gathered = new float[n * dim];
            Cuda.check(cuMemcpyDtoH(Pointer.to(gathered), dGathered.pointer(), (long) n * dim * 4), "cuMemcpyDtoH");
            for (int j = 0; j < n; j++) {
                assertArrayEquals(Arrays.copyOfRange(values, index[j] * dim, (index[j] + 1) * dim),
                        Arrays.copyOfRange(gathered, j * dim, (j + 1) * dim), "gathered row " + j);
            }
            t.scatterRows(dGathered.pointer(), dIndex.pointer(), n, dBack.pointer(), dFound.pointer());
            float[] back = new float[n * dim];
            Cuda.check(cuMemcpyDtoH(Pointer.to(back), dBack.pointer(), (long) n * dim * 4), "cuMemcpyDtoH");
            assertArrayEquals(values, back);
        }
    }

    /**
     * Inserts queued without waiting, several in a row into a table too small for them: the
     * calls after them see every insert, the event completes, and the evictions they counted on
     * the GPU add up with the held keys to the keys inserted, as for waited inserts.
     */
    @Test
    void insertsQueuedWithoutWaitingCountTheirEvictionsAndPrecedeLaterCalls() {
        int dim = 8;
        int n = 100;
        int calls = 4; // 400 keys into 256 slots
        try (GpuHashTable t = GpuHashTable.create(dim, 256, ScoreMode.LRU, 1 << 10);
                DeviceMemory dKeys = new DeviceMemory((long) calls * n * 8, "test keys");
                DeviceMemory dValues = new DeviceMemory((long) calls * n * dim * 4, "test values")) {
            long[] keys = new long[calls * n];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = 5000 + i;
            }
            float[] values = rowsFor(keys, dim, 3);
            Cuda.check(cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), keys.length * 8L), "cuMemcpyHtoD");
            Cuda.check(cuMemcpyHtoD(dValues.pointer(), Pointer.to(values), (long) values.length * 4), "cuMemcpyHtoD");
            CUevent done = new CUevent();
            Cuda.check(cuEventCreate(done, 0), "cuEventCreate");
            try {
                for (int c = 0; c < calls; c++) {
                    t.insertOrAssignAsync(dKeys.pointer().withByteOffset((long) c * n * 8),
                            dValues.pointer().withByteOffset((long) c * n * dim * 4), null, n, done);
                }
                long size = t.size();
                assertEquals(keys.length, size + t.evictions(), "every key inserted is held or was counted as evicted");
                assertTrue(t.evictions() > 0, "the table was too small");
                Cuda.check(cuEventSynchronize(done), "cuEventSynchronize");
                float[] out = new float[keys.length * dim];
                boolean[] found = new boolean[keys.length];
                assertEquals(size, t.find(keys, out, found), "finds after the queued inserts see all of them");
                for (int i = 0; i < keys.length; i++) {
                    if (found[i]) {
                        assertArrayEquals(Arrays.copyOfRange(values, i * dim, (i + 1) * dim),
                                Arrays.copyOfRange(out, i * dim, (i + 1) * dim), "row of key " + keys[i]);
                    }
                }
                // The most recent call's keys are the newest: LRU kept them all.
                for (int i = (calls - 1) * n; i < keys.length; i++) {
                    assertTrue(found[i], "key " + keys[i] + " of the last insert");
                }
                long before = t.evictions();
                t.insertOrAssign(new long[] {1, 2, 3}, rowsFor(new long[] {1, 2, 3}, dim, 0), null);
                assertEquals(before + 3, t.evictions() + (t.size() - size), "a waited insert after them counts as before");
            } finally {
                cuEventDestroy(done);
            }
        }
    }

    /**
     * A plain cuMemcpyHtoD from a Java array (pageable memory) returns before its DMA has landed;
     * a device call right after it must still see the keys it copied, not the ones before. Two
     * disjoint key sets, one in the table, alternate in the same device buffer.
     */
    @Test
    void deviceCallsReadKeysCopiedJustBeforeOnTheDefaultStream() {
        int dim = 4;
        int n = 1 << 21; // 16 MiB of keys per copy
        long[] held = new long[n];
        long[] absent = new long[n];
        for (int i = 0; i < n; i++) {
            held[i] = 1 + i;
            absent[i] = 1 + n + i;
        }
        try (GpuHashTable t = GpuHashTable.create(dim, 2L * n, ScoreMode.LRU, 1 << 16);
                DeviceMemory dKeys = new DeviceMemory(n * 8L, "test keys");
                DeviceMemory dFound = new DeviceMemory(n, "test found")) {
            t.insertOrAssign(held, new float[n * dim], null);
            assertEquals(n, t.size(), "every key fits");
            byte[] found = new byte[n];
            for (int round = 0; round < 40; round++) {
                boolean heldRound = round % 2 == 1;
                Cuda.check(cuMemcpyHtoD(dKeys.pointer(), Pointer.to(heldRound ? held : absent), n * 8L), "cuMemcpyHtoD");
                t.contains(dKeys.pointer(), n, dFound.pointer());
                Cuda.check(cuMemcpyDtoH(Pointer.to(found), dFound.pointer(), n), "cuMemcpyDtoH");
                int hits = 0;
                for (byte f : found) {
                    hits += f;
                }
                assertEquals(heldRound ? n : 0, hits, "round " + round + (heldRound ? " (held keys)" : " (absent keys)"));
            }
        }
    }

    @Test
    void reservedKeysAreRefusedAndAnImpossibleTableNamesTheMemory() {
        try (GpuHashTable t = GpuHashTable.create(4, 1024, ScoreMode.LRU, 64)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> t.insertOrAssign(new long[] {io.mlkv.storage.ReservedKeys.EMPTY}, new float[4], null));
            assertTrue(e.getMessage().contains("reserved"), e.getMessage());
            assertEquals(0, t.size());
        }
        MlkvException e = assertThrows(MlkvException.class, () -> GpuHashTable.create(64, 1L << 36, ScoreMode.LRU));
        assertEquals(StatusCode.OUT_OF_MEMORY, e.status());
        assertTrue(e.getMessage().contains("free"), e.getMessage());
    }
}
