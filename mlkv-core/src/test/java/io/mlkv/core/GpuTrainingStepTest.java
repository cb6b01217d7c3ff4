package io.mlkv.core;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.dram.DramTier;
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
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLongArray;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The training step on the GPU, with HBM write-back and with clean HBM copies: device lookups,
 * then device accumulate and multiPut of the same keys, against a {@code HashMap} model, through misses in every tier,
 * evictions of dirty entries, flush, close and reopen, checkpoint and restore, and concurrent
 * callers. Values are sums of quarters, exact in float32 whatever the order of the additions.
 * Seeds are printed on failure.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuTrainingStepTest {
    private static final int DIM = 8;

    @TempDir
    Path dir;

    /** The HBM tier's devices, one shard each: one shard here; {@link GpuTrainingStepShardedTest} runs every test with several. */
    int[] hbmDevices() {
        return new int[] {0};
    }

    /** HBM entries per shard for a tier of {@code entries} in all. */
    long perShard(long entries) {
        return entries / hbmDevices().length;
    }

    /** {@link MlkvStore#builder()} with {@link #hbmDevices()}. */
    MlkvStoreBuilder store() {
        return MlkvStore.builder().hbmDevices(hbmDevices());
    }

    private MlkvStoreBuilder builder(Path d, long hbmEntries, boolean writeBack) {
        return store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.ON).hbmCapacity(perShard(hbmEntries)).hbmWriteBack(writeBack);
    }

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    /** Device buffers of one caller: keys, rows and found flags for batches of up to {@code n}. */
    private static final class DeviceBatch implements AutoCloseable {
        final DeviceMemory keys;
        final DeviceMemory rows;
        final DeviceMemory found;

        DeviceBatch(MlkvStore s, int n) {
            s.makeGpuCurrent();
            keys = new DeviceMemory(n * 8L, "test keys");
            rows = new DeviceMemory(n * DIM * 4L, "test rows");
            found = new DeviceMemory(n, "test found");
        }

        void accumulate(MlkvStore s, long[] k, float[] deltas) {
            s.makeGpuCurrent();
            cuMemcpyHtoD(keys.pointer(), Pointer.to(k), k.length * 8L);
            cuMemcpyHtoD(rows.pointer(), Pointer.to(deltas), deltas.length * 4L);
            s.accumulate(keys.pointer(), k.length, rows.pointer());
        }

        void put(MlkvStore s, long[] k, float[] values) {
            s.makeGpuCurrent();
            cuMemcpyHtoD(keys.pointer(), Pointer.to(k), k.length * 8L);
            cuMemcpyHtoD(rows.pointer(), Pointer.to(values), values.length * 4L);
            s.multiPut(keys.pointer(), k.length, rows.pointer());
        }

        /** Device multiGet; returns found flags, rows in {@code out}. */
        boolean[] get(MlkvStore s, long[] k, float[] out) {
            s.makeGpuCurrent();
            cuMemcpyHtoD(keys.pointer(), Pointer.to(k), k.length * 8L);
            s.multiGet(keys.pointer(), k.length, rows.pointer(), found.pointer());
            byte[] f = new byte[k.length];
            cuMemcpyDtoH(Pointer.to(out), rows.pointer(), k.length * DIM * 4L);
            cuMemcpyDtoH(Pointer.to(f), found.pointer(), k.length);
            boolean[] b = new boolean[k.length];
            for (int i = 0; i < k.length; i++) {
                b[i] = f[i] != 0;
            }
            return b;
        }

        @Override
        public void close() {
            rows.close();
            found.close();
            keys.close();
        }
    }

    /**
     * Puts keys {@code stride * k + first} for {@code k < count}, row {@code k} filled with
     * {@code k / 4}, into the store (host path) and the model, flushes, and returns the keys.
     */
    private static long[] loadFlushed(MlkvStore s, Map<Long, float[]> model, int count, long stride, long first) {
        long[] keys = new long[count];
        float[] rows = new float[count * DIM];
        for (int k = 0; k < count; k++) {
            keys[k] = stride * k + first;
            Arrays.fill(rows, k * DIM, (k + 1) * DIM, k * 0.25f);
            model.put(keys[k], Arrays.copyOfRange(rows, k * DIM, (k + 1) * DIM));
        }
        s.multiPut(keys, rows);
        s.flush();
        return keys;
    }

    private static void assertModel(MlkvStore s, Map<Long, float[]> model, String where) {
        long[] keys = model.keySet().stream().mapToLong(Long::longValue).toArray();
        float[] out = new float[keys.length * DIM];
        boolean[] found = new boolean[keys.length];
        assertEquals(keys.length, s.multiGet(keys, out, found), where + ": keys found");
        for (int i = 0; i < keys.length; i++) {
            assertArrayEquals(model.get(keys[i]), Arrays.copyOfRange(out, i * DIM, (i + 1) * DIM),
                    where + ": key " + keys[i]);
        }
        assertEquals(keys.length, s.size(), where + ": size");
    }

    /**
     * Random training steps (lookup, accumulate with repeated keys, now and then a multiPut) over
     * a table 10x HBM and 30x DRAM, so keys miss in HBM, DRAM and RocksDB and are new, and dirty
     * entries are evicted every step; flush, close and reopen, and checkpoint and restore happen
     * between steps. The store matches the model after each, and without a GPU at the end.
     */
    @ParameterizedTest(name = "writeBack={0}")
    @ValueSource(booleans = {true, false})
    void trainingStepsMatchAHashMapModelThroughEvictionsReopenAndRestore(boolean writeBack) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        Map<Long, float[]> model = new HashMap<>();
        Path d = dir.resolve("train");
        int universe = 20_000;
        int batch = 3_000;
        MlkvStore s = builder(d, 2048, writeBack).build();
        try {
            for (int step = 0; step < 24; step++) {
                long[] keys = new long[batch];
                float[] deltas = new float[batch * DIM];
                for (int j = 0; j < batch; j++) {
                    // Skewed: a small hot range repeats within the batch, the rest spreads out.
                    keys[j] = r.nextInt(3) == 0 ? r.nextInt(200) : r.nextInt(universe);
                    for (int x = 0; x < DIM; x++) {
                        deltas[j * DIM + x] = r.nextInt(-8, 9) * 0.25f;
                    }
                }
                try (DeviceBatch b = new DeviceBatch(s, batch)) {
                    float[] out = new float[batch * DIM];
                    boolean[] found = b.get(s, keys, out);
                    for (int j = 0; j < batch; j++) {
                        float[] want = model.get(keys[j]);
                        assertEquals(want != null, found[j], "lookup of key " + keys[j] + " at step " + step + ", seed " + seed);
                        if (want != null) {
                            assertArrayEquals(want, Arrays.copyOfRange(out, j * DIM, (j + 1) * DIM),
                                    "lookup of key " + keys[j] + " at step " + step + ", seed " + seed);
                        }
                    }
                    b.accumulate(s, keys, deltas);
                    for (int j = 0; j < batch; j++) {
                        float[] row = model.computeIfAbsent(keys[j], k -> new float[DIM]);
                        for (int x = 0; x < DIM; x++) {
                            row[x] += deltas[j * DIM + x];
                        }
                    }
                    if (step % 3 == 1) {
                        int m = 1_000;
                        long[] putKeys = new long[m];
                        float[] values = new float[m * DIM];
                        for (int j = 0; j < m; j++) {
                            putKeys[j] = r.nextInt(universe + 5_000); // some new keys, some repeats
                            Arrays.fill(values, j * DIM, (j + 1) * DIM, r.nextInt(1_000) * 0.5f);
                        }
                        b.put(s, putKeys, values);
                        for (int j = 0; j < m; j++) {
                            model.put(putKeys[j], Arrays.copyOfRange(values, j * DIM, (j + 1) * DIM));
                        }
                    }
                }
                String where = "step " + step + ", seed " + seed;
                switch (step % 8) {
                    case 2 -> {
                        s.flush();
                        assertModel(s, model, where + " after flush");
                    }
                    case 4 -> {
                        s.close();
                        s = builder(d, 2048, writeBack).build();
                        assertModel(s, model, where + " after reopen");
                    }
                    case 6 -> {
                        Path cp = dir.resolve("cp-" + step);
                        s.checkpoint(cp);
                        s.close();
                        d = dir.resolve("restored-" + step);
                        MlkvStore.restoreCheckpoint(cp, d);
                        s = builder(d, 2048, writeBack).build();
                        assertModel(s, model, where + " after restore");
                    }
                    default -> {
                    }
                }
            }
            assertModel(s, model, "end, seed " + seed);
            if (writeBack) {
                assertTrue(s.stats().tier("HBM").writeBacks() > 0, "dirty entries were evicted: " + s.stats());
            }
        } finally {
            s.close();
        }
        try (MlkvStore cpu = store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertModel(cpu, model, "reopened without a GPU, seed " + seed);
        }
    }

    /**
     * Device accumulates of keys DRAM holds and HBM does not (repeated keys among them) add into
     * DRAM in place, on the GPU, without promoting them into HBM under write-back; with clean HBM
     * copies, the final rows of the keys HBM holds reach DRAM the same way; puts in between.
     * Reads on the device and the host, a flush, and a reopen without a GPU all see the model's
     * values.
     */
    /**
     * One install that evicts more dirty entries than there are demotion stamps, into a DRAM tier
     * that holds every key: the rows go into DRAM on the GPU and nothing of them comes to the
     * host. Every value is still right (device and host reads, after a flush, and reopened
     * without a GPU), and the write-backs are counted.
     */
    @Test
    void anInstallEvictingTensOfThousandsOfDirtyRowsLosesNone() throws InterruptedException {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        Path d = dir.resolve("many-dirty");
        // Each shard's install must evict more dirty rows than one table has stamps: sizes scale with the shards.
        int shards = hbmDevices().length;
        int hot = 24_000 * shards;
        int cold = 48_000 * shards;
        int universe = hot + cold;
        Map<Long, float[]> model = new HashMap<>();
        MlkvStoreBuilder b = store().dim(DIM).directory(d).dramCapacityBytes(32_768L * shards * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.ON).hbmCapacity(32_768).hbmWriteBack(true);
        try (MlkvStore s = b.build(); DeviceBatch dev = new DeviceBatch(s, cold)) {
            assertEquals(null, s.dramMapFailure(), "the DRAM tier is mapped for the GPU");
            long[] all = loadFlushed(s, model, universe, 11, 1);
            long[] hotKeys = Arrays.copyOf(all, hot);
            float[] deltas = new float[hot * DIM];
            for (int j = 0; j < hot * DIM; j++) {
                deltas[j] = r.nextInt(-8, 9) * 0.5f;
            }
            dev.get(s, hotKeys, new float[hot * DIM]); // installed
            dev.accumulate(s, hotKeys, deltas);        // dirty in HBM
            for (int j = 0; j < hot; j++) {
                float[] row = model.get(hotKeys[j]);
                for (int x = 0; x < DIM; x++) {
                    row[x] += deltas[j * DIM + x];
                }
            }
            long writeBacksBefore = s.stats().tier("HBM").writeBacks();
            long[] coldKeys = Arrays.copyOfRange(all, hot, universe);
            float[] out = new float[cold * DIM];
            boolean[] found = dev.get(s, coldKeys, out); // installs evicting the dirty hot entries
            for (int j = 0; j < cold; j++) {
                assertTrue(found[j], "cold key " + coldKeys[j]);
                assertArrayEquals(model.get(coldKeys[j]), Arrays.copyOfRange(out, j * DIM, (j + 1) * DIM), "cold key " + coldKeys[j]);
            }
            long written = s.stats().tier("HBM").writeBacks() - writeBacksBefore;
            // With several shards a shard's install may find the store's lock held by another's and go
            // to the promoter thread: give it a few seconds.
            for (long deadline = System.nanoTime() + 10_000_000_000L; written < 16_384L * shards && System.nanoTime() < deadline;
                    written = s.stats().tier("HBM").writeBacks() - writeBacksBefore) {
                Thread.sleep(10);
            }
            assertTrue(written >= 16_384L * shards, "one install wrote back more rows than there are stamps: " + written + "; "
                    + s.stats());
            float[] hotOut = new float[hot * DIM];
            found = dev.get(s, hotKeys, hotOut);
            for (int j = 0; j < hot; j++) {
                assertTrue(found[j]);
                assertArrayEquals(model.get(hotKeys[j]), Arrays.copyOfRange(hotOut, j * DIM, (j + 1) * DIM),
                        "device read of evicted dirty key " + hotKeys[j] + ", seed " + seed);
            }
            assertModel(s, model, "host reads, seed " + seed);
            s.flush();
            assertModel(s, model, "after flush, seed " + seed);
        }
        try (MlkvStore cpu = store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertModel(cpu, model, "reopened without a GPU, seed " + seed);
        }
    }

    /**
     * Device multiPuts with write-back whose keys mostly miss HBM: keys DRAM holds, keys only
     * RocksDB holds (with a small DRAM tier), keys the write-back buffer holds, new keys, and a
     * key repeated at several positions of a batch (its last row wins). The missed keys are
     * deduplicated and counted on the GPU; the store's size and every value match the model after
     * each batch, after a flush, and reopened without a GPU.
     */
    @ParameterizedTest(name = "DRAM holds the table={0}")
    @ValueSource(booleans = {true, false})
    void devicePutsOfMissedKeysKeepTheLastRowAndCountNewKeysExactly(boolean dramHoldsTable) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        Path d = dir.resolve("puts-" + dramHoldsTable);
        int loaded = 20_000;
        int batch = 6_000;
        long dramBuckets = dramHoldsTable ? 16_384 : 64;
        Map<Long, float[]> model = new HashMap<>();
        MlkvStoreBuilder b = store().dim(DIM).directory(d).dramCapacityBytes(dramBuckets * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.ON).hbmCapacity(perShard(2048)).hbmWriteBack(true);
        try (MlkvStore s = b.build(); DeviceBatch dev = new DeviceBatch(s, batch)) {
            loadFlushed(s, model, loaded, 13, 5);
            for (int round = 0; round < 8; round++) {
                long[] k = new long[batch];
                float[] v = new float[batch * DIM];
                for (int j = 0; j < batch; j++) {
                    int pick = r.nextInt(10);
                    // Loaded keys, a few hot ones repeated across the batch, and new keys (some repeated too).
                    k[j] = pick < 6 ? 13L * r.nextInt(loaded) + 5 : pick < 8 ? 13L * r.nextInt(40) + 5 : 1_000_000L + r.nextInt(3 * batch);
                    Arrays.fill(v, j * DIM, (j + 1) * DIM, r.nextInt(-400, 400) * 0.5f);
                }
                dev.put(s, k, v);
                for (int j = 0; j < batch; j++) {
                    model.put(k[j], Arrays.copyOfRange(v, j * DIM, (j + 1) * DIM));
                }
                assertModel(s, model, "round " + round + ", seed " + seed);
            }
            s.flush();
            assertModel(s, model, "after flush, seed " + seed);
        }
        try (MlkvStore cpu = store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertModel(cpu, model, "reopened without a GPU, seed " + seed);
        }
    }

    @ParameterizedTest(name = "writeBack={0}, admission={1}")
    @CsvSource({"true, ALWAYS", "false, ALWAYS", "true, FREQUENCY"})
    void writesOfKeysDramHoldsLandThereInPlace(boolean writeBack, HbmAdmission admission) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        Path d = dir.resolve("in-place-" + writeBack + "-" + admission);
        int universe = 16_384;
        int batch = 4_096;
        Map<Long, float[]> model = new HashMap<>();
        MlkvStoreBuilder b = store().dim(DIM).directory(d).dramCapacityBytes(8192 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.ON).hbmCapacity(perShard(1024)).hbmWriteBack(writeBack).hbmAdmission(admission);
        try (MlkvStore s = b.build(); DeviceBatch dev = new DeviceBatch(s, batch)) {
            assertEquals(null, s.dramMapFailure(), "the DRAM tier is mapped for the GPU");
            long[] all = new long[universe];
            float[] initial = new float[universe * DIM];
            for (int k = 0; k < universe; k++) {
                all[k] = k;
                Arrays.fill(initial, k * DIM, (k + 1) * DIM, k * 0.5f);
                model.put((long) k, Arrays.copyOfRange(initial, k * DIM, (k + 1) * DIM));
            }
            s.multiPut(all, initial);
            s.flush();
            for (int round = 0; round < 6; round++) {
                String where = "round " + round + ", seed " + seed;
                long promotionsBefore = s.stats().tier("HBM").promotions();
                long[] keys = new long[batch];
                float[] rows = new float[batch * DIM];
                for (int j = 0; j < batch; j++) {
                    // Repeats: a quarter of the batch draws from 64 keys.
                    keys[j] = r.nextInt(4) == 0 ? r.nextInt(64) * 7L : r.nextInt(universe);
                    Arrays.fill(rows, j * DIM, (j + 1) * DIM, r.nextInt(-8, 9) * 0.25f);
                }
                if (round % 2 == 0) {
                    dev.accumulate(s, keys, rows);
                    for (int j = 0; j < batch; j++) {
                        float[] row = model.get(keys[j]);
                        for (int x = 0; x < DIM; x++) {
                            row[x] += rows[j * DIM + x];
                        }
                    }
                } else {
                    dev.put(s, keys, rows);
                    for (int j = 0; j < batch; j++) {
                        model.put(keys[j], Arrays.copyOfRange(rows, j * DIM, (j + 1) * DIM));
                    }
                }
                if (writeBack && round % 2 == 0) {
                    assertEquals(promotionsBefore, s.stats().tier("HBM").promotions(), where + ": the accumulate promoted nothing");
                }
                float[] out = new float[batch * DIM];
                boolean[] found = dev.get(s, keys, out);
                for (int j = 0; j < batch; j++) {
                    assertTrue(found[j], where + ": key " + keys[j]);
                    assertArrayEquals(model.get(keys[j]), Arrays.copyOfRange(out, j * DIM, (j + 1) * DIM),
                            where + ": device read of key " + keys[j]);
                }
                if (round == 3) {
                    s.flush();
                }
            }
            if (admission == HbmAdmission.FREQUENCY) {
                assertTrue(s.hbmAdmissionRejections() > 0, "device reads of a table 16x HBM had promotions refused, seed " + seed);
            }
            // Host reads last: they promote on the store's promoter thread, which would blur the count above.
            assertModel(s, model, "after the rounds, seed " + seed);
        }
        try (MlkvStore cpu = store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertModel(cpu, model, "reopened without a GPU, seed " + seed);
        }
    }

    /** A device batch holding a reserved key is refused, naming the key and its index, before anything is written. */
    @ParameterizedTest(name = "writeBack={0}")
    @ValueSource(booleans = {true, false})
    void aReservedKeyInADeviceBatchIsRefusedBeforeAnythingIsWritten(boolean writeBack) {
        try (MlkvStore s = builder(dir.resolve("reserved-" + writeBack), 1024, writeBack).build()) {
            long[] keys = {1, 2, 3, ReservedKeys.EMPTY, 5};
            float[] before = new float[5 * DIM];
            Arrays.fill(before, 1f);
            long[] good = {1, 2, 3, 4, 5};
            s.multiPut(good, before);
            float[] deltas = new float[5 * DIM];
            Arrays.fill(deltas, 9f);
            try (DeviceBatch b = new DeviceBatch(s, 5)) {
                IllegalArgumentException acc = assertThrows(IllegalArgumentException.class, () -> b.accumulate(s, keys, deltas));
                assertTrue(acc.getMessage().contains("index 3") && acc.getMessage().contains(Long.toString(ReservedKeys.EMPTY)),
                        acc.getMessage());
                keys[3] = 4;
                keys[1] = ReservedKeys.LOCKED;
                IllegalArgumentException put = assertThrows(IllegalArgumentException.class, () -> b.put(s, keys, deltas));
                assertTrue(put.getMessage().contains("index 1") && put.getMessage().contains(Long.toString(ReservedKeys.LOCKED)),
                        put.getMessage());
            }
            float[] out = new float[5 * DIM];
            assertEquals(5, s.multiGet(good, out, new boolean[5]));
            assertArrayEquals(before, out, "nothing written");
            assertEquals(5, s.size());
        }
    }

    /** An HBM tier whose every entry is dirty, then pushed out entirely by new keys, loses nothing. */
    @Test
    void aFullHbmWhoseEveryEntryIsDirtyLosesNothing() {
        Path d = dir.resolve("full");
        boolean writeBack = true;
        int hbm = 1024;
        Map<Long, float[]> model = new HashMap<>();
        try (MlkvStore s = builder(d, hbm, writeBack).build(); DeviceBatch b = new DeviceBatch(s, 4 * hbm)) {
            for (int round = 0; round < 4; round++) {
                long[] keys = new long[hbm];
                float[] values = new float[hbm * DIM];
                for (int i = 0; i < hbm; i++) {
                    keys[i] = round * 1_000_000L + i;
                    Arrays.fill(values, i * DIM, (i + 1) * DIM, round * 10_000 + i);
                    model.put(keys[i], Arrays.copyOfRange(values, i * DIM, (i + 1) * DIM));
                }
                b.put(s, keys, values);
                float[] ones = new float[hbm * DIM];
                Arrays.fill(ones, 0.25f);
                b.accumulate(s, keys, ones);
                for (long k : keys) {
                    float[] row = model.get(k);
                    for (int x = 0; x < DIM; x++) {
                        row[x] += 0.25f;
                    }
                }
            }
            assertTrue(s.stats().tier("HBM").writeBacks() >= 2 * hbm, s.stats().toString());
            assertModel(s, model, "after the rounds");
        }
        try (MlkvStore cpu = store().dim(DIM).directory(d).dramCapacityBytes(32 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            assertModel(cpu, model, "reopened without a GPU");
        }
    }

    /**
     * Trainers on their own threads and device buffers add 0.25 to every key of their own range
     * per step while a churner overwrites other keys (evicting dirty entries) and readers read the
     * trainers' keys on the host and on the device: no read returns less than what was
     * acknowledged before it began.
     */
    @ParameterizedTest(name = "writeBack={0}")
    @ValueSource(booleans = {true, false})
    void concurrentTrainersAndReadersNeverSeeAValueOlderThanAnAcknowledgedWrite(boolean writeBack) throws Exception {
        long seed = seed();
        int trainers = 3;
        int range = 400;
        AtomicLongArray acked = new AtomicLongArray(trainers);
        AtomicBoolean stop = new AtomicBoolean();
        try (MlkvStore s = builder(dir.resolve("concurrent-" + writeBack), 1024, writeBack).build()) {
            ExecutorService pool = Executors.newFixedThreadPool(trainers + 3);
            List<Future<?>> tasks = new ArrayList<>();
            for (int t = 0; t < trainers; t++) {
                int id = t;
                tasks.add(pool.submit(() -> {
                    long[] keys = new long[range];
                    for (int i = 0; i < range; i++) {
                        keys[i] = id * 100_000L + i;
                    }
                    float[] deltas = new float[range * DIM];
                    Arrays.fill(deltas, 0.25f);
                    try (DeviceBatch b = new DeviceBatch(s, range)) {
                        for (int step = 1; step <= 60; step++) {
                            b.accumulate(s, keys, deltas);
                            acked.set(id, step);
                        }
                    }
                    return null;
                }));
            }
            tasks.add(pool.submit(() -> {
                SplittableRandom r = new SplittableRandom(seed);
                try (DeviceBatch b = new DeviceBatch(s, 2_000)) {
                    while (!stop.get()) {
                        long[] keys = new long[2_000];
                        for (int i = 0; i < keys.length; i++) {
                            keys[i] = 10_000_000L + r.nextInt(50_000);
                        }
                        b.put(s, keys, new float[keys.length * DIM]);
                    }
                }
                return null;
            }));
            for (int reader = 0; reader < 2; reader++) {
                boolean onDevice = reader == 0;
                tasks.add(pool.submit(() -> {
                    SplittableRandom r = new SplittableRandom(seed + (onDevice ? 1 : 2));
                    try (DeviceBatch b = new DeviceBatch(s, range)) {
                        while (!stop.get()) {
                            int t = r.nextInt(trainers);
                            long floor = acked.get(t);
                            long[] keys = new long[range];
                            for (int i = 0; i < range; i++) {
                                keys[i] = t * 100_000L + i;
                            }
                            float[] out = new float[range * DIM];
                            boolean[] found = onDevice ? b.get(s, keys, out) : new boolean[range];
                            if (!onDevice) {
                                s.multiGet(keys, out, found);
                            }
                            for (int i = 0; i < range; i++) {
                                float v = found[i] ? out[i * DIM] : 0f;
                                if (v < floor * 0.25f) {
                                    throw new AssertionError("key " + keys[i] + " read " + v + " after " + floor
                                            + " steps were acknowledged (" + (onDevice ? "device" : "host") + " read), seed " + seed);
                                }
                            }
                        }
                    }
                    return null;
                }));
            }
            for (int t = 0; t < trainers; t++) {
                tasks.get(t).get(120, TimeUnit.SECONDS);
            }
            stop.set(true);
            for (Future<?> f : tasks) {
                f.get(60, TimeUnit.SECONDS);
            }
            pool.shutdown();
            for (int t = 0; t < trainers; t++) {
                long[] keys = new long[range];
                for (int i = 0; i < range; i++) {
                    keys[i] = t * 100_000L + i;
                }
                float[] out = new float[range * DIM];
                assertEquals(range, s.multiGet(keys, out, new boolean[range]));
                for (float v : out) {
                    assertEquals(60 * 0.25f, v, "seed " + seed);
                }
            }
        }
    }
}
