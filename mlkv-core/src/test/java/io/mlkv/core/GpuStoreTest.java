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
            Arrays.fill(out, -1);
            assertEquals(keys.length, s.multiGet(keys, out, found));
            assertArrayEquals(values, out);
            assertEquals(keys.length, s.stats().tier("HBM").hits());
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
     * only in RocksDB, and absent; rows of absent keys are left untouched.
     */
    @Test
    void deviceMultiGetAgreesWithTheHostPathAcrossEveryTier() {
        try (MlkvStore s = open(1 << 12)) {
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
    }
}
