package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device-pointer API of a store without an HBM tier says why it cannot be used. */
class DeviceApiWithoutGpuTest {
    @TempDir
    Path dir;

    @Test
    void deviceReadsNeedTheHbmTierAndSaySo() {
        try (MlkvStore s = MlkvStore.builder().dim(4).directory(dir).dramCapacityBytes(8 * DramTier.bucketBytes(4))
                .gpu(GpuMode.OFF).build()) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> s.multiGet(new CUdeviceptr(), 1, new CUdeviceptr(), new CUdeviceptr()));
            assertTrue(e.getMessage().contains("HBM tier"), e.getMessage());
            assertThrows(IllegalStateException.class, s::makeGpuCurrent);
            assertThrows(IllegalArgumentException.class, () -> s.multiGet(null, 1, new CUdeviceptr(), new CUdeviceptr()));
            e = assertThrows(IllegalStateException.class, () -> s.accumulate(new CUdeviceptr(), 1, new CUdeviceptr()));
            assertTrue(e.getMessage().contains("HBM tier"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> s.accumulate(new CUdeviceptr(), -1, new CUdeviceptr()));
            assertThrows(IllegalArgumentException.class, () -> s.accumulate(null, 1, new CUdeviceptr()));
            e = assertThrows(IllegalStateException.class, () -> s.multiPut(new CUdeviceptr(), 1, new CUdeviceptr()));
            assertTrue(e.getMessage().contains("multiPut") && e.getMessage().contains("HBM tier"), e.getMessage());
        }
    }
}
