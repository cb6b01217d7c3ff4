package io.mlkv.core;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.shard.ShardedGpuTable;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A store whose HBM tier has several shards on the first GPU ({@link MlkvStoreBuilder#hbmDevices}):
 * every key lives in its owner shard, device batches come back in the caller's order with the rows
 * of missing keys untouched, a batch of one shard's keys reaches only it, a device that does not
 * exist is named, and checkpoints restore warm into the same shard count and cold, with every value,
 * into another. {@link GpuTrainingStepShardedTest} runs the training-step suite over two shards.
 * Seeds are printed on failure.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuShardedStoreTest {
    private static final int DIM = 8;
    private static final String COPY_LOCAL = "mlkv.hbmShardCopyLocalParts";

    @TempDir
    Path dir;

    private static MlkvStoreBuilder builder(Path d, int shards, long perShard) {
        int[] devices = new int[shards];
        return MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(4096 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.ON).hbmDevices(devices).hbmCapacity(perShard).hbmWriteBack(true);
    }

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    private static float[] row(long key, float v) {
        float[] r = new float[DIM];
        for (int x = 0; x < DIM; x++) {
            r[x] = v + x + (key % 7);
        }
        return r;
    }

    /** Device multiGet of {@code keys} into {@code out}, which holds the caller's rows before the call; returns the flags. */
    private static boolean[] deviceGet(MlkvStore s, long[] keys, float[] out) {
        int n = keys.length;
        s.makeGpuCurrent();
        try (DeviceMemory k = new DeviceMemory(n * 8L, "keys"); DeviceMemory o = new DeviceMemory(n * DIM * 4L, "out");
             DeviceMemory f = new DeviceMemory(n, "found")) {
            cuMemcpyHtoD(k.pointer(), Pointer.to(keys), n * 8L);
            cuMemcpyHtoD(o.pointer(), Pointer.to(out), n * DIM * 4L);
            long hits = s.multiGet(k.pointer(), n, o.pointer(), f.pointer());
            byte[] flags = new byte[n];
            s.makeGpuCurrent();
            cuMemcpyDtoH(Pointer.to(out), o.pointer(), n * DIM * 4L);
            cuMemcpyDtoH(Pointer.to(flags), f.pointer(), n);
            boolean[] found = new boolean[n];
            long count = 0;
            for (int i = 0; i < n; i++) {
                found[i] = flags[i] != 0;
                count += found[i] ? 1 : 0;
            }
            assertEquals(count, hits, "multiGet's return counts the keys flagged found");
            return found;
        }
    }

    private static void devicePut(MlkvStore s, long[] keys, float[] rows, boolean accumulate) {
        int n = keys.length;
        s.makeGpuCurrent();
        try (DeviceMemory k = new DeviceMemory(n * 8L, "keys"); DeviceMemory r = new DeviceMemory(n * DIM * 4L, "rows")) {
            cuMemcpyHtoD(k.pointer(), Pointer.to(keys), n * 8L);
            cuMemcpyHtoD(r.pointer(), Pointer.to(rows), n * DIM * 4L);
            if (accumulate) {
                s.accumulate(k.pointer(), n, r.pointer());
            } else {
                s.multiPut(k.pointer(), n, r.pointer());
            }
        }
    }

    /**
     * Device puts and accumulates with repeated keys, then device reads of present and absent keys
     * in a shuffled order, over three shards: each key's last put plus every later delta, flags in
     * batch order, the rows of absent keys exactly as the caller left them. Also with every part
     * copied to buffers of its own (the path of a shard on another device).
     */
    @ParameterizedTest(name = "copyLocalParts={0}")
    @ValueSource(booleans = {false, true})
    void deviceCallsKeepBatchOrderRepeatedKeysAndUntouchedRows(boolean copyLocalParts) {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        if (copyLocalParts) {
            System.setProperty(COPY_LOCAL, "true");
        }
        try (MlkvStore s = builder(dir.resolve("order-" + copyLocalParts), 3, 4096).build()) {
            Map<Long, float[]> model = new HashMap<>();
            int n = 6000;
            long[] keys = new long[n];
            float[] rows = new float[n * DIM];
            for (int i = 0; i < n; i++) {
                keys[i] = r.nextInt(3000) * 13L + 5;  // repeats: the last row wins
                System.arraycopy(row(keys[i], i), 0, rows, i * DIM, DIM);
                model.put(keys[i], row(keys[i], i));
            }
            devicePut(s, keys, rows, false);
            float[] deltas = new float[n * DIM];
            for (int i = 0; i < n; i++) {
                float d = r.nextInt(-4, 5) * 0.25f;
                Arrays.fill(deltas, i * DIM, (i + 1) * DIM, d);
                float[] m = model.get(keys[i]);
                for (int x = 0; x < DIM; x++) {
                    m[x] += d;
                }
            }
            devicePut(s, keys, deltas, true);  // repeats: every delta is added
            long[] probe = new long[8000];
            float[] out = new float[probe.length * DIM];
            for (int i = 0; i < probe.length; i++) {
                probe[i] = r.nextBoolean() ? keys[r.nextInt(n)] : -1L - r.nextInt(1 << 20);
                Arrays.fill(out, i * DIM, (i + 1) * DIM, -7.5f - i);
            }
            boolean[] found = deviceGet(s, probe, out);
            for (int i = 0; i < probe.length; i++) {
                float[] want = model.get(probe[i]);
                float[] got = Arrays.copyOfRange(out, i * DIM, (i + 1) * DIM);
                if (want == null) {
                    assertTrue(!found[i], "absent key " + probe[i] + " at " + i + ", seed " + seed);
                    float[] untouched = new float[DIM];
                    Arrays.fill(untouched, -7.5f - i);
                    assertArrayEquals(untouched, got, "row of absent key at " + i + " untouched, seed " + seed);
                } else {
                    assertTrue(found[i], "key " + probe[i] + " at " + i + ", seed " + seed);
                    assertArrayEquals(want, got, "key " + probe[i] + " at " + i + ", seed " + seed);
                }
            }
            assertEquals(model.size(), s.size());
            long held = Arrays.stream(s.hbmShardEntries()).sum();
            assertEquals(model.size(), held, "every key written on the GPU is held by its shard (capacity 3 x 4096)");
            long[] t = s.hbmShardRouteTimings();
            assertEquals(3, t[0], "three device calls routed");
            assertTrue(copyLocalParts ? t[3] > 0 : t[3] == 0, "peer copies only where parts are copied: " + Arrays.toString(t));
        } finally {
            System.clearProperty(COPY_LOCAL);
        }
    }

    /**
     * Each shard holds exactly the keys it owns: 40,000 sequential keys read on the device (and so
     * installed) leave shard {@code s} with as many entries as keys {@code ownerOf} gives it, and those
     * counts pass a chi-square test of an even spread.
     */
    @Test
    void eachShardHoldsExactlyTheKeysItOwnsSpreadEvenly() {
        int shards = 4;
        int n = 40_000;
        try (MlkvStore s = builder(dir.resolve("spread"), shards, 32_768).build()) {
            long[] keys = new long[n];
            float[] rows = new float[n * DIM];
            long[] owned = new long[shards];
            for (int i = 0; i < n; i++) {
                keys[i] = i;
                System.arraycopy(row(i, 1f), 0, rows, i * DIM, DIM);
                owned[ShardedGpuTable.ownerOf(i, shards)]++;
            }
            s.multiPut(keys, rows);  // host path: DRAM, not HBM
            boolean[] found = deviceGet(s, keys, new float[n * DIM]);  // installs each key in its owner
            for (boolean f : found) {
                assertTrue(f);
            }
            assertArrayEquals(owned, s.hbmShardEntries(), "entries per shard against ownerOf");
            double expected = (double) n / shards;
            double chi2 = 0;
            for (long o : owned) {
                chi2 += (o - expected) * (o - expected) / expected;
            }
            assertTrue(chi2 < 16.27, "chi-square over 4 shards (3 degrees of freedom, p = 0.001): " + chi2 + " for "
                    + Arrays.toString(owned));
        }
    }

    /** A device batch whose keys all belong to one shard reaches only that shard; host reads agree. */
    @Test
    void aBatchOfOneShardsKeysReachesOnlyThatShard() {
        int shards = 3;
        try (MlkvStore s = builder(dir.resolve("one-shard"), shards, 4096).build()) {
            long[] keys = new long[2000];
            for (long k = 1, i = 0; i < keys.length; k++) {
                if (ShardedGpuTable.ownerOf(k, shards) == 2) {
                    keys[(int) i++] = k;
                }
            }
            float[] rows = new float[keys.length * DIM];
            for (int i = 0; i < keys.length; i++) {
                System.arraycopy(row(keys[i], 3f), 0, rows, i * DIM, DIM);
            }
            devicePut(s, keys, rows, false);
            assertArrayEquals(new long[] {0, 0, keys.length}, s.hbmShardEntries());
            long[] t = s.hbmShardRouteTimings();
            assertTrue(t[0] == 1 && t[1] >= t[2] && t[2] > 0, "one routed part, its partition within it: " + Arrays.toString(t));
            s.makeGpuCurrent(0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.makeGpuCurrent(7));
            assertTrue(e.getMessage().contains("CUDA device 7") && e.getMessage().contains("[0, 0, 0]"), e.getMessage());
            float[] out = new float[rows.length];
            assertEquals(keys.length, s.multiGet(keys, out, new boolean[keys.length]));
            assertArrayEquals(rows, out);
        }
    }

    /** A device that does not exist is named with its shard, and the failed open leaves the directory usable. */
    @Test
    void aDeviceThatDoesNotExistIsNamedWithItsShard() {
        Path d = dir.resolve("missing-device");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> MlkvStore.builder().dim(DIM).directory(d)
                .dramCapacityBytes(64 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20).gpu(GpuMode.ON)
                .hbmDevices(0, 99).hbmCapacity(1024).build());
        assertTrue(e.getMessage().contains("HBM shard 1") && e.getMessage().contains("CUDA device 99"), e.getMessage());
        try (MlkvStore s = builder(d, 2, 1024).build()) {
            s.put(1, row(1, 0f));
            float[] out = new float[DIM];
            assertTrue(s.get(1, out));
        }
    }

    /**
     * A checkpoint of a three-shard store restores warm into three shards (each shard's entries back
     * in HBM at open) and cold into two (HBM empty at open; the checkpoint's HBM files say why in the
     * log), every value intact in both, read on the device and on the host.
     */
    @Test
    void aCheckpointRestoresWarmIntoTheSameShardCountAndColdIntoAnother() {
        long seed = seed();
        SplittableRandom r = new SplittableRandom(seed);
        int n = 5000;
        long[] keys = new long[n];
        float[] rows = new float[n * DIM];
        for (int i = 0; i < n; i++) {
            keys[i] = r.nextLong(1, Long.MAX_VALUE);
            System.arraycopy(row(keys[i], r.nextInt(100)), 0, rows, i * DIM, DIM);
        }
        Path cp = dir.resolve("cp");
        long[] entries;
        try (MlkvStore s = builder(dir.resolve("src"), 3, 4096).build()) {
            devicePut(s, keys, rows, false);  // dirty in HBM: the checkpoint writes them below first
            entries = s.hbmShardEntries();
            s.checkpoint(cp);
        }
        assertTrue(Files.isRegularFile(cp.resolve("hbm").resolve("shards.properties")), "the shard count is recorded");
        Path same = dir.resolve("same");
        MlkvStore.restoreCheckpoint(cp, same);
        try (MlkvStore s = builder(same, 3, 4096).build()) {
            assertArrayEquals(entries, s.hbmShardEntries(), "each shard warmed with its own entries, seed " + seed);
            float[] out = new float[rows.length];
            deviceGet(s, keys, out);
            assertArrayEquals(rows, out, "seed " + seed);
        }
        Path other = dir.resolve("other");
        MlkvStore.restoreCheckpoint(cp, other);
        try (MlkvStore s = builder(other, 2, 4096).build()) {
            assertEquals(0, Arrays.stream(s.hbmShardEntries()).sum(), "another shard count starts cold");
            float[] out = new float[rows.length];
            assertEquals(n, s.multiGet(keys, out, new boolean[n]));
            assertArrayEquals(rows, out, "host reads, seed " + seed);
            float[] dev = new float[rows.length];
            deviceGet(s, keys, dev);
            assertArrayEquals(rows, dev, "device reads, seed " + seed);
        }
    }
}
