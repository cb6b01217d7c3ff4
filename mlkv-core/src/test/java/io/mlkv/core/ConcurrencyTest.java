package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writers, accumulators, readers and prefetchers on one store whose DRAM holds a fraction of the
 * keys, so entries keep moving between tiers while they are read and written.
 */
class ConcurrencyTest {
    private static final int DIM = 8;
    private static final int KEYS_PER_WRITER = 400;
    private static final int WRITERS = 3;

    @TempDir
    Path dir;

    /** The GPU mode the store of this test runs with; a GPU subclass overrides it. */
    protected GpuMode gpuMode() {
        return GpuMode.OFF;
    }

    /** Whether the HBM tier keeps writes; a GPU subclass overrides it. */
    protected boolean hbmWriteBack() {
        return false;
    }

    /** The HBM tier's devices, one shard each (with a GPU). */
    protected int[] hbmDevices() {
        return new int[] {0};
    }

    /** Rows of the HBM spill log (0: none); a GPU subclass overrides it. */
    protected long hbmSpillRows() {
        return 0;
    }

    /**
     * What {@link #putsRacingFlushesAllReachRocksDbByClose}'s flushing thread waits between two
     * flushes: nothing here, where the writers' puts of keys DRAM holds take no mutation lock. A
     * flush holds that lock, so where the writers need it (a store with an HBM tier: the GPU
     * subclasses) a flusher that takes it again at once starves them, and they override this.
     */
    protected void pauseBetweenFlushes() throws InterruptedException {
        Thread.onSpinWait();
    }

    // Repeated: a race between prefetch and write-back once showed in about 1 of 100 runs.
    @RepeatedTest(10)
    void readsNeverSeeAnOlderValueThanAcknowledgedAndNoUpdateIsLost() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try (MlkvStore store = MlkvStore.builder().hbmDevices(hbmDevices()).dim(DIM).directory(dir.resolve("s"))
                .dramCapacityBytes(16 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .policy("tinylfu").gpu(gpuMode()).hbmCapacity(512).hbmWriteBack(hbmWriteBack()).hbmSpillRows(hbmSpillRows()).build()) {
            int keys = WRITERS * KEYS_PER_WRITER;
            // acked[k]: the newest version of key k whose multiPut has returned.
            AtomicLongArray acked = new AtomicLongArray(keys);
            AtomicBoolean stop = new AtomicBoolean();
            ExecutorService pool = Executors.newFixedThreadPool(WRITERS + 4);
            List<Future<?>> writers = new ArrayList<>();
            List<Future<?>> others = new ArrayList<>();
            try {
                for (int w = 0; w < WRITERS; w++) {
                    final int owner = w;
                    writers.add(pool.submit(writer(store, acked, owner, new SplittableRandom(seed + owner), 150, 50, 50)));
                }
                writers.add(pool.submit(accumulator(store)));
                others.add(pool.submit(reader(store, acked, stop, new SplittableRandom(seed - 1))));
                others.add(pool.submit(reader(store, acked, stop, new SplittableRandom(seed - 2))));
                others.add(pool.submit(() -> {
                    SplittableRandom r = new SplittableRandom(seed - 3);
                    while (!stop.get()) {
                        long[] batch = new long[32];
                        for (int i = 0; i < batch.length; i++) {
                            batch[i] = r.nextInt(keys);
                        }
                        store.prefetch(batch).get(30, TimeUnit.SECONDS);
                    }
                    return null;
                }));
                awaitTasks(seed, stop, writers, others);
            } finally {
                stop.set(true);
                pool.shutdownNow();
            }
            long[] all = keysBelow(keys);
            float[] out = new float[keys * DIM];
            assertEquals(keys, store.multiGet(all, out, new boolean[keys]), "seed " + seed);
            for (int k = 0; k < keys; k++) {
                assertEquals(acked.get(k), (long) out[k * DIM], "final value of key " + k + ", seed " + seed);
            }
            float[] sums = new float[ACC_KEYS.length * DIM];
            store.multiGet(ACC_KEYS, sums, new boolean[ACC_KEYS.length]);
            for (float s : sums) {
                assertEquals(ACC_ROUNDS * 2, s, "accumulated sum, seed " + seed);
            }
        }
    }

