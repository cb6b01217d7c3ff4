package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tens of thousands of random mixed operations, duplicates within batches included, checked
 * against a plain {@link HashMap} after every step, with the store closed and reopened along the
 * way. The seed is printed on failure; set {@code -Dmlkv.seed=N} to replay one.
 */
class DifferentialTest {
    private static final int DIM = 3;
    private static final int KEY_SPACE = 3000;

    @TempDir
    Path dir;

    /**
     * With {@link SizeCounting#ON_DEMAND}, reopens alternate between that and {@code ON_WRITE}
     * (which then recounts), and the size is compared every tenth step (each comparison flushes).
     */
    @ParameterizedTest(name = "{0} {1} {2} {3}")
    @CsvSource({"lru, WRITE_BACK, 2, ON_WRITE", "lfu, WRITE_THROUGH, 3, ON_WRITE", "tinylfu, WRITE_BACK, 8, ON_WRITE",
        "lru, WRITE_BACK, 2, ON_DEMAND", "lfu, WRITE_THROUGH, 3, ON_DEMAND"})
    void randomOperationsMatchAHashMap(String policy, Durability durability, int dramBuckets, SizeCounting counting) {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        try {
            run(seed, policy, durability, dramBuckets, counting);
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError("failed with seed " + seed + " (replay with -Dmlkv.seed=" + seed + "): " + e, e);
        }
    }

    /** The GPU mode the stores of this test run with; a GPU subclass overrides it. */
    protected GpuMode gpuMode() {
        return GpuMode.OFF;
    }

    /** Whether the HBM tier keeps writes (where the durability allows it); a GPU subclass overrides it. */
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

    private MlkvStore open(String policy, Durability durability, int dramBuckets, SizeCounting counting) {
        // A small HBM tier (8 buckets) where one is used, so it evicts too.
        return MlkvStore.builder().hbmDevices(hbmDevices()).dim(DIM).directory(dir.resolve("s")).sizeCounting(counting)
                .dramCapacityBytes(dramBuckets * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .policy(policy).durability(durability).gpu(gpuMode()).hbmCapacity(1024)
                .hbmWriteBack(hbmWriteBack() && durability == Durability.WRITE_BACK).hbmSpillRows(hbmSpillRows()).build();
    }

    private void run(long seed, String policy, Durability durability, int dramBuckets, SizeCounting counting) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<Long, float[]> oracle = new HashMap<>();
        SizeCounting now = counting;
        MlkvStore store = open(policy, durability, dramBuckets, now);
        try {
            int ops = 0;
            for (int step = 0; step < 1500; step++) {
                int n = 1 + rnd.nextInt(40);
                long[] keys = new long[n];
                for (int i = 0; i < n; i++) {
                    // A small key space makes duplicates within a batch common.
                    keys[i] = rnd.nextInt(KEY_SPACE) - KEY_SPACE / 2;
                }
                int op = rnd.nextInt(100);
                if (op < 30) {
                    float[] v = randomRows(rnd, n);
                    store.multiPut(keys, v);
                    for (int i = 0; i < n; i++) {
                        oracle.put(keys[i], Arrays.copyOfRange(v, i * DIM, (i + 1) * DIM));
                    }
                } else if (op < 45) {
                    float[] d = randomRows(rnd, n);
                    store.accumulate(keys, d);
                    for (int i = 0; i < n; i++) {
                        float[] cur = oracle.computeIfAbsent(keys[i], k -> new float[DIM]);
                        for (int j = 0; j < DIM; j++) {
                            cur[j] += d[i * DIM + j];
                        }
                    }
                } else if (op < 55) {
                    float[] out = new float[n * DIM];
                    store.findOrInsert(keys, out, (key, o, off, dim) -> {
                        for (int j = 0; j < dim; j++) {
                            o[off + j] = key * 10 + j;
                        }
                    });
                    for (int i = 0; i < n; i++) {
                        float[] init = new float[DIM];
                        for (int j = 0; j < DIM; j++) {
                            init[j] = keys[i] * 10 + j;
                        }
                        float[] expected = oracle.computeIfAbsent(keys[i], k -> init);
                        assertRow(expected, out, i, "findOrInsert of key " + keys[i]);
                    }
                } else if (op < 65) {
                    store.multiDelete(keys);
                    for (long k : keys) {
                        oracle.remove(k);
                    }
                } else if (op < 67) {
                    store.flush();
                } else if (op < 68) {
                    store.close();
                    if (counting == SizeCounting.ON_DEMAND) {
                        now = now == SizeCounting.ON_DEMAND ? SizeCounting.ON_WRITE : SizeCounting.ON_DEMAND;
                    }
                    store = open(policy, durability, dramBuckets, now);
                } else {
                    float[] out = new float[n * DIM];
                    boolean[] found = new boolean[n];
                    store.multiGet(keys, out, found);
                    for (int i = 0; i < n; i++) {
                        float[] expected = oracle.get(keys[i]);
                        assertEquals(expected != null, found[i], "presence of key " + keys[i] + " at step " + step);
                        if (expected != null) {
                            assertRow(expected, out, i, "value of key " + keys[i] + " at step " + step);
                        }
                    }
                }
                ops += n;
                if (now == SizeCounting.ON_WRITE || step % 10 == 0) {
                    assertEquals(oracle.size(), store.size(), "size at step " + step + " (" + now + ")");
                }
            }
            store.close();
            store = open(policy, durability, dramBuckets, counting);
            assertEquals(oracle.size(), store.size());
            Map<Long, float[]> exported = new HashMap<>();
            store.forEach((key, v) -> exported.put(key, v.clone()));
            assertEquals(oracle.keySet(), exported.keySet());
            for (Map.Entry<Long, float[]> e : oracle.entrySet()) {
                assertRow(e.getValue(), exported.get(e.getKey()), 0, "export of key " + e.getKey());
            }
            assertEquals(true, ops > 20_000, "ran " + ops + " key operations");
        } finally {
            store.close();
        }
    }

    private static float[] randomRows(SplittableRandom rnd, int n) {
        float[] v = new float[n * DIM];
        for (int i = 0; i < v.length; i++) {
            v[i] = rnd.nextInt(1000) / 4f;
        }
        return v;
    }

    private static void assertRow(float[] expected, float[] actual, int row, String what) {
        for (int j = 0; j < DIM; j++) {
            if (Float.floatToIntBits(expected[j]) != Float.floatToIntBits(actual[row * DIM + j])) {
                fail(what + ": expected " + Arrays.toString(expected) + " but element " + j + " was "
                        + actual[row * DIM + j]);
            }
        }
    }
}
