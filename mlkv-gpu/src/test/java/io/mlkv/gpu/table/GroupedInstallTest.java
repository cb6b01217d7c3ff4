package io.mlkv.gpu.table;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Installs grouped by bucket ({@link GpuHashTable#groupInstalls}) against the per-key kernel: the
 * same entries installed, kept and evicted (with their rows and dirty marks) where the rules
 * decide them, and nothing lost where many newcomers overrun a bucket. Seeds are printed on failure.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GroupedInstallTest {
    private static final int DIM = 4;
    private static final int BUCKETS = 16;
    private static final int SLOTS = GpuHashTable.BUCKET_SLOTS;

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    private static float[] rowOf(long key, float tag) {
        float[] row = new float[DIM];
        for (int d = 0; d < DIM; d++) {
            row[d] = key * 10 + d + tag;
        }
        return row;
    }

    private static float[] rows(long[] keys, float tag) {
        float[] out = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            System.arraycopy(rowOf(keys[i], tag), 0, out, i * DIM, DIM);
        }
        return out;
    }

    /**
     * A full table of 16 buckets filled one key per bucket per call, so every bucket's scores
     * differ; the keys of fill call 5 are then written dirty. An install bringing 40 new keys and
     * 3 recent ones to each bucket (far above the grouping threshold) must evict exactly the 40
     * oldest entries of each bucket, returning the dirty ones with their marks and newer rows, keep
     * the recent keys' rows, and install the new rows; a second install of the same batch changes
     * nothing. Grouped and per-key installs alike.
     */
    @ParameterizedTest(name = "grouped {0}")
    @ValueSource(booleans = {true, false})
    void aFullTableEvictsExactlyItsOldestEntriesPerBucket(boolean grouped) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        BucketModel model = new BucketModel(BUCKETS, ScoreMode.LRU);
        try (GpuHashTable t = GpuHashTable.create(DIM, (long) BUCKETS * SLOTS, ScoreMode.LRU)) {
            t.groupInstalls(grouped);
            long[][] byRound = new long[SLOTS][];
            Set<Long> used = new HashSet<>();
            for (int round = 0; round < SLOTS; round++) {
                byRound[round] = onePerBucket(model, r, used);
                t.insertOrAssign(byRound[round], rows(byRound[round], 0), null);
                if (round == 5) {
                    boolean[] found = new boolean[BUCKETS];
                    t.assignDirty(byRound[round], rows(byRound[round], 0.5f), found);
                    for (boolean f : found) {
                        assertTrue(f, "seed " + seed);
                    }
                }
            }
            assertEquals((long) BUCKETS * SLOTS, t.size(), "filled, seed " + seed);
            List<Long> batch = new ArrayList<>();
            List<Long> fresh = new ArrayList<>();
            for (int k = 0; k < 40; k++) {
                for (long key : onePerBucket(model, r, used)) {
                    batch.add(key);
                    fresh.add(key);
                }
            }
            List<Long> recent = new ArrayList<>();
            for (int round = SLOTS - 3; round < SLOTS; round++) {
                for (long key : byRound[round]) {
                    batch.add(key);
                    recent.add(key);
                }
            }
            java.util.Collections.shuffle(batch, new java.util.Random(seed));
            long[] keys = batch.stream().mapToLong(Long::longValue).toArray();
            assertTrue(keys.length >= TableCore.GROUPED_KEYS_PER_BUCKET * BUCKETS, "the batch must reach the grouping threshold");
            long[] ek = new long[keys.length];
            float[] ev = new float[keys.length * DIM];
            boolean[] ed = new boolean[keys.length];
            int evicted = t.installAbsent(keys, rows(keys, 0.25f), ek, ev, ed);

            Set<Long> expectedOut = new HashSet<>();
            for (int round = 0; round < 40; round++) {
                for (long key : byRound[round]) {
                    expectedOut.add(key);
                }
            }
            assertEquals(expectedOut.size(), evicted, "evictions, grouped " + grouped + ", seed " + seed);
            Set<Long> out = new HashSet<>();
            for (int e = 0; e < evicted; e++) {
                long key = ek[e];
                assertTrue(out.add(key), "key " + key + " evicted twice, seed " + seed);
                assertTrue(expectedOut.contains(key), "key " + key + " is not among its bucket's 40 oldest, seed " + seed);
                boolean dirty = Arrays.stream(byRound[5]).anyMatch(k -> k == key);
                assertEquals(dirty, ed[e], "dirty mark of evicted key " + key + ", seed " + seed);
                assertArrayEquals(rowOf(key, dirty ? 0.5f : 0), Arrays.copyOfRange(ev, e * DIM, (e + 1) * DIM),
                        "row of evicted key " + key + ", seed " + seed);
            }
            assertEquals((long) BUCKETS * SLOTS, t.size(), "still full, seed " + seed);
            assertRows(t, fresh, 0.25f, "installed", seed);
            assertRows(t, recent, 0, "kept", seed);
            List<Long> older = new ArrayList<>();
            for (int round = 40; round < SLOTS - 3; round++) {
                for (long key : byRound[round]) {
                    older.add(key);
                }
            }
            assertRows(t, older, 0, "untouched", seed);
            assertEquals(0, t.installAbsent(keys, rows(keys, 0.75f), ek, ev, ed), "a second install, seed " + seed);
            assertRows(t, fresh, 0.25f, "installed once", seed);
        }
    }

    /**
     * Tables of one and of four buckets take install batches of hundreds to thousands of distinct
     * keys, many of them already held: after every call each key that was held or offered is held
     * with a row it had or was offered, or was returned as evicted with one, and the size is what
     * the table holds.
     */
    @ParameterizedTest(name = "grouped {0}")
    @ValueSource(booleans = {true, false})
    void overrunBucketsLoseNothing(boolean grouped) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        for (int buckets : new int[] {1, 4}) {
            try (GpuHashTable t = GpuHashTable.create(DIM, (long) buckets * SLOTS, ScoreMode.LRU)) {
                t.groupInstalls(grouped);
                Map<Long, float[]> live = new HashMap<>();
                for (int call = 0; call < 8; call++) {
                    Set<Long> distinct = new LinkedHashSet<>();
                    int n = 200 + r.nextInt(3000);
                    while (distinct.size() < n) {
                        distinct.add((long) r.nextInt(20_000));
                    }
                    long[] keys = distinct.stream().mapToLong(Long::longValue).toArray();
                    float tag = call + 1;
                    long[] ek = new long[n];
                    float[] ev = new float[n * DIM];
                    boolean[] ed = new boolean[n];
                    int evicted = t.installAbsent(keys, rows(keys, tag), ek, ev, ed);
                    // A held key offered again keeps its row, unless a newcomer taken before it in the
                    // same call evicted it first: then it comes back as evicted and is installed anew.
                    Map<Long, List<float[]>> allowed = new HashMap<>();
                    live.forEach((key, row) -> allowed.computeIfAbsent(key, x -> new ArrayList<>()).add(row));
                    for (long key : keys) {
                        allowed.computeIfAbsent(key, x -> new ArrayList<>()).add(rowOf(key, tag));
                    }
                    Set<Long> returned = new HashSet<>();
                    for (int e = 0; e < evicted; e++) {
                        float[] row = Arrays.copyOfRange(ev, e * DIM, (e + 1) * DIM);
                        assertTrue(isOneOf(allowed.get(ek[e]), row), "evicted key " + ek[e] + " with a row it never had, "
                                + buckets + " buckets, call " + call + ", grouped " + grouped + ", seed " + seed);
                        assertTrue(!ed[e], "clean installs evict clean entries, seed " + seed);
                        returned.add(ek[e]);
                    }
                    long[] all = allowed.keySet().stream().mapToLong(Long::longValue).toArray();
                    float[] got = new float[all.length * DIM];
                    boolean[] found = new boolean[all.length];
                    int present = t.find(all, got, found);
                    live.clear();
                    for (int i = 0; i < all.length; i++) {
                        if (found[i]) {
                            float[] row = Arrays.copyOfRange(got, i * DIM, (i + 1) * DIM);
                            assertTrue(isOneOf(allowed.get(all[i]), row), "row of key " + all[i] + ", " + buckets
                                    + " buckets, call " + call + ", grouped " + grouped + ", seed " + seed);
                            live.put(all[i], row);
                        } else {
                            assertTrue(returned.contains(all[i]), "key " + all[i] + " lost: neither held nor evicted, "
                                    + buckets + " buckets, call " + call + ", grouped " + grouped + ", seed " + seed);
                        }
                    }
                    assertEquals(present, t.size(), "size, " + buckets + " buckets, call " + call + ", seed " + seed);
                    assertTrue(present <= (long) buckets * SLOTS);
                }
            }
        }
    }

    private static boolean isOneOf(List<float[]> rows, float[] row) {
        return rows != null && rows.stream().anyMatch(x -> Arrays.equals(x, row));
    }

    /** One new key for each bucket, drawn at random. */
    private static long[] onePerBucket(BucketModel model, SplittableRandom r, Set<Long> used) {
        long[] keys = new long[BUCKETS];
        boolean[] filled = new boolean[BUCKETS];
        int left = BUCKETS;
        while (left > 0) {
            long key = r.nextInt(1 << 30);
            int b = model.bucketOf(key);
            if (!filled[b] && used.add(key)) {
                filled[b] = true;
                keys[b] = key;
                left--;
            }
        }
        return keys;
    }

    private static void assertRows(GpuHashTable t, List<Long> keys, float tag, String what, long seed) {
        long[] k = keys.stream().mapToLong(Long::longValue).toArray();
        float[] out = new float[k.length * DIM];
        boolean[] found = new boolean[k.length];
        assertEquals(k.length, t.find(k, out, found), what + ": every key held, seed " + seed);
        for (int i = 0; i < k.length; i++) {
            assertArrayEquals(rowOf(k[i], tag), Arrays.copyOfRange(out, i * DIM, (i + 1) * DIM),
                    what + ": row of key " + k[i] + ", seed " + seed);
        }
    }
}