    /**
     * Small puts of keys DRAM holds (written in place without the store's mutation lock, where
     * the store has no HBM tier) racing flushes: a flush that wrote a value below must not mark
     * clean a newer one written meanwhile, or it would never reach RocksDB. After close and
     * reopen every key holds its last acknowledged value.
     */
    @RepeatedTest(3)
    void putsRacingFlushesAllReachRocksDbByClose() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        int keys = WRITERS * KEYS_PER_WRITER;
        AtomicLongArray acked = new AtomicLongArray(keys);
        Path d = dir.resolve("flushes");
        MlkvStoreBuilder builder = MlkvStore.builder().hbmDevices(hbmDevices()).dim(DIM).directory(d)
                .dramCapacityBytes(8L * keys / DramTier.BUCKET_SLOTS * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(gpuMode()).hbmCapacity(512).hbmWriteBack(hbmWriteBack()).hbmSpillRows(hbmSpillRows());
        try (MlkvStore store = builder.build()) {
            long[] all = keysBelow(keys);
            store.multiPut(all, new float[keys * DIM]);
            AtomicBoolean stop = new AtomicBoolean();
            ExecutorService pool = Executors.newFixedThreadPool(WRITERS + 1);
            try {
                List<Future<?>> writers = new ArrayList<>();
                for (int w = 0; w < WRITERS; w++) {
                    writers.add(pool.submit(writer(store, acked, w, new SplittableRandom(seed + w), 2_000, 1, 4)));
                }
                Future<?> flusher = pool.submit(() -> {
                    while (!stop.get()) {
                        store.flush();
                        pauseBetweenFlushes();
                    }
                    return null;
                });
                awaitTasks(seed, stop, writers, List.of(flusher));
            } finally {
                stop.set(true);
                pool.shutdownNow();
            }
        }
        try (MlkvStore store = builder.build()) {
            long[] all = keysBelow(keys);
            float[] out = new float[keys * DIM];
            assertEquals(keys, store.multiGet(all, out, new boolean[keys]), "seed " + seed);
            for (int k = 0; k < keys; k++) {
                assertEquals(acked.get(k), (long) out[k * DIM], "value of key " + k + " after reopening, seed " + seed);
            }
        }
    }

