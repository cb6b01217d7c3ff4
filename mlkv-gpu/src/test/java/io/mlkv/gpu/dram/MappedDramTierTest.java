package io.mlkv.gpu.dram;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.dram.DramTier;
import java.util.Arrays;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The GPU reads the DRAM tier in place: present keys' rows, absent keys untouched. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class MappedDramTierTest {
    private static final int DIM = 12;

    @Test
    void theGpuFindsWhatTheTierHoldsAndLeavesAbsentKeysUntouched() {
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(DIM, 256 * DramTier.bucketBytes(DIM), "lru")) {
            dev.makeCurrent();
            int n = 3000;
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 1_000_003L * i - 77;
                float[] row = new float[DIM];
                Arrays.fill(row, i + 0.5f);
                tier.put(keys[i], row, 0, false, -1, tier.tick(), (k, v, d) -> { });
            }
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                index[i] = n - 1 - i; // rows land in reverse order
            }
            try (MappedDramTier mapped = MappedDramTier.map(tier);
                 DeviceMemory dKeys = new DeviceMemory(n * 8L, "keys");
                 DeviceMemory dIndex = new DeviceMemory(n * 4L, "index");
                 DeviceMemory scratch = new DeviceMemory((long) n * DIM * 4, "scratch");
                 DeviceMemory out = new DeviceMemory((long) n * DIM * 4, "out");
                 DeviceMemory found = new DeviceMemory(n, "found");
                 DeviceMemory hit = new DeviceMemory(n, "hit")) {
                assertTrue(mapped.pinnedBytes() >= 256L * DramTier.bucketBytes(DIM) / 2, "pinned " + mapped.pinnedBytes());
                cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L);
                cuMemcpyHtoD(dIndex.pointer(), Pointer.to(index), n * 4L);
                float[] sentinel = new float[n * DIM];
                Arrays.fill(sentinel, -9f);
                cuMemcpyHtoD(out.pointer(), Pointer.to(sentinel), sentinel.length * 4L);
                cuMemsetD8(found.pointer(), (byte) 0, n);
                jcuda.driver.CUstream stream = new jcuda.driver.CUstream();
                jcuda.driver.JCudaDriver.cuStreamCreate(stream, 0);
                mapped.probe(dKeys.pointer(), dIndex.pointer(), n, scratch.pointer(), out.pointer(), found.pointer(),
                        hit.pointer(), stream);
                byte[] held = new byte[n];
                try (DeviceMemory dHeld = new DeviceMemory(n, "held")) {
                    mapped.contains(dKeys.pointer(), n, dHeld.pointer(), stream);
                    cuMemcpyDtoH(Pointer.to(held), dHeld.pointer(), n);
                }
                jcuda.driver.JCudaDriver.cuStreamDestroy(stream);
                for (int i = 0; i < n; i++) {
                    assertEquals(tier.contains(keys[i]), held[i] == 1, "contains() of key " + keys[i]);
                }
                float[] rows = new float[n * DIM];
                byte[] hits = new byte[n];
                byte[] founds = new byte[n];
                cuMemcpyDtoH(Pointer.to(rows), out.pointer(), rows.length * 4L);
                cuMemcpyDtoH(Pointer.to(hits), hit.pointer(), n);
                cuMemcpyDtoH(Pointer.to(founds), found.pointer(), n);
                int present = 0;
                for (int i = 0; i < n; i++) {
                    boolean inTier = tier.contains(keys[i]);
                    present += inTier ? 1 : 0;
                    assertEquals(inTier, hits[i] == 1, "hit flag of key " + keys[i]);
                    assertEquals(inTier, founds[index[i]] == 1, "found flag at position " + index[i]);
                    float expected = inTier ? i + 0.5f : -9f;
                    for (int d = 0; d < DIM; d++) {
                        assertEquals(expected, rows[index[i] * DIM + d], "row of key " + keys[i]);
                    }
                }
                assertTrue(present > n / 2, "most keys fit in the tier: " + present);
            }
        }
    }
}
