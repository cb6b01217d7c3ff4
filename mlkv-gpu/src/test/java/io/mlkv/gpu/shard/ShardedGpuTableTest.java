package io.mlkv.gpu.shard;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.ReservedKeys;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The sharded table with several shards on one GPU (device 0), its device calls against a
 * {@code HashMap} model. With {@code copyLocalParts} every part travels by peer copy, as it does
 * between GPUs. Seeds are printed on failure.
 */
@Tag("gpu")
@org.junit.jupiter.api.extension.ExtendWith(RequiresGpu.class)
class ShardedGpuTableTest {
    private static final int DIM = 12;

    /** Batches on device 0, copied in and out by the test. */
    private static final class DeviceBatch implements AutoCloseable {
        final DeviceMemory keys;
        final DeviceMemory rows;
        final DeviceMemory found;
        final int n;

        DeviceBatch(long[] keys, float[] rows) {
            this.n = keys.length;
            this.keys = new DeviceMemory(Math.max(1, n) * 8L, "test keys");
            this.rows = new DeviceMemory(Math.max(1, n) * DIM * 4L, "test rows");
            this.found = new DeviceMemory(Math.max(1, n), "test found");
            Cuda.check(cuMemcpyHtoD(this.keys.pointer(), Pointer.to(keys), n * 8L), "cuMemcpyHtoD (keys)");
            if (rows != null) {
                Cuda.check(cuMemcpyHtoD(this.rows.pointer(), Pointer.to(rows), n * DIM * 4L), "cuMemcpyHtoD (rows)");
            }
            Cuda.check(cuMemsetD8(this.found.pointer(), (byte) 7, Math.max(1, n)), "cuMemsetD8 (found)");
        }

        float[] rows() {
            float[] out = new float[n * DIM];
            Cuda.check(cuMemcpyDtoH(Pointer.to(out), rows.pointer(), n * DIM * 4L), "cuMemcpyDtoH (rows)");
            return out;
        }

        byte[] found() {
            byte[] out = new byte[n];
            Cuda.check(cuMemcpyDtoH(Pointer.to(out), found.pointer(), n), "cuMemcpyDtoH (found)");
            return out;
        }

        @Override
        public void close() {
            found.close();
            rows.close();
            keys.close();
        }
    }