    /**
     * Accumulates from several threads into shared keys, while readers of other keys promote them
     * and a flusher writes DRAM down, with DRAM holding a fraction of the keys: the deltas of keys
     * DRAM holds are added in place without the mutation lock (in a store without HBM tier), the
     * rest on the locked path, and keys keep entering and leaving DRAM. No delta may be lost or
     * counted twice, before and after close and reopen. Deltas are small integers, so float sums
     * are exact in any order.
     */
    @RepeatedTest(3)
    void accumulatesFromSeveralThreadsLoseNoDeltaWhileKeysMove() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        int keys = 1_000;
        int threads = 4;
        int rounds = 250;
        AtomicLongArray expected = new AtomicLongArray(keys);
        Path d = dir.resolve("accumulates");
        MlkvStoreBuilder builder = MlkvStore.builder().hbmDevices(hbmDevices()).dim(DIM).directory(d)
                .dramCapacityBytes(16 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .gpu(gpuMode()).hbmCapacity(512).hbmWriteBack(hbmWriteBack()).hbmSpillRows(hbmSpillRows());
        try (MlkvStore store = builder.build()) {
            AtomicBoolean stop = new AtomicBoolean();
            ExecutorService pool = Executors.newFixedThreadPool(threads + 2);
            try {
                List<Future<?>> accumulators = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    SplittableRandom r = new SplittableRandom(seed + t);
                    accumulators.add(pool.submit(() -> {
                        for (int round = 0; round < rounds; round++) {
                            long[] batch = new long[1 + r.nextInt(64)];
                            float[] deltas = new float[batch.length * DIM];
                            for (int i = 0; i < batch.length; i++) {
                                // Keys repeat within a batch and across threads.
                                batch[i] = r.nextInt(keys);
                                Arrays.fill(deltas, i * DIM, (i + 1) * DIM, 1 + r.nextInt(4));
                            }
                            store.accumulate(batch, deltas);
                            for (int i = 0; i < batch.length; i++) {
                                expected.addAndGet((int) batch[i], (long) deltas[i * DIM]);
                            }
                        }
                        return null;
                    }));
                }
                SplittableRandom mover = new SplittableRandom(seed - 1);
                Future<?> reader = pool.submit(() -> {
                    long[] batch = new long[32];
                    float[] out = new float[batch.length * DIM];
                    while (!stop.get()) {
                        for (int i = 0; i < batch.length; i++) {
                            batch[i] = 10_000 + mover.nextInt(2_000);
                        }
                        store.multiPut(batch, out);
                        store.multiGet(batch, out, new boolean[batch.length]);
                    }
                    return null;
                });
                Future<?> flusher = pool.submit(() -> {
                    while (!stop.get()) {
                        store.flush();
                        Thread.sleep(2);
                    }
                    return null;
                });
                awaitTasks(seed, stop, accumulators, List.of(reader, flusher));
            } finally {
                stop.set(true);
                pool.shutdownNow();
            }
            assertSums(store, expected, keys, "seed " + seed);
        }
        try (MlkvStore store = builder.build()) {
            assertSums(store, expected, keys, "after reopening, seed " + seed);
        }
    }

    /**
     * Waits for the tasks that end by themselves, then sets {@code stop} and waits for those that
     * run until it is set; a task's failure fails the test, naming the seed.
     */
    private static void awaitTasks(long seed, AtomicBoolean stop, List<Future<?>> ending, List<Future<?>> stopping)
            throws Exception {
        try {
            for (Future<?> f : ending) {
                f.get(120, TimeUnit.SECONDS);
            }
            stop.set(true);
            for (Future<?> f : stopping) {
                f.get(120, TimeUnit.SECONDS);
            }
        } catch (java.util.concurrent.ExecutionException e) {
            throw new AssertionError("seed " + seed + ": " + e.getCause(), e.getCause());
        }
    }

    private static void assertSums(MlkvStore store, AtomicLongArray expected, int keys, String context) {
        long[] all = keysBelow(keys);
        float[] out = new float[keys * DIM];
        boolean[] found = new boolean[keys];
        store.multiGet(all, out, found);
        for (int k = 0; k < keys; k++) {
            assertEquals(expected.get(k) > 0, found[k], "presence of key " + k + ", " + context);
            for (int e = 0; e < DIM; e++) {
                assertEquals(expected.get(k), (long) out[k * DIM + e], "sum of key " + k + " element " + e + ", " + context);
            }
        }
    }

    private static final long[] ACC_KEYS = {1_000_000, 1_000_001, 1_000_002, 1_000_003};
    private static final int ACC_ROUNDS = 300;

    private static Callable<Void> accumulator(MlkvStore store) {
        return () -> {
            // Each key appears twice per batch: both deltas must land.
            long[] batch = new long[ACC_KEYS.length * 2];
            for (int i = 0; i < batch.length; i++) {
                batch[i] = ACC_KEYS[i % ACC_KEYS.length];
            }
            float[] ones = new float[batch.length * DIM];
            Arrays.fill(ones, 1f);
            for (int r = 0; r < ACC_ROUNDS; r++) {
                store.accumulate(batch, ones);
            }
            return null;
        };
    }

    /**
     * Puts {@code rounds} batches of {@code minBatch} to {@code maxBatch} of the owner's keys, each
     * vector filled with its round, recording every acknowledged round in {@code acked}.
     */
    private static Callable<Void> writer(MlkvStore store, AtomicLongArray acked, int owner, SplittableRandom r, int rounds,
            int minBatch, int maxBatch) {
        return () -> {
            for (int round = 1; round <= rounds; round++) {
                long[] batch = new long[minBatch + r.nextInt(maxBatch - minBatch + 1)];
                float[] values = new float[batch.length * DIM];
                for (int i = 0; i < batch.length; i++) {
                    batch[i] = owner * KEYS_PER_WRITER + r.nextInt(KEYS_PER_WRITER);
                    Arrays.fill(values, i * DIM, (i + 1) * DIM, round);
                }
                store.multiPut(batch, values);
                for (long k : batch) {
                    acked.set((int) k, round);
                }
            }
            return null;
        };
    }

    private static long[] keysBelow(int n) {
        long[] all = new long[n];
        for (int k = 0; k < n; k++) {
            all[k] = k;
        }
        return all;
    }

    private static Callable<Void> reader(MlkvStore store, AtomicLongArray acked, AtomicBoolean stop, SplittableRandom r) {
        return () -> {
            int keys = acked.length();
            long[] batch = new long[64];
            long[] floor = new long[batch.length];
            float[] out = new float[batch.length * DIM];
            boolean[] found = new boolean[batch.length];
            while (!stop.get()) {
                for (int i = 0; i < batch.length; i++) {
                    batch[i] = r.nextInt(keys);
                    floor[i] = acked.get((int) batch[i]);
                }
                store.multiGet(batch, out, found);
                for (int i = 0; i < batch.length; i++) {
                    if (floor[i] > 0) {
                        assertTrue(found[i], "key " + batch[i] + " acknowledged at " + floor[i] + " was not found");
                    }
                    if (!found[i]) {
                        continue;
                    }
                    float v = out[i * DIM];
                    for (int d = 1; d < DIM; d++) {
                        assertEquals(v, out[i * DIM + d], "torn vector for key " + batch[i]);
                    }
                    assertTrue(v >= floor[i], "key " + batch[i] + " read version " + v
                            + " older than acknowledged " + floor[i]);
                }
            }
            return null;
        };
    }
}
