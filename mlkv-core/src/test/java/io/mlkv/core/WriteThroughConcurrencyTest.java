package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.io.TempDir;

/**
 * A write-through store without HBM writes RocksDB outside its mutation lock, with the batch's key
 * stripes held (see {@link KeyStripes}). Writers, deleters, findOrInsert and accumulate callers share
 * one small key range, so they meet on the same keys all the time, while a checkpoint is taken.
 * What must hold: DRAM never keeps a row RocksDB does not have (the values read before close equal
 * those read after reopening, when every read comes from RocksDB), the entry count is exact in the
 * store and in the checkpoint, and the accumulated sums are whole.
 */
class WriteThroughConcurrencyTest {
    private static final int DIM = 4;
    private static final int KEYS = 300;
    private static final int THREADS = 4;
    private static final int ROUNDS = 300;
    private static final long ACC_KEY = 1_000_000;

    @TempDir
    Path dir;

    @RepeatedTest(5)
    void writersOfTheSameKeysLeaveDramAndRocksDbAgreeingAndTheCountExact() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        Path storeDir = dir.resolve("s");
        Path checkpointDir = dir.resolve("cp");
        Map<Long, float[]> beforeClose = new HashMap<>();
        long sizeBeforeClose;
        try (MlkvStore store = open(storeDir)) {
            ExecutorService pool = Executors.newFixedThreadPool(THREADS + 1);
            List<Future<?>> tasks = new ArrayList<>();
            try {
                for (int t = 0; t < THREADS; t++) {
                    SplittableRandom r = new SplittableRandom(seed + t);
                    tasks.add(pool.submit(() -> {
                        mixedOps(store, r);
                        return null;
                    }));
                }
                tasks.add(pool.submit(() -> {
                    Thread.sleep(20);
                    store.checkpoint(checkpointDir);
                    return null;
                }));
                for (Future<?> f : tasks) {
                    f.get(120, TimeUnit.SECONDS);
                }
            } catch (ExecutionException e) {
                throw new AssertionError("seed " + seed + ": " + e.getCause(), e.getCause());
            } finally {
                pool.shutdownNow();
            }
            float[] acc = new float[DIM];
            store.multiGet(new long[] {ACC_KEY}, acc, new boolean[1]);
            float[] expected = new float[DIM];
            Arrays.fill(expected, THREADS * ROUNDS * 2);
            assertArrayEquals(expected, acc, "accumulated sum, seed " + seed);
            readAll(store, beforeClose);
            sizeBeforeClose = store.size();
            assertEquals(beforeClose.size(), sizeBeforeClose, "size() against the keys present, seed " + seed);
        }
        try (MlkvStore reopened = open(storeDir)) {
            Map<Long, float[]> afterReopen = new HashMap<>();
            readAll(reopened, afterReopen);
            assertEquals(beforeClose.keySet(), afterReopen.keySet(), "keys present after reopening, seed " + seed);
            for (Map.Entry<Long, float[]> e : beforeClose.entrySet()) {
                assertArrayEquals(e.getValue(), afterReopen.get(e.getKey()),
                        "key " + e.getKey() + ": DRAM's row before close against RocksDB's after, seed " + seed);
            }
            assertEquals(sizeBeforeClose, reopened.size(), "size() after reopening, seed " + seed);
        }
        Path restored = dir.resolve("restored");
        MlkvStore.restoreCheckpoint(checkpointDir, restored);
        try (MlkvStore copy = open(restored)) {
            Map<Long, float[]> inCopy = new HashMap<>();
            readAll(copy, inCopy);
            assertEquals(inCopy.size(), copy.size(), "the checkpoint's recorded count against its keys, seed " + seed);
        }
    }

    private static MlkvStore open(Path directory) {
        // DRAM of a few buckets: entries keep being evicted and promoted again while written.
        return MlkvStore.builder().dim(DIM).directory(directory).durability(Durability.WRITE_THROUGH)
                .dramCapacityBytes(4 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20).build();
    }

    /** Puts, deletes, findOrInserts and reads of random keys of the shared range, and an accumulate per round. */
    private static void mixedOps(MlkvStore store, SplittableRandom r) {
        float[] ones = new float[2 * DIM];
        Arrays.fill(ones, 1f);
        for (int round = 0; round < ROUNDS; round++) {
            int n = 1 + r.nextInt(8);
            long[] keys = new long[n];
            float[] rows = new float[n * DIM];
            for (int i = 0; i < n; i++) {
                keys[i] = r.nextInt(KEYS);
                Arrays.fill(rows, i * DIM, (i + 1) * DIM, r.nextInt(1_000_000));
            }
            switch (r.nextInt(4)) {
                case 0, 1 -> store.multiPut(keys, rows);
                case 2 -> store.multiDelete(keys);
                default -> store.findOrInsert(keys, new float[n * DIM],
                        (key, dst, offset, dim) -> Arrays.fill(dst, offset, offset + dim, -key));
            }
            store.multiGet(keys, new float[n * DIM], new boolean[n]);
            store.accumulate(new long[] {ACC_KEY, ACC_KEY}, ones);
        }
    }

    private static void readAll(MlkvStore store, Map<Long, float[]> into) {
        long[] keys = new long[KEYS + 1];
        for (int k = 0; k < KEYS; k++) {
            keys[k] = k;
        }
        keys[KEYS] = ACC_KEY;
        float[] out = new float[keys.length * DIM];
        boolean[] found = new boolean[keys.length];
        store.multiGet(keys, out, found);
        for (int k = 0; k < keys.length; k++) {
            if (found[k]) {
                into.put(keys[k], Arrays.copyOfRange(out, k * DIM, (k + 1) * DIM));
            }
        }
    }
}