    private static long[] randomKeys(SplittableRandom r, long[] pool, int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = pool[r.nextInt(pool.length)];
        }
        return k;
    }

    /** Small whole numbers, so that sums in any order are exact. */
    private static float[] randomRows(SplittableRandom r, int n) {
        float[] v = new float[n * DIM];
        for (int i = 0; i < v.length; i++) {
            v[i] = r.nextInt(-50, 50);
        }
        return v;
    }

    private static ShardedGpuTable open(int shards, boolean copyLocalParts) {
        return ShardedGpuTable.builder(DIM).devices(new int[shards]).capacityPerShard(1 << 16)
                .maxBatch(5_000).stagingKeys(4_096).copyLocalParts(copyLocalParts).build();
    }

    @ParameterizedTest(name = "copyLocalParts={0}")
    @ValueSource(booleans = {false, true})
    void deviceCallsWithRepeatedKeysAgreeWithAMapAcrossShardsAndParts(boolean copyLocalParts) {
        try (ShardedGpuTable t = open(3, copyLocalParts)) {
            trainAgainstAMap(t, new int[] {0});
            if (copyLocalParts) {
                assertTrue(t.timings().copyNanos() > 0, "parts copied: " + t.timings());
            } else {
                assertEquals(0, t.timings().copyNanos(), "parts on the home device are not copied: " + t.timings());
            }
        }
    }

    /** Two shards on every visible GPU, each round's batch on another of them; skipped on one GPU. */
    @Test
    void deviceCallsAgreeWithAMapWithShardsAndBatchesOnEveryGpu() {
        int gpus = io.mlkv.gpu.cuda.CudaDevice.count();
        org.junit.jupiter.api.Assumptions.assumeTrue(gpus >= 2,
                "needs two or more CUDA devices; " + gpus + " visible (the one-GPU tests above run the same code)");
        int[] devices = new int[2 * gpus];
        int[] homes = new int[gpus];
        for (int g = 0; g < gpus; g++) {
            devices[g] = g;
            devices[gpus + g] = g;
            homes[g] = g;
        }
        try (ShardedGpuTable t = ShardedGpuTable.builder(DIM).devices(devices).capacityPerShard(1 << 16)
                .maxBatch(5_000).stagingKeys(4_096).build()) {
            trainAgainstAMap(t, homes);
            assertTrue(t.timings().copyNanos() > 0, "parts that cross devices are copied: " + t.timings());
        }
    }

    /**
     * Rounds of device insertOrAssign, accumOrAssign and assign with repeated keys, round r's batch
     * on {@code homes[r % homes.length]}, each followed by a check of every key against the model.
     */
    private static void trainAgainstAMap(ShardedGpuTable t, int[] homes) {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        long[] pool = new long[6_000];
        for (int i = 0; i < pool.length; i++) {
            pool[i] = r.nextLong(1, Long.MAX_VALUE);
        }
        Map<Long, float[]> model = new HashMap<>();
        int rounds = Math.max(4, 2 * homes.length);
        for (int round = 0; round < rounds; round++) {
            int home = homes[round % homes.length];
            t.makeDeviceCurrent(home);
            // 12,000 keys drawn from 6,000: every batch repeats keys, and goes in three parts of 5,000.
            long[] keys = randomKeys(r, pool, 12_000);
            float[] rows = randomRows(r, keys.length);
            try (DeviceBatch b = new DeviceBatch(keys, rows)) {
                switch (round % 3) {
                    case 0 -> t.insertOrAssign(home, b.keys.pointer(), b.rows.pointer(), b.n);
                    case 1 -> t.accumOrAssign(home, b.keys.pointer(), b.rows.pointer(), b.n);
                    default -> t.assign(home, b.keys.pointer(), b.rows.pointer(), b.n, b.found.pointer());
                }
                byte[] assigned = round % 3 == 2 ? b.found() : null;
                for (int i = 0; i < keys.length; i++) {
                    float[] row = new float[DIM];
                    System.arraycopy(rows, i * DIM, row, 0, DIM);
                    float[] old = model.get(keys[i]);
                    if (round % 3 == 0) {
                        model.put(keys[i], row);
                    } else if (round % 3 == 1) {
                        if (old != null) {
                            for (int d = 0; d < DIM; d++) {
                                row[d] += old[d];
                            }
                        }
                        model.put(keys[i], row);
                    } else {
                        assertEquals(old != null ? 1 : 0, assigned[i], "assign found, key " + keys[i] + " at " + i
                                + ", batch on device " + home + ", seed " + seed);
                        if (old != null) {
                            model.put(keys[i], row);
                        }
                    }
                }
            }
            int readHome = homes[(round + 1) % homes.length];
            t.makeDeviceCurrent(readHome);
            checkAgainstModel(t, readHome, model, pool, seed);
        }
        assertEquals(model.size(), t.size(), "seed " + seed);
        assertTrue(t.timings().calls() >= 3L * rounds, "three parts per call: " + t.timings());
    }

    /** Reads every pool key and a few absent ones by device find, and by the host-array call. */
    private static void checkAgainstModel(ShardedGpuTable t, int home, Map<Long, float[]> model, long[] pool, long seed) {
        long[] keys = new long[pool.length + 100];
        System.arraycopy(pool, 0, keys, 0, pool.length);
        for (int i = pool.length; i < keys.length; i++) {
            keys[i] = -i;  // never in the pool (pool keys are positive)
        }
        float[] sentinel = new float[keys.length * DIM];
        java.util.Arrays.fill(sentinel, 12345f);
        try (DeviceBatch b = new DeviceBatch(keys, sentinel)) {
            t.find(home, b.keys.pointer(), b.n, b.rows.pointer(), b.found.pointer());
            float[] out = b.rows();
            byte[] found = b.found();
            float[] hostOut = new float[keys.length * DIM];
            boolean[] hostFound = new boolean[keys.length];
            int hits = t.multiGet(keys, hostOut, hostFound);
            assertEquals(model.size(), hits, "seed " + seed);
            for (int i = 0; i < keys.length; i++) {
                float[] want = model.get(keys[i]);
                assertEquals(want != null ? 1 : 0, found[i], "found of key " + keys[i] + " at " + i + ", seed " + seed);
                assertEquals(want != null, hostFound[i], "host found of key " + keys[i] + ", seed " + seed);
                for (int d = 0; d < DIM; d++) {
                    float expected = want != null ? want[d] : 12345f;
                    assertEquals(expected, out[i * DIM + d], "key " + keys[i] + " element " + d + ", seed " + seed);
                    if (want != null) {
                        assertEquals(expected, hostOut[i * DIM + d], "host row of key " + keys[i] + ", seed " + seed);
                    }
                }
            }
        }
    }

    @Test
    void aBatchWhoseKeysAllBelongToOneShardReachesOnlyThatShard() {
        int shards = 4;
        long[] keys = new long[7_000];
        int n = 0;
        for (long k = 1; n < keys.length; k++) {
            if (ShardedGpuTable.ownerOf(k, shards) == 2) {
                keys[n++] = k;
            }
        }
        SplittableRandom r = new SplittableRandom(3);
        float[] rows = randomRows(r, keys.length);
        try (ShardedGpuTable t = open(shards, true)) {
            t.makeDeviceCurrent(0);
            try (DeviceBatch b = new DeviceBatch(keys, rows)) {
                t.insertOrAssign(0, b.keys.pointer(), b.rows.pointer(), b.n);
            }
            for (int s = 0; s < shards; s++) {
                assertEquals(s == 2 ? keys.length : 0, t.shard(s).size(), "shard " + s);
            }
            float[] out = new float[rows.length];
            boolean[] found = new boolean[keys.length];
            assertEquals(keys.length, t.shard(2).find(keys, out, found));
            assertEquals(java.util.Arrays.toString(rows), java.util.Arrays.toString(out));
        }
    }

    @Test
    void thePartitionKernelSendsEveryKeyToTheShardJavaNamesItsOwner() {
        int shards = 5;
        SplittableRandom r = new SplittableRandom(11);
        long[] keys = new long[20_000];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = r.nextLong(1, Long.MAX_VALUE);
        }
        try (ShardedGpuTable t = open(shards, false)) {
            t.makeDeviceCurrent(0);
            try (DeviceBatch b = new DeviceBatch(keys, randomRows(r, keys.length))) {
                t.insertOrAssign(0, b.keys.pointer(), b.rows.pointer(), b.n);
            }
            int[] perShard = new int[shards];
            for (long k : keys) {
                perShard[ShardedGpuTable.ownerOf(k, shards)]++;
            }
            for (int s = 0; s < shards; s++) {
                int shard = s;
                long[] own = java.util.Arrays.stream(keys).filter(k -> ShardedGpuTable.ownerOf(k, shards) == shard).toArray();
                assertEquals(perShard[s], t.shard(s).size(), "shard " + s);
                boolean[] present = new boolean[own.length];
                assertEquals(own.length, t.shard(s).containsKeys(own, present), "shard " + s + " holds the keys it owns");
            }
            assertEquals(t.shard(0).capacity() * shards, t.capacity());
        }
    }

    @ParameterizedTest(name = "{0} shards restored into {1}")
    @org.junit.jupiter.params.provider.CsvSource({"3, 3", "3, 2", "2, 5"})
    void aSnapshotRestoresIntoTheSameOrAnotherShardCount(int savedShards, int restoredShards,
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        long[] keys = new long[9_000];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = r.nextLong(1, Long.MAX_VALUE);
        }
        float[] rows = randomRows(r, keys.length);
        try (io.mlkv.gpu.cufile.PosixFileIo io = new io.mlkv.gpu.cufile.PosixFileIo()) {
            try (ShardedGpuTable saved = open(savedShards, false)) {
                saved.multiPut(keys, rows);
                assertEquals(keys.length, saved.writeSnapshot(dir.resolve("snap"), io), "seed " + seed);
            }
            try (ShardedGpuTable restored = open(restoredShards, false)) {
                assertEquals(keys.length, restored.loadSnapshot(dir.resolve("snap"), io), "seed " + seed);
                assertEquals(keys.length, restored.size(), "seed " + seed);
                float[] out = new float[rows.length];
                boolean[] found = new boolean[keys.length];
                assertEquals(keys.length, restored.multiGet(keys, out, found), "seed " + seed);
                assertEquals(java.util.Arrays.toString(rows), java.util.Arrays.toString(out), "seed " + seed);
                for (int s = 0; s < restoredShards; s++) {
                    int shard = s;
                    long owned = java.util.Arrays.stream(keys).filter(k -> ShardedGpuTable.ownerOf(k, restoredShards) == shard).count();
                    assertEquals(owned, restored.shard(s).size(), "shard " + s + " holds the keys it owns, seed " + seed);
                }
            }
            try (ShardedGpuTable otherDim = ShardedGpuTable.builder(DIM + 1).devices(0, 0).capacityPerShard(1 << 12).build()) {
                io.mlkv.storage.MlkvException e = assertThrows(io.mlkv.storage.MlkvException.class,
                        () -> otherDim.loadSnapshot(dir.resolve("snap"), io));
                assertTrue(e.getMessage().contains("dim " + DIM), e.getMessage());
                e = assertThrows(io.mlkv.storage.MlkvException.class, () -> otherDim.loadSnapshot(dir, io));
                assertTrue(e.getMessage().contains("not a finished snapshot"), e.getMessage());
            }
        }
    }

    @Test
    void reservedKeysAreIgnoredOnTheDeviceAndRefusedOnTheHost() {
        try (ShardedGpuTable t = open(2, false)) {
            t.makeDeviceCurrent(0);
            long[] keys = {5, ReservedKeys.EMPTY, 6, ReservedKeys.LOCKED};
            try (DeviceBatch b = new DeviceBatch(keys, new float[keys.length * DIM])) {
                t.insertOrAssign(0, b.keys.pointer(), b.rows.pointer(), b.n);
            }
            assertEquals(2, t.size());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> t.multiPut(new long[] {7, ReservedKeys.EMPTY}, new float[2 * DIM]));
            assertTrue(e.getMessage().contains("reserved"), e.getMessage());
            assertEquals(2, t.size(), "nothing of a refused batch written");
        }
    }

    @Test
    void aCallWithItsBatchOnADeviceWithoutAShardIsRefused() {
        try (ShardedGpuTable t = open(2, false)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> t.find(3, new jcuda.driver.CUdeviceptr(), 1, new jcuda.driver.CUdeviceptr(), null));
            assertTrue(e.getMessage().contains("device 3"), e.getMessage());
        }
    }

    @Test
    void aDeviceThatCannotBeOpenedIsNamedWithItsShard() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ShardedGpuTable.builder(DIM).devices(0, 97).capacityPerShard(1 << 12).build());
        assertTrue(e.getMessage().contains("shard 1") && e.getMessage().contains("device 97"), e.getMessage());
    }
}
