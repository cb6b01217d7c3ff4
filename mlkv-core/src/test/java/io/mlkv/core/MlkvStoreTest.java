package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.FileTrees;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MlkvStoreTest {
    private static final int DIM = 4;

    @TempDir
    Path dir;

    /** The live threads of the stores' batch pools. */
    private static java.util.Set<Thread> batchPoolThreads() {
        java.util.Set<Thread> all = new java.util.HashSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("mlkv-batch-") && t.isAlive()) {
                all.add(t);
            }
        }
        return all;
    }

    @Test
    void aStoresBatchThreadsAreNamedDaemonsThatEndWithTheStore() throws Exception {
        java.util.Set<Thread> before = batchPoolThreads();
        int dim = 8;
        int n = 16_384;
        java.util.Set<Thread> mine = new java.util.HashSet<>();
        try (MlkvStore s = MlkvStore.builder().dim(dim).directory(dir.resolve("pool")).batchThreads(3)
                .gpu(GpuMode.OFF).build()) {
            long[] keys = new long[n];
            float[] rows = new float[n * dim];
            for (int i = 0; i < n; i++) {
                keys[i] = i;
                rows[i * dim] = i;
            }
            s.multiPut(keys, rows);
            float[] out = new float[n * dim];
            boolean[] found = new boolean[n];
            assertEquals(n, s.multiGet(keys, out, found));
            assertArrayEquals(rows, out);
            mine.addAll(batchPoolThreads());
            mine.removeAll(before);
            assertFalse(mine.isEmpty(), "a batch of " + n + " keys ran parts on the store's threads");
            for (Thread t : mine) {
                assertTrue(t.isDaemon(), t.getName() + " is a daemon");
            }
        }
        for (Thread t : mine) {
            t.join(TimeUnit.SECONDS.toMillis(10));
            assertFalse(t.isAlive(), t.getName() + " still runs after the store closed");
        }
    }

    private MlkvStore open(int dramBuckets, String policy, Durability durability) {
        return MlkvStore.builder()
                .dim(DIM)
                .directory(dir.resolve("s"))
                .dramCapacityBytes(dramBuckets * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20)
                .policy(policy)
                .durability(durability)
                .gpu(GpuMode.OFF)
                .build();
    }

    /**
     * A store counting on write whose DRAM holds a small part of the table: keys are put, evicted
     * (so they become known keys), deleted, put again and overwritten at random, in batches with
     * repeats, and the store is reopened midway. After every call {@code size()} and
     * {@code contains} agree with a model set: a known key is never counted twice, a deleted one
     * never counted as present.
     */
    @Test
    void countsStayExactWhileDramEvictsDeletedAndRewrittenKeys() {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        SplittableRandom r = new SplittableRandom(seed);
        java.util.Set<Long> model = new java.util.HashSet<>();
        for (int phase = 0; phase < 2; phase++) {
            try (MlkvStore s = open(8, "lru", Durability.WRITE_BACK)) {
                assertEquals(model.size(), s.size(), "after reopening, seed " + seed);
                for (int call = 0; call < 300; call++) {
                    int n = 1 + r.nextInt(300);
                    long[] keys = new long[n];
                    for (int i = 0; i < n; i++) {
                        keys[i] = r.nextInt(3000);
                    }
                    String what;
                    if (r.nextInt(5) == 0) {
                        s.multiDelete(keys);
                        for (long key : keys) {
                            model.remove(key);
                        }
                        what = "delete";
                    } else {
                        s.multiPut(keys, fill(n, call));
                        for (long key : keys) {
                            model.add(key);
                        }
                        what = "put";
                    }
                    assertEquals(model.size(), s.size(), what + " call " + call + ", phase " + phase + ", seed " + seed);
                    long[] probe = new long[64];
                    for (int i = 0; i < probe.length; i++) {
                        probe[i] = r.nextInt(3000);
                    }
                    boolean[] present = new boolean[probe.length];
                    s.contains(probe, present);
                    for (int i = 0; i < probe.length; i++) {
                        assertEquals(model.contains(probe[i]), present[i], "contains " + probe[i] + " after " + what
                                + " call " + call + ", seed " + seed);
                    }
                }
                assertTrue(s.stats().tier("DRAM").demotions() > 0, "DRAM must evict for the test to mean anything, seed " + seed);
            }
        }
    }

    private static float[] fill(int n, float base) {
        float[] v = new float[n * DIM];
        for (int i = 0; i < v.length; i++) {
            v[i] = base + i;
        }
        return v;
    }

    private static long[] range(int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = i * 31L;
        }
        return k;
    }

    /**
     * A single-key get (its own path for keys DRAM or the write-back buffer holds) reads what a
     * batch read of the same key reads, from every tier: DRAM, the write-back buffer of evicted
     * dirty rows, RocksDB, and nowhere; it counts a DRAM hit as the batch read does, and refuses a
     * reserved key or a short output before reading.
     */
    @ParameterizedTest
    @ValueSource(strings = {"lru", "lfu", "tinylfu"})
    void aSingleKeyGetReadsWhatABatchReadReadsInEveryTier(String policy) {
        try (MlkvStore s = open(2, policy, Durability.WRITE_BACK)) {
            long[] keys = range(400);  // 400 keys through 32 DRAM slots: most are evicted, dirty
            s.multiPut(keys, fill(keys.length, 1));
            float[] row = new float[DIM];
            float[] batchRow = new float[DIM];
            boolean[] found = new boolean[1];
            for (int round = 0; round < 2; round++) {
                for (long k : keys) {
                    assertTrue(s.get(k, row), "key " + k + ", round " + round);
                    assertEquals(1, s.multiGet(new long[] {k}, batchRow, found), "key " + k);
                    assertArrayEquals(batchRow, row, "key " + k + ", round " + round);
                }
                float[] untouched = {-1, -2, -3, -4};
                assertFalse(s.get(7, untouched), "an absent key");
                assertArrayEquals(new float[] {-1, -2, -3, -4}, untouched, "an absent key's row is left alone");
                s.flush();  // the second round reads what the first left in DRAM and the rest from RocksDB
            }
            long held = keys[keys.length - 1];
            assertTrue(s.get(held, row));
            long before = s.stats().tier("DRAM").hits();
            assertTrue(s.get(held, row));
            assertEquals(before + 1, s.stats().tier("DRAM").hits(), "a DRAM hit counted once");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> s.get(Long.MIN_VALUE, new float[DIM]));
            assertTrue(e.getMessage().contains("reserved"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.get(held, new float[DIM - 1]));
            assertTrue(e.getMessage().contains("dim = " + DIM), e.getMessage());
        }
    }

    /**
     * A write-back put whose first keys DRAM holds writes those in place and the rest, from the
     * first key DRAM lacks, on the locked path: a key repeated on both sides of that point, or only
     * before it, keeps its last row; the new keys count; everything survives reopening.
     */
    @Test
    void aPutSplitAtTheFirstKeyDramLacksKeepsEachKeysLastRow() {
        float[] row = new float[DIM];
        try (MlkvStore s = open(1024, "lru", Durability.WRITE_BACK)) {
            s.multiPut(new long[] {1, 2, 3}, fill(3, 0));
            // 1 repeats across the split (positions 0 and 4), 2 before it only (0 and 2); 100, 101 are new.
            long[] keys = {1, 2, 2, 100, 1, 101, 3};
            float[] rows = new float[keys.length * DIM];
            for (int i = 0; i < keys.length; i++) {
                Arrays.fill(rows, i * DIM, (i + 1) * DIM, 10 * (i + 1));
            }
            s.multiPut(keys, rows);
            assertEquals(5, s.size());
            float[][] want = {{1, 50}, {2, 30}, {3, 70}, {100, 40}, {101, 60}};
            for (float[] w : want) {
                assertTrue(s.get((long) w[0], row), "key " + (long) w[0]);
                assertArrayEquals(new float[] {w[1], w[1], w[1], w[1]}, row, "key " + (long) w[0]);
            }
            // Only keys DRAM holds: written in place, nothing new counted.
            s.multiPut(new long[] {3, 100, 3}, new float[] {7, 7, 7, 7, 8, 8, 8, 8, 9, 9, 9, 9});
            assertEquals(5, s.size());
        }
        try (MlkvStore s = open(1024, "lru", Durability.WRITE_BACK)) {
            assertEquals(5, s.size());
            assertTrue(s.get(3, row));
            assertArrayEquals(new float[] {9, 9, 9, 9}, row, "written in place, flushed at close");
            assertTrue(s.get(100, row));
            assertArrayEquals(new float[] {8, 8, 8, 8}, row);
            assertTrue(s.get(1, row));
            assertArrayEquals(new float[] {50, 50, 50, 50}, row);
        }
    }

    /**
     * A read large enough to go in parts over the store's threads, of keys only RocksDB holds (a
     * reopened store's DRAM is empty), promotes every key it read into a DRAM that has room for
     * them all: the parts' promotions are installed together, none dropped, so a second read finds
     * every key in DRAM and asks RocksDB for none.
     */
    @Test
    void aLargeReadInPartsPromotesEveryKeyItReadFromRocksDb() {
        int n = 60_000;
        Supplier<MlkvStore> opener = () -> MlkvStore.builder().dim(DIM).directory(dir.resolve("promotions"))
                .dramCapacityBytes(4L * n / DramTier.BUCKET_SLOTS * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).batchThreads(8).build();
        long[] keys = new long[n];
        float[] rows = new float[n * DIM];
        for (int i = 0; i < n; i++) {
            keys[i] = i * 7L + 3;
            Arrays.fill(rows, i * DIM, (i + 1) * DIM, i);
        }
        try (MlkvStore s = opener.get()) {
            s.multiPut(keys, rows);
        }
        try (MlkvStore s = opener.get()) {
            float[] out = new float[n * DIM];
            boolean[] found = new boolean[n];
            assertEquals(n, s.multiGet(keys, out, found));
            assertArrayEquals(rows, out);
            assertEquals(n, s.stats().tier("DRAM").entries(), "every key read from RocksDB promoted into DRAM");
            assertEquals(0, s.droppedPromotions(), "no promotion dropped");
            long ssdHits = s.stats().tier("SSD").hits();
            Arrays.fill(out, 0);
            assertEquals(n, s.multiGet(keys, out, found));
            assertArrayEquals(rows, out);
            assertEquals(ssdHits, s.stats().tier("SSD").hits(), "the second read asked RocksDB for nothing");
        }
    }

    /**
     * A put large enough to go in parts over the store's threads: each part writes its keys DRAM
     * holds in place up to its first key DRAM lacks, the rest take the locked path. Keys repeat
     * across that point; every key must end with the row of its last occurrence, new keys counted
     * once, before and after reopening.
     */
    @Test
    void aLargePutInPartsKeepsEachKeysLastRow() {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        int held = 3_000;
        int fresh = 1_000;
        Supplier<MlkvStore> opener = () -> MlkvStore.builder().dim(DIM).directory(dir.resolve("large"))
                .dramCapacityBytes(2L * (held + fresh) / DramTier.BUCKET_SLOTS * 2 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).batchThreads(4).build();
        Map<Long, Float> last = new HashMap<>();
        try (MlkvStore s = opener.get()) {
            long[] loaded = new long[held];
            for (int i = 0; i < held; i++) {
                loaded[i] = i;
                last.put((long) i, -1f);
            }
            float[] minusOne = new float[held * DIM];
            Arrays.fill(minusOne, -1f);
            s.multiPut(loaded, minusOne);
            // Mostly keys DRAM holds, one in eight new (1,000,000 and up), every key likely repeated.
            long[] keys = new long[40_000];
            float[] rows = new float[keys.length * DIM];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = r.nextInt(8) == 0 ? 1_000_000 + r.nextInt(fresh) : r.nextInt(held);
                Arrays.fill(rows, i * DIM, (i + 1) * DIM, i);
                last.put(keys[i], (float) i);
            }
            s.multiPut(keys, rows);
            assertLastRows(s, last, "seed " + seed);
        }
        try (MlkvStore s = opener.get()) {
            assertLastRows(s, last, "after reopening, seed " + seed);
        }
    }

    private MlkvStore openCounting(SizeCounting counting, Durability durability) {
        // Two DRAM buckets: most keys live only in RocksDB, where an uncounted put could go wrong.
        return MlkvStore.builder().dim(DIM).directory(dir.resolve("counting")).sizeCounting(counting)
                .dramCapacityBytes(2 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20).durability(durability)
                .gpu(GpuMode.OFF).build();
    }

    /**
     * Counted when asked, the size is still exact: puts of new and existing keys (most of them
     * below DRAM), deletes of present and absent keys, accumulates and findOrInsert, in both
     * durabilities; stats report -1; a later open that counts on write recounts, and one that
     * counts when asked after it agrees.
     */
    @Test
    void aSizeCountedWhenAskedIsExactAndSurvivesSwitchingModes() throws IOException {
        for (Durability durability : Durability.values()) {
            String context = durability.toString();
            try (MlkvStore s = openCounting(SizeCounting.ON_DEMAND, durability)) {
                s.multiPut(range(200), fill(200, 1f));
                assertEquals(200, s.size(), context);
                assertEquals(-1, s.stats().size(), "stats keep no count, " + context);
                s.multiPut(range(300), fill(300, 2f));
                assertEquals(300, s.size(), "100 new keys, 200 rewritten, " + context);
                s.multiDelete(new long[] {0, 31, -5, 31 * 1000});
                assertEquals(298, s.size(), "two present keys deleted, " + context);
                s.accumulate(new long[] {31 * 1000, 62, 31 * 1000}, fill(3, 1f));
                s.findOrInsert(new long[] {31 * 1001, 93}, new float[2 * DIM], (key, out, at, dim) -> { });
                assertEquals(300, s.size(), "one key added by accumulate, one by findOrInsert, " + context);
            }
            try (MlkvStore s = openCounting(SizeCounting.ON_WRITE, durability)) {
                assertEquals(300, s.size(), "recounted on an open that counts on write, " + context);
                s.multiPut(new long[] {31 * 2000}, fill(1, 0f));
            }
            try (MlkvStore s = openCounting(SizeCounting.ON_DEMAND, durability)) {
                assertEquals(301, s.size(), context);
                s.multiDelete(range(400));
                assertEquals(3, s.size(), "left: the keys accumulate, findOrInsert and the last put added, " + context);
            }
            try (MlkvStore s = openCounting(SizeCounting.ON_WRITE, durability)) {
                assertEquals(3, s.size(), "recounted again, " + context);
                s.multiDelete(new long[] {31 * 1000, 31 * 1001, 31 * 2000});
                assertEquals(0, s.size(), context);
            }
            FileTrees.delete(dir.resolve("counting"));
        }
    }

    /**
     * Counted when asked while writers insert new keys: every count lies between what had been
     * acknowledged before the call and what had been issued by its end, counts never go down, and
     * the last one is exact.
     */
    @Test
    void aSizeCountedWhenAskedWhileWritersInsertIsNeverBehindNorAhead() throws Exception {
        for (Durability durability : Durability.values()) {
            int writers = 3;
            int batches = 60;
            int perBatch = 50;
            AtomicLong acknowledged = new AtomicLong();
            AtomicLong issued = new AtomicLong();
            try (MlkvStore s = openCounting(SizeCounting.ON_DEMAND, durability)) {
                ExecutorService pool = Executors.newFixedThreadPool(writers);
                try {
                    List<Future<?>> done = new ArrayList<>();
                    for (int w = 0; w < writers; w++) {
                        long base = (long) w << 32;
                        done.add(pool.submit(() -> {
                            for (int b = 0; b < batches; b++) {
                                long[] keys = new long[perBatch];
                                for (int i = 0; i < perBatch; i++) {
                                    keys[i] = base + (long) b * perBatch + i;
                                }
                                issued.addAndGet(perBatch);
                                s.multiPut(keys, fill(perBatch, b));
                                acknowledged.addAndGet(perBatch);
                            }
                            return null;
                        }));
                    }
                    long last = 0;
                    while (!done.stream().allMatch(Future::isDone)) {
                        long before = acknowledged.get();
                        long size = s.size();
                        long after = issued.get();
                        assertTrue(size >= before && size <= after && size >= last,
                                durability + ": size " + size + " outside [" + before + ", " + after + "] or below " + last);
                        last = size;
                    }
                    for (Future<?> f : done) {
                        f.get(60, TimeUnit.SECONDS);
                    }
                } finally {
                    pool.shutdownNow();
                }
                assertEquals((long) writers * batches * perBatch, s.size(), durability.toString());
            }
            FileTrees.delete(dir.resolve("counting"));
        }
    }

    /** A checkpoint of a store that counts when asked restores into one that counts on write, exactly. */
    @Test
    void aCheckpointOfAStoreCountingWhenAskedRestoresWithItsExactSize() {
        try (MlkvStore s = openCounting(SizeCounting.ON_DEMAND, Durability.WRITE_BACK)) {
            s.multiPut(range(500), fill(500, 1f));
            s.checkpoint(dir.resolve("cp"));
            s.multiPut(new long[] {-1}, fill(1, 0f));
        }
        MlkvStore.restoreCheckpoint(dir.resolve("cp"), dir.resolve("restored"));
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("restored"))
                .dramCapacityBytes(2 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertEquals(500, s.size());
            float[] row = new float[DIM];
            assertTrue(s.get(31 * 499, row));
            assertArrayEquals(Arrays.copyOfRange(fill(500, 1f), 499 * DIM, 500 * DIM), row);
            assertFalse(s.get(-1, row), "written after the checkpoint");
        }
    }

    private static void assertLastRows(MlkvStore s, Map<Long, Float> last, String context) {
        assertEquals(last.size(), s.size(), "entries, " + context);
        float[] row = new float[DIM];
        for (Map.Entry<Long, Float> e : last.entrySet()) {
            assertTrue(s.get(e.getKey(), row), "key " + e.getKey() + ", " + context);
            float v = e.getValue();
            assertArrayEquals(new float[] {v, v, v, v}, row, "key " + e.getKey() + ", " + context);
        }
    }

    @Test
    void eachBuilderSettingRejectsABadValueByName() {
        MlkvStoreBuilder b = MlkvStore.builder();
        assertMessage(() -> b.dim(0), "dim", "0");
        assertMessage(() -> b.dramCapacityBytes(-1), "dramCapacityBytes", "-1");
        assertMessage(() -> b.blockCacheBytes(0), "blockCacheBytes", "0");
        assertMessage(() -> b.directory(null), "directory");
        assertMessage(() -> b.durability(null), "durability", "WRITE_BACK");
        assertMessage(() -> b.sizeCounting(null), "sizeCounting", "ON_WRITE", "ON_DEMAND");
        assertMessage(() -> b.policy("fifo"), "fifo", "lru");
        assertMessage(() -> b.gpu(null), "gpu", "AUTO");
        assertMessage(() -> b.prefetchThreads(0), "prefetchThreads", "0");
        assertMessage(() -> b.hbmCapacity(0), "hbmCapacity", "0");
    }

    private static void assertMessage(Runnable r, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + e.getMessage() + "' should mention " + p);
        }
    }

    @Test
    void buildSaysWhichRequiredSettingIsMissingAndDoesNotChangeTheBuilder() {
        MlkvStoreBuilder b = MlkvStore.builder().directory(dir.resolve("x"));
        IllegalStateException e = assertThrows(IllegalStateException.class, b::build);
        assertTrue(e.getMessage().contains("dim"), e.getMessage());
        b.dim(8).dramCapacityBytes(100);
        e = assertThrows(IllegalStateException.class, b::build);
        assertTrue(e.getMessage().contains("raise it to at least"), e.getMessage());
        b.dramCapacityBytes(1 << 20);
        try (MlkvStore first = b.gpu(GpuMode.OFF).build()) {
            assertEquals(8, first.dim());
        }
        try (MlkvStore again = b.build()) {
            assertEquals(8, again.dim());
        }
    }

    @Test
    void hbmDevicesAreCheckedWhenGivenAndASpillLogNeedsOneShard() {
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> MlkvStore.builder().hbmDevices());
        assertTrue(none.getMessage().contains("hbmDevices") && none.getMessage().contains("1 to 32"), none.getMessage());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> MlkvStore.builder().hbmDevices(0, -2));
        assertTrue(negative.getMessage().contains("-2") && negative.getMessage().contains("[0, -2]"), negative.getMessage());
        assertThrows(IllegalArgumentException.class, () -> MlkvStore.builder().hbmDevices(new int[33]));
        MlkvStoreBuilder b = MlkvStore.builder().dim(DIM).directory(dir.resolve("spill-shards")).gpu(GpuMode.AUTO)
                .hbmDevices(0, 1).hbmSpillRows(1000);
        IllegalStateException e = assertThrows(IllegalStateException.class, b::build);
        assertTrue(e.getMessage().contains("hbmSpillRows") && e.getMessage().contains("one HBM shard")
                && e.getMessage().contains("[0, 1]"), e.getMessage());
        assertTrue(!java.nio.file.Files.exists(dir.resolve("spill-shards")), "nothing was created");
        // Without a GPU the devices have no effect: the store runs on DRAM and RocksDB.
        try (MlkvStore s = b.hbmSpillRows(0).gpu(GpuMode.OFF).build()) {
            s.put(5, new float[DIM]);
            assertEquals(1, s.size());
            assertEquals(0, s.hbmShardEntries().length);
            assertArrayEquals(new long[4], s.hbmShardRouteTimings());
            IllegalStateException noGpu = assertThrows(IllegalStateException.class, () -> s.makeGpuCurrent(0));
            assertTrue(noGpu.getMessage().contains("without a GPU"), noGpu.getMessage());
        }
    }

    @Test
    void aSpillLogWithoutTheGpuTierIsRefusedAndSaysWhatToChange() {
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> MlkvStore.builder().hbmSpillRows(-1));
        assertTrue(bad.getMessage().contains("hbmSpillRows") && bad.getMessage().contains("-1"), bad.getMessage());
        MlkvStoreBuilder b = MlkvStore.builder().dim(DIM).directory(dir.resolve("spill")).gpu(GpuMode.OFF)
                .hbmSpillRows(1000);
        IllegalStateException e = assertThrows(IllegalStateException.class, b::build);
        assertTrue(e.getMessage().contains("hbmSpillRows") && e.getMessage().contains("GpuMode.OFF"), e.getMessage());
        assertTrue(!java.nio.file.Files.exists(dir.resolve("spill")), "nothing was created");
        try (MlkvStore s = b.hbmSpillRows(0).build()) {
            s.put(5, new float[DIM]);
            assertEquals(1, s.size());
            assertTrue(!java.nio.file.Files.exists(dir.resolve("spill").resolve(MlkvStore.SPILL_FILE)));
        }
    }

    @Test
    void hbmWriteBackIsRefusedWithWriteThroughAndSaysWhatToChange() {
        MlkvStoreBuilder b = MlkvStore.builder().dim(DIM).directory(dir.resolve("wt")).gpu(GpuMode.OFF)
                .durability(Durability.WRITE_THROUGH).hbmWriteBack(true);
        IllegalStateException e = assertThrows(IllegalStateException.class, b::build);
        assertTrue(e.getMessage().contains("hbmWriteBack") && e.getMessage().contains("WRITE_BACK"), e.getMessage());
        assertTrue(!java.nio.file.Files.exists(dir.resolve("wt")), "nothing was created");
        try (MlkvStore s = b.durability(Durability.WRITE_BACK).build()) {
            s.put(5, new float[DIM]);
            assertEquals(1, s.size());
        }
    }

    @Test
    void gpuModeOnOpensAnHbmTierOrSaysWhyNot() {
        boolean gpu = io.mlkv.gpu.cuda.Kernels.built() && io.mlkv.gpu.cuda.CudaDevice.unavailableReason() == null;
        MlkvStoreBuilder b = MlkvStore.builder().dim(DIM).directory(dir.resolve("g")).gpu(GpuMode.ON).hbmCapacity(1024);
        if (gpu) {
            try (MlkvStore s = b.build()) {
                assertEquals("HBM", s.stats().tiers().get(0).tier());
            }
        } else {
            IllegalStateException e = assertThrows(IllegalStateException.class, b::build);
            assertTrue(e.getMessage().contains("no GPU tier can be opened") && e.getMessage().contains("GpuMode.AUTO"),
                    e.getMessage());
            try (MlkvStore s = b.gpu(GpuMode.AUTO).build()) {
                assertEquals("DRAM", s.stats().tiers().get(0).tier());
            }
        }
    }

    @Test
    void reservedKeysAreRejectedByNameAndNothingIsWritten() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            long[] keys = {1, Long.MIN_VALUE};
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> s.multiPut(keys, new float[2 * DIM]));
            assertTrue(e.getMessage().contains(Long.toString(Long.MIN_VALUE)), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> s.get(Long.MIN_VALUE + 1, new float[DIM]));
            assertEquals(0, s.size());
        }
    }

    @Test
    void findOrInsertInitialisesAbsentKeysOnceAndReturnsPresentOnes() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            s.put(5, new float[] {1, 1, 1, 1});
            int[] calls = new int[1];
            VectorInitializer init = (key, out, off, dim) -> {
                calls[0]++;
                Arrays.fill(out, off, off + dim, key);
            };
            float[] out = new float[4 * DIM];
            assertEquals(1, s.findOrInsert(new long[] {5, 9, 9, 12}, out, init));
            assertEquals(2, calls[0]);
            assertArrayEquals(new float[] {1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 12, 12, 12, 12}, out);
            assertEquals(3, s.size());
            float[] again = new float[DIM];
            assertEquals(1, s.findOrInsert(new long[] {9}, again, init));
            assertEquals(2, calls[0]);
        }
    }

    /**
     * Where DRAM holds every key, findOrInsert and multiPut settle which keys are new from DRAM
     * alone (RocksDB is not read: the SSD tier counts no lookup); where some key lives in RocksDB
     * only (DRAM smaller than the table, or after a reopen), they still find it there, so a
     * stored value is never taken for absent and overwritten by the initializer.
     */
    @Test
    void keysNewToAStoreWhoseDramHoldsEveryKeyAreSettledWithoutRocksDb() {
        VectorInitializer init = (key, out, off, dim) -> Arrays.fill(out, off, off + dim, -1f);
        int n = 3000;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = 7L * i + 1;
        }
        float[] values = fill(n, 0.5f);
        try (MlkvStore s = open(4096, "lru", Durability.WRITE_BACK)) {
            s.multiPut(keys, values);
            long ssdLookups = s.stats().tier("SSD").hits() + s.stats().tier("SSD").misses();
            long[] mixed = {keys[0], 2, keys[1], 4};
            float[] out = new float[4 * DIM];
            assertEquals(2, s.findOrInsert(mixed, out, init));
            assertArrayEquals(Arrays.copyOfRange(values, 0, DIM), Arrays.copyOfRange(out, 0, DIM));
            assertArrayEquals(new float[] {-1, -1, -1, -1}, Arrays.copyOfRange(out, DIM, 2 * DIM));
            assertArrayEquals(Arrays.copyOfRange(values, DIM, 2 * DIM), Arrays.copyOfRange(out, 2 * DIM, 3 * DIM));
            s.multiPut(new long[] {6, keys[2]}, new float[2 * DIM]);
            assertEquals(n + 3, s.size());
            assertEquals(ssdLookups, s.stats().tier("SSD").hits() + s.stats().tier("SSD").misses(),
                    "DRAM holds every key: RocksDB was not asked");
        }
        // Reopened, DRAM starts empty and every key lives in RocksDB only.
        try (MlkvStore s = open(4096, "lru", Durability.WRITE_BACK)) {
            float[] out = new float[2 * DIM];
            assertEquals(2, s.findOrInsert(new long[] {keys[5], 2}, out, init));
            assertArrayEquals(Arrays.copyOfRange(values, 5 * DIM, 6 * DIM), Arrays.copyOfRange(out, 0, DIM));
            assertEquals(n + 3, s.size());
        }
        // A DRAM tier far smaller than the table: most keys live in RocksDB only.
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("small")).dramCapacityBytes(8 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).build()) {
            s.multiPut(keys, values);
            float[] out = new float[n * DIM];
            assertEquals(n, s.findOrInsert(keys, out, init), "every key found, none initialised");
            assertArrayEquals(values, out);
            assertEquals(n, s.size());
        }
    }

    @Test
    void aThrowingInitializerInsertsNothing() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            VectorInitializer init = (key, out, off, dim) -> {
                if (key == 3) {
                    throw new IllegalStateException("boom");
                }
                Arrays.fill(out, off, off + dim, 1f);
            };
            MlkvException e = assertThrows(MlkvException.class,
                    () -> s.findOrInsert(new long[] {1, 2, 3, 4}, new float[4 * DIM], init));
            assertEquals(StatusCode.CALLBACK_FAILED, e.status());
            assertTrue(e.getMessage().contains("key 3") && e.getMessage().contains("boom"), e.getMessage());
            assertEquals(0, s.size());
            boolean[] present = new boolean[4];
            assertEquals(0, s.contains(new long[] {1, 2, 3, 4}, present));
        }
    }

    @Test
    void accumulateAddsEveryDeltaAndInsertsAbsentKeys() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            s.put(1, new float[] {1, 2, 3, 4});
            s.accumulate(new long[] {1, 2, 1}, new float[] {
                10, 10, 10, 10,
                5, 6, 7, 8,
                100, 100, 100, 100});
            float[] out = new float[DIM];
            assertTrue(s.get(1, out));
            assertArrayEquals(new float[] {111, 112, 113, 114}, out);
            assertTrue(s.get(2, out));
            assertArrayEquals(new float[] {5, 6, 7, 8}, out);
            assertEquals(2, s.size());
            s.accumulate(new long[] {2}, new float[] {Float.NaN, 0, 0, Float.POSITIVE_INFINITY});
            s.get(2, out);
            assertTrue(Float.isNaN(out[0]));
            assertEquals(6, out[1]);
            assertEquals(Float.POSITIVE_INFINITY, out[3]);
        }
    }

    @Test
    void dirtyEntriesEvictedFromASmallDramSurviveReopen() {
        long[] keys = range(5000);
        float[] values = fill(keys.length, 0.25f);
        try (MlkvStore s = open(2, "lru", Durability.WRITE_BACK)) {
            for (int from = 0; from < keys.length; from += 500) {
                s.multiPut(Arrays.copyOfRange(keys, from, from + 500),
                        Arrays.copyOfRange(values, from * DIM, (from + 500) * DIM));
            }
            // Evicted rows reach RocksDB on the write-back buffer's thread; flush waits for them.
            s.flush();
            StoreStats st = s.stats();
            assertTrue(st.tier("DRAM").demotions() >= keys.length - 32, st.toString());
            assertTrue(st.tier("DRAM").writeBacks() >= keys.length - 32, st.toString());
            assertEquals(keys.length, s.size());
        }
        try (MlkvStore s = open(2, "lru", Durability.WRITE_BACK)) {
            assertEquals(keys.length, s.size());
            float[] out = new float[values.length];
            assertEquals(keys.length, s.multiGet(keys, out, new boolean[keys.length]));
            assertArrayEquals(values, out);
        }
    }

    @Test
    void readsPromoteHotKeysAndStatsCountEachTier() {
        long[] keys = range(1000);
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            s.multiPut(keys, fill(keys.length, 1));
            s.flush();
        }
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            long[] hot = Arrays.copyOf(keys, 8);
            float[] out = new float[hot.length * DIM];
            boolean[] found = new boolean[hot.length];
            s.multiGet(hot, out, found);
            TierStats dram = s.stats().tier("DRAM");
            assertEquals(0, dram.hits());
            assertEquals(8, dram.misses());
            assertEquals(8, s.stats().tier("SSD").hits());
            assertTrue(dram.promotions() > 0);
            long promoted = dram.promotions();
            s.multiGet(hot, out, found);
            assertEquals(promoted, s.stats().tier("DRAM").hits(), s.stats().toString());
            assertEquals(promoted * DIM * 4, s.stats().tier("DRAM").bytesIn());
            assertTrue(s.stats().tier("DRAM").lookupNanos() > 0, "time spent in DRAM lookups is counted");
            assertTrue(s.stats().tier("SSD").lookupNanos() > 0, "time spent in RocksDB reads is counted");
            assertTrue(s.stats().tier("DRAM").moveNanos() > 0, "time spent promoting from SSD into DRAM is counted");
            assertEquals(0, s.stats().tier("SSD").moveNanos(), "nothing is promoted into SSD");
        }
    }

    @Test
    void prefetchPromotesKeysBeforeTheyAreRead() throws Exception {
        long[] keys = range(64);
        try (MlkvStore s = open(64, "lru", Durability.WRITE_BACK)) {
            s.multiPut(keys, fill(keys.length, 3));
        }
        try (MlkvStore s = open(64, "lru", Durability.WRITE_BACK)) {
            s.prefetch(keys).get(30, TimeUnit.SECONDS);
            assertEquals(keys.length, s.stats().prefetched());
            float[] out = new float[keys.length * DIM];
            s.multiGet(keys, out, new boolean[keys.length]);
            assertEquals(keys.length, s.stats().tier("DRAM").hits());
            assertEquals(0, s.stats().tier("SSD").hits());
            assertArrayEquals(fill(keys.length, 3), out);
        }
    }

    @Test
    void operationsAfterCloseFailClearly() {
        MlkvStore s = open(4, "lru", Durability.WRITE_BACK);
        s.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> s.put(1, new float[DIM]));
        assertTrue(e.getMessage().contains("closed"));
        assertThrows(IllegalStateException.class, () -> s.prefetch(new long[] {1}));
        assertThrows(IllegalStateException.class, s::flush);
        assertThrows(IllegalStateException.class, s::stats);
    }

    @Test
    void aSecondStoreOnTheSameDirectoryIsRefusedAndTheFirstKeepsWorking() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            s.put(1, new float[] {1, 2, 3, 4});
            MlkvException e = assertThrows(MlkvException.class, () -> open(4, "lru", Durability.WRITE_BACK));
            assertEquals(StatusCode.LOCKED, e.status());
            float[] out = new float[DIM];
            assertTrue(s.get(1, out));
            assertArrayEquals(new float[] {1, 2, 3, 4}, out);
        }
    }

    @Test
    void reopeningWithAnotherDimIsRefused() {
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            s.put(1, new float[DIM]);
        }
        MlkvException e = assertThrows(MlkvException.class, () -> MlkvStore.builder().dim(DIM * 2)
                .directory(dir.resolve("s")).gpu(GpuMode.OFF).build());
        assertEquals(StatusCode.INCOMPATIBLE_FORMAT, e.status());
        try (MlkvStore s = open(4, "lru", Durability.WRITE_BACK)) {
            assertEquals(1, s.size());
        }
    }

    @Test
    void forEachExportsEveryEntryOfEveryTier() {
        long[] keys = range(700);
        float[] values = fill(keys.length, 7);
        try (MlkvStore s = open(2, "tinylfu", Durability.WRITE_BACK)) {
            s.multiPut(keys, values);
            float[] got = new float[values.length];
            int[] n = new int[1];
            Map<Long, Integer> index = new HashMap<>();
            for (int i = 0; i < keys.length; i++) {
                index.put(keys[i], i);
            }
            s.forEach((key, v) -> {
                int i = index.get(key);
                System.arraycopy(v, 0, got, i * DIM, DIM);
                n[0]++;
            });
            assertEquals(keys.length, n[0]);
            assertArrayEquals(values, got);
        }
    }

    @Test
    void deleteReachesEveryTierAndSizeFollows() {
        long[] keys = range(300);
        try (MlkvStore s = open(2, "lru", Durability.WRITE_BACK)) {
            s.multiPut(keys, fill(keys.length, 1));
            s.multiDelete(Arrays.copyOf(keys, 150));
            assertEquals(150, s.size());
            boolean[] present = new boolean[keys.length];
            assertEquals(150, s.contains(keys, present));
            assertFalse(present[0]);
            assertTrue(present[299]);
        }
        try (MlkvStore s = open(2, "lru", Durability.WRITE_BACK)) {
            assertEquals(150, s.size());
            assertFalse(s.get(keys[10], new float[DIM]));
        }
    }
}
