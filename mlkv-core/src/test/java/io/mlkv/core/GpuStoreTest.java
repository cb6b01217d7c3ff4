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
