package io.mlkv.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;

/** What packed launches write for a device pointer; needs no GPU. */
class KernelsTest {

    @Test
    void aDevicePointersAddressIsItsBasePlusEveryOffsetTakenFromIt() {
        CUdeviceptr base = new CUdeviceptr();
        assertEquals(0, Kernels.address(base));
        CUdeviceptr at24 = base.withByteOffset(24);
        assertEquals(24, Kernels.address(at24));
        assertEquals(24 + 8, Kernels.address(at24.withByteOffset(8)));
        assertEquals(0, Kernels.address(base), "taking an offset leaves the base alone");
    }
}
