package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The store with its HBM tier on a CUDA GPU: the contract, tier behaviour, differential and concurrency tests. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuStoreTest {
    private static final int DIM = 8;

    @TempDir
    Path dir;

    private MlkvStore open(long hbmEntries) {
        return MlkvStore.builder().dim(DIM).directory(dir.resolve("s"))
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(hbmEntries).build();
    }

    private MlkvStore openWriteBack(Path d, long hbmEntries) {
        return MlkvStore.builder().dim(DIM).directory(d)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(hbmEntries).hbmWriteBack(true).build();
    }

    private static float[] rows(int n, float base) {
        float[] v = new float[n * DIM];
        for (int i = 0; i < n; i++) {
            Arrays.fill(v, i * DIM, (i + 1) * DIM, base + i);
        }
        return v;
    }

    /**
     * With write-back, writes of keys held in HBM stay there (no DRAM write, no write-back) until
     * a flush writes them down, and a reopened store reads the newest values.
     */
    @Test
    void writeBackKeepsWritesOfHeldKeysInHbmUntilFlush() {
        Path d = dir.resolve("wb");
        int n = 3000;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = 17L * i + 1;
        }
        float[] newer = rows(n, 5000f);
        try (MlkvStore s = openWriteBack(d, 1 << 14)) {
            s.multiPut(keys, rows(n, 0f));
            s.flush();
            s.multiGet(keys, new float[n * DIM], new boolean[n]); // promotes all into HBM
            assertEquals(n, s.stats().tier("HBM").entries());
            long dramWriteBacks = s.stats().tier("DRAM").writeBacks();
            s.multiPut(keys, newer);
            s.accumulate(keys, rows(n, 0f)); // adds i to key i's row, on the HBM value
            float[] expected = newer.clone();
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < DIM; j++) {
                    expected[i * DIM + j] += i;
                }
            }
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(expected, out);
            assertEquals(0, s.stats().tier("HBM").writeBacks(), "nothing written down before flush");
            assertEquals(dramWriteBacks, s.stats().tier("DRAM").writeBacks(), "DRAM did not take the writes");
            s.flush();
            assertEquals(n, s.stats().tier("HBM").writeBacks(), s.stats().toString());
            newer = expected;
        }
        try (MlkvStore s = openWriteBack(d, 1 << 14)) {
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(newer, out, "the flushed values survived close and reopen");
        }
    }

    /**
     * Dirty entries that HBM evicts to make room for promotions go down to DRAM as dirty and are
     * never lost: a one-bucket HBM tier is filled with dirty keys, then reads of other keys push
     * them out; every key reads its newest value before and after a reopen.
     */
    @Test
    void dirtyEntriesEvictedFromHbmGoDownAndAreNotLost() {
        Path d = dir.resolve("evict");
        int hot = 128;
        int cold = 4000;
        long[] hotKeys = new long[hot];
        long[] coldKeys = new long[cold];
        for (int i = 0; i < hot; i++) {
            hotKeys[i] = 3L * i;
        }
        for (int i = 0; i < cold; i++) {
            coldKeys[i] = 1_000_000L + 7L * i;
        }
        float[] hotNewest = rows(hot, 900f);
        try (MlkvStore s = openWriteBack(d, 128)) {
            s.multiPut(hotKeys, rows(hot, 0f));
            s.multiPut(coldKeys, rows(cold, 100f));
            s.flush();
            s.multiGet(hotKeys, new float[hot * DIM], new boolean[hot]);
            s.multiPut(hotKeys, hotNewest);
            long evictionsBefore = s.stats().tier("HBM").demotions();
            for (int from = 0; from < cold; from += 500) {
                long[] part = Arrays.copyOfRange(coldKeys, from, from + 500);
                s.multiGet(part, new float[part.length * DIM], new boolean[part.length]);
            }
            assertTrue(s.stats().tier("HBM").demotions() - evictionsBefore >= hot, s.stats().toString());
            assertTrue(s.stats().tier("HBM").writeBacks() > 0, "dirty entries went down: " + s.stats());
            float[] out = new float[hot * DIM];
            assertEquals(hot, s.multiGet(hotKeys, out, new boolean[hot]));
            assertArrayEquals(hotNewest, out);
        }
        try (MlkvStore s = openWriteBack(d, 128)) {
            float[] out = new float[hot * DIM];
            assertEquals(hot, s.multiGet(hotKeys, out, new boolean[hot]));
            assertArrayEquals(hotNewest, out, "after reopen");
            float[] coldOut = new float[cold * DIM];
            assertEquals(cold, s.multiGet(coldKeys, coldOut, new boolean[cold]));
            assertArrayEquals(rows(cold, 100f), coldOut);
        }
    }

    /** A checkpoint taken while HBM holds dirty entries carries their newest values. */
    @Test
    void aCheckpointWithDirtyHbmEntriesCarriesTheirNewestValues() {
        int n = 1000;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = 11L * i + 2;
        }
        float[] newer = rows(n, 77f);
        Path cp = dir.resolve("wb-cp");
        try (MlkvStore s = openWriteBack(dir.resolve("wb-src"), 1 << 14)) {
            s.multiPut(keys, rows(n, 0f));
            s.multiGet(keys, new float[n * DIM], new boolean[n]);
            s.multiPut(keys, newer);
            s.checkpoint(cp);
        }
        Path restored = dir.resolve("wb-restored");
        MlkvStore.restoreCheckpoint(cp, restored);
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(restored)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.OFF).build()) {
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(newer, out, "read without a GPU: the values reached RocksDB");
        }
    }

    /**
     * Device reads whose HBM misses the GPU serves from the mapped DRAM tier, while writers
     * overwrite those keys: every row read is whole (all its values from one write), belongs to
     * its key, and is never older than the newest write acknowledged before the read began.
     */
    @Test
    void deviceReadsFromMappedDramAreNeverTornNorStale() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("mapped"))
                .dramCapacityBytes(1024 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(128).build()) {
            long checked = deviceReadsUnderWriters(s, seed, 3000, 3000, false);
            assertTrue(s.dramReadsOnGpu() > 10_000, "the GPU read DRAM: " + s.dramReadsOnGpu() + " keys, seed " + seed
                    + ", mapping failure: " + s.dramMapFailure());
            assertTrue(checked > 20_000, "rows checked: " + checked);
        }
    }

    /**
     * Device readers and host writers at once with DRAM holding every key, so that read
     * promotions are held back until the table's next call and then queued or dropped (DRAM
     * changed): never a torn, foreign or stale row.
     */
    @Test
    void deviceReadsWithInstallsHeldBackUnderWritersAreNeverTornNorStale() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("deferred-writers"))
                .dramCapacityBytes(4096 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(256).build()) {
            long checked = deviceReadsUnderWriters(s, seed, 3000, 3000, false);
            long[] deferred = s.deferredHbmInstalls();
            assertTrue(deferred[0] + deferred[1] > 0, "installs were held back (queued, dropped): "
                    + Arrays.toString(deferred) + ", seed " + seed);
            assertTrue(checked > 20_000, "rows checked: " + checked);
        }
    }

    /** A device multiGet of {@code keys}: the rows (found or not), checking that every key is found. */
    private static float[] deviceRead(MlkvStore s, long[] keys) {
        int n = keys.length;
        s.makeGpuCurrent();
        try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(n * 8L, "keys");
             io.mlkv.gpu.cuda.DeviceMemory dOut = new io.mlkv.gpu.cuda.DeviceMemory(n * DIM * 4L, "out");
             io.mlkv.gpu.cuda.DeviceMemory dFound = new io.mlkv.gpu.cuda.DeviceMemory(n, "found")) {
            jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(keys), n * 8L);
            assertEquals(n, s.multiGet(dKeys.pointer(), n, dOut.pointer(), dFound.pointer()));
            float[] out = new float[n * DIM];
            s.makeGpuCurrent();
            jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(out), dOut.pointer(), out.length * 4L);
            return out;
        }
    }

    /**
     * With DRAM holding every key, a device read's promotions into HBM are held back until the
     * table's next call (the next read's lookup runs ahead of them). Writes, deletes and other
     * reads in between never let a held-back install bring back an older value: each read sees
     * the newest acknowledged row, host and device reads alike.
     */
    @Test
    void installsHeldBackUntilTheNextReadNeverBringBackAnOlderValue() {
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("deferred"))
                .dramCapacityBytes(4096 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(512).build()) {
            int n = 4000;
            long[] all = new long[n];
            for (int k = 0; k < n; k++) {
                all[k] = k;
            }
            s.multiPut(all, versionRows(all, 0));
            int[] version = new int[n];
            java.util.SplittableRandom r = new java.util.SplittableRandom(11);
            for (int round = 0; round < 40; round++) {
                long[] batch = new long[600];
                for (int i = 0; i < batch.length; i++) {
                    batch[i] = r.nextInt(n);
                }
                float[] out = deviceRead(s, batch); // its misses' install is held back
                for (int i = 0; i < batch.length; i++) {
                    assertEquals(version[(int) batch[i]], out[i * DIM + 1], "key " + batch[i] + " in round " + round);
                }
                // Then one of: rewrite some of those keys, rewrite others, delete and rewrite, or nothing.
                long[] some = Arrays.copyOf(batch, 50);
                long[] others = new long[] {r.nextInt(n), r.nextInt(n), r.nextInt(n)};
                switch (round % 4) {
                    case 0 -> write(s, some, version, round + 1);
                    case 1 -> write(s, others, version, round + 1);
                    case 2 -> {
                        s.multiDelete(some);
                        write(s, some, version, round + 1);
                    }
                    default -> { }
                }
                float[] host = new float[batch.length * DIM];
                boolean[] found = new boolean[batch.length];
                float[] again = round % 2 == 0 ? deviceRead(s, batch) : host;
                if (round % 2 != 0) {
                    assertEquals(batch.length, s.multiGet(batch, host, found));
                }
                for (int i = 0; i < batch.length; i++) {
                    assertEquals(version[(int) batch[i]], again[i * DIM + 1], "key " + batch[i] + " read again in round "
                            + round);
                }
            }
            long[] deferred = s.deferredHbmInstalls();
            assertTrue(deferred[0] > 0, "installs were held back and queued later: " + Arrays.toString(deferred));
        }
    }

    private static void write(MlkvStore s, long[] keys, int[] version, int v) {
        long[] distinct = Arrays.stream(keys).distinct().toArray();
        s.multiPut(distinct, versionRows(distinct, v));
        for (long k : distinct) {
            version[(int) k] = v;
        }
    }

    /**
     * Device reads under concurrent writers with frequency admission, which refuses many
     * promotions of a table 23 times HBM: still never a torn, foreign or stale row.
     */
    @Test
    void deviceReadsUnderFrequencyAdmissionAreNeverTornNorStale() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("frequency"))
                .dramCapacityBytes(1024 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(128).hbmAdmission(HbmAdmission.FREQUENCY).build()) {
            long checked = deviceReadsUnderWriters(s, seed, 3000, 3000, false);
            assertTrue(s.hbmAdmissionRejections() > 0, "promotions were refused, seed " + seed + "; " + s.stats());
            assertTrue(checked > 20_000, "rows checked: " + checked);
        }
    }

    /**
     * A hot set read ten times, then a stream of cold keys each read once, four times HBM's size:
     * with ALWAYS the cold keys push the hot ones out (they are the least recently used); with
     * FREQUENCY they are refused, the hot keys are still read from HBM, and every value is right.
     */
    @ParameterizedTest(name = "admission={0}")
    @EnumSource(value = HbmAdmission.class, names = {"ALWAYS", "FREQUENCY"})
    void frequencyAdmissionKeepsAHotSetThroughAColdScan(HbmAdmission admission) {
        int capacity = 16 * 128;
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("scan-" + admission))
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(capacity).hbmAdmission(admission).build()) {
            int total = 200 + 4 * capacity;
            long[] all = new long[total];
            for (int i = 0; i < total; i++) {
                all[i] = 31L * i + 5;
            }
            float[] values = rows(total, 0f);
            s.multiPut(all, values);
            long[] hot = Arrays.copyOf(all, 200);
            for (int round = 0; round < 10; round++) {
                assertEquals(hot.length, s.multiGet(hot, new float[hot.length * DIM], new boolean[hot.length]));
            }
            for (int from = 200; from < total; from += 1000) {
                long[] cold = Arrays.copyOfRange(all, from, Math.min(total, from + 1000));
                float[] out = new float[cold.length * DIM];
                assertEquals(cold.length, s.multiGet(cold, out, new boolean[cold.length]));
                assertArrayEquals(Arrays.copyOfRange(values, from * DIM, (from + cold.length) * DIM), out, "cold keys from " + from);
            }
            long hitsBefore = s.stats().tier("HBM").hits();
            float[] hotOut = new float[hot.length * DIM];
            assertEquals(hot.length, s.multiGet(hot, hotOut, new boolean[hot.length]));
            assertArrayEquals(Arrays.copyOf(values, hot.length * DIM), hotOut);
            long hotHits = s.stats().tier("HBM").hits() - hitsBefore;
            if (admission == HbmAdmission.FREQUENCY) {
                assertEquals(hot.length, hotHits, "every hot key still in HBM: " + s.stats());
                assertTrue(s.hbmAdmissionRejections() > 2 * capacity, "cold keys refused: " + s.hbmAdmissionRejections());
            } else {
                assertTrue(hotHits < hot.length / 2, "ALWAYS let the scan push the hot keys out: " + hotHits + " hits");
                assertEquals(0, s.hbmAdmissionRejections());
            }
        }
    }

    /**
     * With a spill log and a DRAM tier far smaller than the data, device reads under concurrent
     * writers are served from the log (written on HBM evictions, invalidated by every write) and
     * never return a torn row, another key's row or a value older than acknowledged.
     */
    @Test
    void deviceReadsFromTheSpillLogAreNeverTornNorStale() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("spilled"))
                .dramCapacityBytes(4 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(128).hbmSpillRows(4096).build()) {
            // Writers touch a third of the keys: installs of the rest are not defeated by bucket versions
            // changing under every write, so HBM keeps evicting them to the log.
            long checked = deviceReadsUnderWriters(s, seed, 3000, 1000, true);
            assertTrue(s.spillReadsOnGpu() > 1000, "the spill log served device reads (seed " + seed + "): "
                    + s.spillReadsOnGpu() + " keys; " + s.stats());
            assertTrue(checked > 20_000, "rows checked: " + checked);
        }
    }

    /**
     * With a spill log, clean entries HBM evicts (and DRAM lacks) go to the log; host and device
     * reads find them there with their values; a write or delete of a spilled key is never
     * answered from the log afterwards; the log is scratch and a reopened store starts it empty.
     */
    @Test
    void hbmEvictionsSpillToTheLogAndComeBackThroughHostAndDeviceReads() {
        Path d = dir.resolve("spill");
        int n = 4000;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = 37L * i + 5;
        }
        float[] values = rows(n, 10f);
        MlkvStoreBuilder b = MlkvStore.builder().dim(DIM).directory(d)
                .dramCapacityBytes(4 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(128).hbmSpillRows(1 << 14);
        try (MlkvStore s = b.build()) {
            assertTrue(Arrays.asList("cufile", "posix").contains(s.spillPath()), s.spillPath());
            s.multiPut(keys, values);
            s.flush();
            for (int from = 0; from < n; from += 500) { // each batch evicts the one before from HBM
                long[] part = Arrays.copyOfRange(keys, from, from + 500);
                s.multiGet(part, new float[part.length * DIM], new boolean[part.length]);
            }
            TierStats spilled = s.stats().tier("SPILL");
            assertTrue(spilled.promotions() >= n - 1000, "evictions were spilled: " + s.stats());
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(values, out);
            long hostHits = s.stats().tier("SPILL").hits();
            assertTrue(hostHits > 1000, "host reads were served by the log: " + s.stats());

            // Overwrite and delete some spilled keys; re-spill the rest by reading other keys.
            long[] changed = new long[500];
            long[] deleted = new long[500];
            for (int i = 0; i < 500; i++) {
                changed[i] = keys[2 * i];
                deleted[i] = keys[2 * i + 1];
            }
            float[] newer = rows(500, 70_000f);
            s.multiPut(changed, newer);
            s.multiDelete(deleted);
            long[] rest = Arrays.copyOfRange(keys, 1000, n);
            s.multiGet(rest, new float[rest.length * DIM], new boolean[rest.length]);

            float[] expected = values.clone();
            boolean[] present = new boolean[n];
            Arrays.fill(present, true);
            for (int i = 0; i < 500; i++) {
                System.arraycopy(newer, i * DIM, expected, 2 * i * DIM, DIM);
                present[2 * i + 1] = false;
                Arrays.fill(expected, (2 * i + 1) * DIM, (2 * i + 2) * DIM, -1f);
            }
            s.makeGpuCurrent();
            try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(n * 8L, "keys");
                 io.mlkv.gpu.cuda.DeviceMemory dOut = new io.mlkv.gpu.cuda.DeviceMemory(n * DIM * 4L, "out");
                 io.mlkv.gpu.cuda.DeviceMemory dFound = new io.mlkv.gpu.cuda.DeviceMemory(n, "found")) {
                long deviceHitsBefore = s.stats().tier("SPILL").hits();
                float[] fill = new float[n * DIM];
                Arrays.fill(fill, -1f);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(keys), n * 8L);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dOut.pointer(), jcuda.Pointer.to(fill), n * DIM * 4L);
                assertEquals(n - 500, s.multiGet(dKeys.pointer(), n, dOut.pointer(), dFound.pointer()));
                s.makeGpuCurrent();
                float[] devOut = new float[n * DIM];
                byte[] found = new byte[n];
                jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(devOut), dOut.pointer(), n * DIM * 4L);
                jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(found), dFound.pointer(), n);
                for (int i = 0; i < n; i++) {
                    assertEquals(present[i] ? 1 : 0, found[i], "found byte of key " + keys[i]);
                }
                assertArrayEquals(expected, devOut, "device reads: newest values, deleted keys untouched");
                assertTrue(s.stats().tier("SPILL").hits() > deviceHitsBefore, "device reads were served by the log: "
                        + s.stats());
            }
            float[] hostOut = new float[n * DIM];
            Arrays.fill(hostOut, -1f);
            boolean[] hostFound = new boolean[n];
            assertEquals(n - 500, s.multiGet(keys, hostOut, hostFound));
            assertArrayEquals(expected, hostOut, "host reads after the device reads");
        }
        try (MlkvStore s = b.build()) {
            assertEquals(0, s.stats().tier("SPILL").entries(), "a reopened store starts its log empty");
        }
    }

    /**
     * Loads versioned rows of {@code keys} keys (then, with {@code warm}, reads them all twice so that
     * HBM installs and evicts them); then two writers write new versions of keys below
     * {@code written} while two readers read random batches of all keys through device pointers
     * for 3 seconds, checking every row. Returns how many rows were checked.
     */
    private long deviceReadsUnderWriters(MlkvStore s, long seed, int keys, int written, boolean warm) throws Exception {
        long[] all = new long[keys];
        for (int k = 0; k < keys; k++) {
            all[k] = k;
        }
        s.multiPut(all, versionRows(all, 0));
        for (int round = 0; warm && round < 2; round++) {
            for (int from = 0; from < keys; from += 500) {
                long[] part = Arrays.copyOfRange(all, from, Math.min(keys, from + 500));
                s.multiGet(part, new float[part.length * DIM], new boolean[part.length]);
            }
        }
        java.util.concurrent.atomic.AtomicLongArray acked = new java.util.concurrent.atomic.AtomicLongArray(keys);
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        java.util.List<java.util.concurrent.Future<?>> tasks = new java.util.ArrayList<>();
        for (int w = 0; w < 2; w++) {
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed + w);
            int owner = w;
            tasks.add(pool.submit(() -> {
                for (int version = 1; !stop.get(); version++) {
                    long[] batch = new long[64];
                    for (int i = 0; i < batch.length; i++) {
                        batch[i] = 2L * rnd.nextInt(written / 2) + owner; // each writer owns half the written keys
                    }
                    s.multiPut(batch, versionRows(batch, version));
                    for (long k : batch) {
                        acked.accumulateAndGet((int) k, version, Math::max);
                    }
                }
                return null;
            }));
        }
        java.util.concurrent.atomic.AtomicLong checked = new java.util.concurrent.atomic.AtomicLong();
        for (int r = 0; r < 2; r++) {
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed - r - 1);
            tasks.add(pool.submit(() -> {
                int n = 2048;
                s.makeGpuCurrent();
                try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(n * 8L, "keys");
                     io.mlkv.gpu.cuda.DeviceMemory dOut = new io.mlkv.gpu.cuda.DeviceMemory(n * DIM * 4L, "out");
                     io.mlkv.gpu.cuda.DeviceMemory dFound = new io.mlkv.gpu.cuda.DeviceMemory(n, "found")) {
                    long[] batch = new long[n];
                    long[] floor = new long[n];
                    float[] out = new float[n * DIM];
                    while (!stop.get()) {
                        for (int i = 0; i < n; i++) {
                            batch[i] = rnd.nextInt(keys);
                            floor[i] = acked.get((int) batch[i]);
                        }
                        s.makeGpuCurrent();
                        jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(batch), n * 8L);
                        assertEquals(n, s.multiGet(dKeys.pointer(), n, dOut.pointer(), dFound.pointer()));
                        s.makeGpuCurrent();
                        jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(out), dOut.pointer(), out.length * 4L);
                        for (int i = 0; i < n; i++) {
                            float version = out[i * DIM + 1];
                            for (int d = 2; d < DIM; d++) {
                                if (out[i * DIM + d] != version) {
                                    throw new AssertionError("torn row of key " + batch[i] + " (seed " + seed + ")");
                                }
                            }
                            if (out[i * DIM] != batch[i] || version < floor[i]) {
                                throw new AssertionError("key " + batch[i] + " read the row of key " + out[i * DIM]
                                        + " version " + version + ", acknowledged version " + floor[i]
                                        + " (seed " + seed + ")");
                            }
                        }
                        checked.addAndGet(n);
                    }
                }
                return null;
            }));
        }
        Thread.sleep(3000);
        stop.set(true);
        for (java.util.concurrent.Future<?> f : tasks) {
            f.get(30, java.util.concurrent.TimeUnit.SECONDS);
        }
        pool.shutdown();
        return checked.get();
    }

    /** Rows of the key, then {@code version} in every other place (both exact in float32 below 2^24). */
    private static float[] versionRows(long[] keys, int version) {
        float[] v = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            v[i * DIM] = keys[i];
            Arrays.fill(v, i * DIM + 1, (i + 1) * DIM, version);
        }
        return v;
    }

    /**
     * Device-pointer accumulate and multiPut, with and without write-back: keys HBM holds and
     * keys only below, repeated keys included, all get every delta, then the last row written;
     * new keys are inserted; everything survives flush, close and a reopen without a GPU.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "writeBack={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
    void deviceAccumulateAndMultiPutReachEveryTier(boolean writeBack) {
        Path d = dir.resolve("acc-" + writeBack);
        int n = 4000;
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = 131L * i + 9;
        }
        float[] expected = rows(n, 1f);
        int b = 5000;
        long[] batch = new long[b];
        float[] deltas = new float[b * DIM];
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(d)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 14).hbmWriteBack(writeBack).build()) {
            s.multiPut(keys, expected);
            s.multiGet(Arrays.copyOf(keys, 2000), new float[2000 * DIM], new boolean[2000]); // the first half into HBM
            for (int j = 0; j < b; j++) {
                int k = (j * 7) % n; // 5000 draws over 4000 keys: repeats
                batch[j] = keys[k];
                for (int x = 0; x < DIM; x++) {
                    deltas[j * DIM + x] = (j % 13) + 0.25f;
                    expected[k * DIM + x] += (j % 13) + 0.25f;
                }
            }
            s.makeGpuCurrent();
            try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(b * 8L, "keys");
                 io.mlkv.gpu.cuda.DeviceMemory dDeltas = new io.mlkv.gpu.cuda.DeviceMemory(deltas.length * 4L, "deltas")) {
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(batch), b * 8L);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dDeltas.pointer(), jcuda.Pointer.to(deltas), deltas.length * 4L);
                s.accumulate(dKeys.pointer(), b, dDeltas.pointer());
            }
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(expected, out);
            assertEquals(n, s.size());
            // Device multiPut over the same kind of batch: a repeated key keeps its last row.
            float[] puts = new float[b * DIM];
            for (int j = 0; j < b; j++) {
                int k = (j * 7) % n;
                Arrays.fill(puts, j * DIM, (j + 1) * DIM, 10_000f + j);
                Arrays.fill(expected, k * DIM, (k + 1) * DIM, 10_000f + j);
            }
            long[] fresh = {-5, -6};
            float[] freshRows = rows(2, 77f);
            s.makeGpuCurrent();
            try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(b * 8L, "keys");
                 io.mlkv.gpu.cuda.DeviceMemory dRows = new io.mlkv.gpu.cuda.DeviceMemory(puts.length * 4L, "rows")) {
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(batch), b * 8L);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dRows.pointer(), jcuda.Pointer.to(puts), puts.length * 4L);
                s.multiPut(dKeys.pointer(), b, dRows.pointer());
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(fresh), 16);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dRows.pointer(), jcuda.Pointer.to(freshRows), freshRows.length * 4L);
                s.multiPut(dKeys.pointer(), 2, dRows.pointer()); // new keys go below
            }
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(expected, out, "device multiPut, last row wins");
            assertEquals(n + 2, s.size());
            s.flush();
        }
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(d)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(expected, out, "after reopen without a GPU");
            float[] freshOut = new float[2 * DIM];
            assertEquals(2, s.multiGet(new long[] {-5, -6}, freshOut, new boolean[2]));
            assertArrayEquals(rows(2, 77f), freshOut);
        }
    }

    /** With SECOND_MISS admission, a key read once stays below; read again, it is promoted. */
    @Test
    void secondMissAdmissionPromotesKeysOnTheirSecondMiss() {
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("admission"))
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 14).hbmAdmission(HbmAdmission.SECOND_MISS).build()) {
            int n = 2000;
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 97L * i + 3;
            }
            float[] values = rows(n, 1f);
            s.multiPut(keys, values);
            float[] out = new float[n * DIM];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            long afterFirst = s.stats().tier("HBM").promotions();
            assertTrue(afterFirst < n / 10, "first misses promote almost nothing: " + afterFirst);
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(values, out);
            assertEquals(n, s.stats().tier("HBM").entries(), "second misses promoted: " + s.stats());
            long hitsBefore = s.stats().tier("HBM").hits();
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertEquals(n, s.stats().tier("HBM").hits() - hitsBefore);
        }
    }

    @Test
    void readsArePromotedIntoHbmAndServedFromThereNext() {
        try (MlkvStore s = open(1 << 14)) {
            long[] keys = new long[2000];
            float[] values = new float[keys.length * DIM];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i * 7L;
                Arrays.fill(values, i * DIM, (i + 1) * DIM, i);
            }
            s.multiPut(keys, values);
            float[] out = new float[values.length];
            boolean[] found = new boolean[keys.length];
            assertEquals(keys.length, s.multiGet(keys, out, found));
            assertArrayEquals(values, out);
            assertEquals(0, s.stats().tier("HBM").hits());
            assertEquals(keys.length, s.stats().tier("HBM").promotions());
            assertTrue(s.stats().tier("HBM").moveNanos() > 0, "time spent installing into HBM is counted");
            Arrays.fill(out, -1);
            assertEquals(keys.length, s.multiGet(keys, out, found));
            assertArrayEquals(values, out);
            assertEquals(keys.length, s.stats().tier("HBM").hits());
        }
    }

    /**
     * Reads count as use in HBM: keys read every round stay there while ten times as many cold
     * keys pass through a full tier (a tier that evicted its oldest installs would lose them).
     */
    @Test
    void keysReadEveryRoundStayInHbmWhileColdKeysStreamThrough() {
        try (MlkvStore s = open(16 * 128)) {
            int total = 12_000;
            long[] all = new long[total];
            for (int i = 0; i < total; i++) {
                all[i] = 31L * i + 5;
            }
            s.multiPut(all, rows(total, 0f));
            long[] hot = Arrays.copyOf(all, 200);
            float[] out = new float[1000 * DIM];
            for (int round = 0; round < 10; round++) {
                assertEquals(hot.length, s.multiGet(hot, new float[hot.length * DIM], new boolean[hot.length]));
                long[] cold = Arrays.copyOfRange(all, 200 + round * 1000, 200 + (round + 1) * 1000);
                assertEquals(cold.length, s.multiGet(cold, out, new boolean[cold.length]));
            }
            assertEquals(2048, s.stats().tier("HBM").entries(), "HBM is full: " + s.stats());
            assertTrue(s.stats().tier("HBM").demotions() > 5000, "cold keys passed through: " + s.stats());
            long hitsBefore = s.stats().tier("HBM").hits();
            float[] hotOut = new float[hot.length * DIM];
            assertEquals(hot.length, s.multiGet(hot, hotOut, new boolean[hot.length]));
            assertArrayEquals(rows(hot.length, 0f), hotOut);
            assertEquals(hot.length, s.stats().tier("HBM").hits() - hitsBefore, "hot keys read from HBM: " + s.stats());
        }
    }

    @Test
    void writesAndDeletesNeverLeaveAStaleCopyInHbm() {
        try (MlkvStore s = open(1 << 14)) {
            long[] keys = {1, 2, 3};
            s.multiPut(keys, new float[3 * DIM]);
            s.multiGet(keys, new float[3 * DIM], new boolean[3]);
            float[] ones = new float[3 * DIM];
            Arrays.fill(ones, 1f);
            s.multiPut(keys, ones);
            s.accumulate(new long[] {2}, Arrays.copyOf(ones, DIM));
            s.delete(3);
            float[] out = new float[3 * DIM];
            boolean[] found = new boolean[3];
            assertEquals(2, s.multiGet(keys, out, found));
            assertEquals(1f, out[0]);
            assertEquals(2f, out[DIM]);
            assertEquals(false, found[2]);
            assertTrue(s.stats().tier("HBM").hits() >= 2, s.stats().toString());
        }
    }

    @Test
    void prefetchPutsTheKeysInHbmBeforeTheFutureCompletes() throws Exception {
        try (MlkvStore s = open(1 << 14)) {
            long[] keys = new long[5000];
            float[] values = new float[keys.length * DIM];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = 1_000L + 13L * i;
                Arrays.fill(values, i * DIM, (i + 1) * DIM, i);
            }
            s.multiPut(keys, values);
            s.flush();
            assertEquals(0, s.stats().tier("HBM").entries());
            s.prefetch(keys).get();
            assertEquals(keys.length, s.stats().tier("HBM").entries(), s.stats().toString());
            float[] out = new float[values.length];
            long hitsBefore = s.stats().tier("HBM").hits();
            assertEquals(keys.length, s.multiGet(keys, out, new boolean[keys.length]));
            assertArrayEquals(values, out);
            assertEquals(keys.length, s.stats().tier("HBM").hits() - hitsBefore, "every read served from HBM");
        }
    }

    /**
     * The device-pointer read path returns what the host path returns, for keys in HBM, in DRAM,
     * only in RocksDB, and absent; rows of absent keys are left untouched. With the DRAM tier
     * mapped, the GPU reads HBM misses from DRAM itself.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "mapDram={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
    void deviceMultiGetAgreesWithTheHostPathAcrossEveryTier(boolean mapDram) {
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("s"))
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 12).mapDram(mapDram).build()) {
            int n = 20_000;
            long[] keys = new long[n];
            float[] values = new float[n * DIM];
            for (int i = 0; i < n; i++) {
                keys[i] = 31L * i + 5;
                Arrays.fill(values, i * DIM, (i + 1) * DIM, i * 0.5f);
            }
            s.multiPut(keys, values);
            s.flush();
            s.multiGet(Arrays.copyOf(keys, 3000), new float[3000 * DIM], new boolean[3000]); // some into HBM
            // Rewritten with the same values: in DRAM, not in HBM.
            s.multiPut(Arrays.copyOfRange(keys, 10_000, 10_400), Arrays.copyOfRange(values, 10_000 * DIM, 10_400 * DIM));
            long[] ask = new long[n + 500];
            System.arraycopy(keys, 0, ask, 0, n);
            for (int i = n; i < ask.length; i++) {
                ask[i] = -1000L - i; // never written
            }
            float[] hostOut = new float[ask.length * DIM];
            boolean[] hostFound = new boolean[ask.length];
            s.makeGpuCurrent();
            try (io.mlkv.gpu.cuda.DeviceMemory dKeys = new io.mlkv.gpu.cuda.DeviceMemory(ask.length * 8L, "test keys");
                 io.mlkv.gpu.cuda.DeviceMemory dOut = new io.mlkv.gpu.cuda.DeviceMemory(hostOut.length * 4L, "test out");
                 io.mlkv.gpu.cuda.DeviceMemory dFound = new io.mlkv.gpu.cuda.DeviceMemory(ask.length, "test found")) {
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dKeys.pointer(), jcuda.Pointer.to(ask), ask.length * 8L);
                float[] sentinel = new float[hostOut.length];
                Arrays.fill(sentinel, -3f);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dOut.pointer(), jcuda.Pointer.to(sentinel), sentinel.length * 4L);
                long hbmHitsBefore = s.stats().tier("HBM").hits();
                assertEquals(n, s.multiGet(dKeys.pointer(), ask.length, dOut.pointer(), dFound.pointer()));
                assertTrue(s.stats().tier("HBM").hits() - hbmHitsBefore >= 2000, "some keys came from HBM");
                float[] devOut = new float[hostOut.length];
                byte[] devFound = new byte[ask.length];
                s.makeGpuCurrent();
                jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(devOut), dOut.pointer(), devOut.length * 4L);
                jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(devFound), dFound.pointer(), devFound.length);
                Arrays.fill(hostOut, -3f);
                assertEquals(n, s.multiGet(ask, hostOut, hostFound));
                assertArrayEquals(hostOut, devOut);
                for (int i = 0; i < ask.length; i++) {
                    assertEquals(hostFound[i], devFound[i] == 1, "found flag of key " + ask[i]);
                }
                assertEquals(mapDram, s.dramReadsOnGpu() > 0, "DRAM reads on the GPU: " + s.dramReadsOnGpu()
                        + ", mapping failure: " + s.dramMapFailure());
                // A second device read: everything found before is now promoted and served from HBM.
                assertEquals(n, s.multiGet(dKeys.pointer(), ask.length, dOut.pointer(), dFound.pointer()));
            }
        }
    }

    /**
     * A checkpoint carries the HBM tier's entries (written straight from HBM, over cuFile or the
     * POSIX path); a store restored from it starts with them in HBM, serves the checkpoint's
     * values, and never reuses them after it has been written to.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(value = io.mlkv.gpu.cufile.FileIo.Mode.class, names = {"AUTO", "POSIX"})
    void aCheckpointCarriesTheHotSetAndARestoredStoreStartsWithItInHbm(io.mlkv.gpu.cufile.FileIo.Mode mode)
            throws Exception {
        int n = 3000;
        long[] keys = new long[n];
        float[] values = new float[n * DIM];
        for (int i = 0; i < n; i++) {
            keys[i] = 1_000_003L * i;
            Arrays.fill(values, i * DIM, (i + 1) * DIM, i + 0.25f);
        }
        Path cp = dir.resolve("cp-" + mode);
        long inHbm;
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(dir.resolve("src-" + mode))
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 14).fileIo(mode).build()) {
            s.multiPut(keys, values);
            s.multiGet(keys, new float[values.length], new boolean[n]);
            inHbm = s.stats().tier("HBM").entries();
            assertTrue(inHbm > n / 2, "reads promoted into HBM: " + inHbm);
            s.checkpoint(cp);
            float[] later = new float[values.length];
            Arrays.fill(later, -7f);
            s.multiPut(keys, later); // after the checkpoint: must not be seen in the restored store
        }
        assertTrue(java.nio.file.Files.size(cp.resolve("hbm/values.bin")) == inHbm * DIM * 4L);
        Path restored = dir.resolve("restored-" + mode);
        MlkvStore.restoreCheckpoint(cp, restored);
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(restored)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 14).fileIo(mode).build()) {
            assertEquals(inHbm, s.stats().tier("HBM").entries(), "the hot set is in HBM before any read");
            assertTrue(!java.nio.file.Files.exists(restored.resolve("hbm")), "loaded once, then removed");
            float[] out = new float[values.length];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(values, out, "the checkpoint's values");
            assertEquals(inHbm, s.stats().tier("HBM").hits(), "served from HBM at once");
            float[] changed = new float[DIM];
            Arrays.fill(changed, 42f);
            s.put(keys[0], changed);
        }
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(restored)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(GpuMode.ON).hbmCapacity(1 << 14).fileIo(mode).build()) {
            assertEquals(0, s.stats().tier("HBM").entries(), "no stale HBM entries on a later open");
            float[] out = new float[DIM];
            assertTrue(s.get(keys[0], out));
            assertEquals(42f, out[0]);
        }
    }

    @Nested
    @Tag("gpu")
    class Contract extends VectorTierContract {
        @Override
        protected VectorTier open(Path d, int dim) {
            return MlkvStore.builder().dim(dim).directory(d.resolve("store"))
                    .dramCapacityBytes(8 * DramTier.bucketBytes(dim)).blockCacheBytes(4 << 20)
                    .gpu(GpuMode.ON).hbmCapacity(1024).build();
        }
    }

    @Nested
    @Tag("gpu")
    class WriteBackContract extends VectorTierContract {
        @Override
        protected VectorTier open(Path d, int dim) {
            return MlkvStore.builder().dim(dim).directory(d.resolve("store"))
                    .dramCapacityBytes(8 * DramTier.bucketBytes(dim)).blockCacheBytes(4 << 20)
                    .gpu(GpuMode.ON).hbmCapacity(1024).hbmWriteBack(true).build();
        }
    }

    @Nested
    @Tag("gpu")
    class ShardedWriteBackContract extends VectorTierContract {
        @Override
        protected VectorTier open(Path d, int dim) {
            return MlkvStore.builder().dim(dim).directory(d.resolve("store"))
                    .dramCapacityBytes(8 * DramTier.bucketBytes(dim)).blockCacheBytes(4 << 20)
                    .gpu(GpuMode.ON).hbmDevices(0, 0, 0).hbmCapacity(512).hbmWriteBack(true).build();
        }
    }

    @Nested
    @Tag("gpu")
    class ShardedWriteBackDifferential extends DifferentialTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected boolean hbmWriteBack() {
            return true;
        }

        @Override
        protected int[] hbmDevices() {
            return new int[] {0, 0, 0};
        }
    }

    @Nested
    @Tag("gpu")
    class ShardedWriteBackConcurrency extends ConcurrencyTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected boolean hbmWriteBack() {
            return true;
        }

        @Override
        protected int[] hbmDevices() {
            return new int[] {0, 0};
        }
    }

    @Nested
    @Tag("gpu")
    class SpillContract extends VectorTierContract {
        @Override
        protected VectorTier open(Path d, int dim) {
            return MlkvStore.builder().dim(dim).directory(d.resolve("store"))
                    .dramCapacityBytes(8 * DramTier.bucketBytes(dim)).blockCacheBytes(4 << 20)
                    .gpu(GpuMode.ON).hbmCapacity(1024).hbmSpillRows(2048).build();
        }
    }

    @Nested
    @Tag("gpu")
    class SpillDifferential extends DifferentialTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected long hbmSpillRows() {
            return 2048;
        }
    }

    @Nested
    @Tag("gpu")
    class SpillWriteBackConcurrency extends ConcurrencyTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected void pauseBetweenFlushes() throws InterruptedException {
            Thread.sleep(1);  // writers need the mutation lock a flush holds
        }

        @Override
        protected boolean hbmWriteBack() {
            return true;
        }

        @Override
        protected long hbmSpillRows() {
            return 2048;
        }
    }

    @Nested
    @Tag("gpu")
    class WriteBackDifferential extends DifferentialTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected boolean hbmWriteBack() {
            return true;
        }
    }

    @Nested
    @Tag("gpu")
    class WriteBackConcurrency extends ConcurrencyTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected void pauseBetweenFlushes() throws InterruptedException {
            Thread.sleep(1);  // writers need the mutation lock a flush holds
        }

        @Override
        protected boolean hbmWriteBack() {
            return true;
        }
    }

    @Nested
    @Tag("gpu")
    class Differential extends DifferentialTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }
    }

    @Nested
    @Tag("gpu")
    class Concurrency extends ConcurrencyTest {
        @Override
        protected GpuMode gpuMode() {
            return GpuMode.ON;
        }

        @Override
        protected void pauseBetweenFlushes() throws InterruptedException {
            Thread.sleep(1);  // writers need the mutation lock a flush holds
        }
    }
}
