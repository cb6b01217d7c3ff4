package io.mlkv.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;

import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.driver.CUdeviceptr;

/** One device allocation, freed by {@link #close()}. The owning device's context must be current. */
public final class DeviceMemory implements AutoCloseable {
    private final CUdeviceptr pointer = new CUdeviceptr();
    private final long bytes;
    private final AtomicBoolean closed = new AtomicBoolean();

    public DeviceMemory(long bytes, String purpose) {
        if (bytes <= 0) {
            throw new IllegalArgumentException(purpose + ": size must be positive, was " + bytes);
        }
        Cuda.check(cuMemAlloc(pointer, bytes), "cuMemAlloc (" + bytes + " bytes for " + purpose + ")");
        this.bytes = bytes;
    }

    public CUdeviceptr pointer() {
        return pointer;
    }

    /** The address {@code offset} bytes in. */
    public CUdeviceptr at(long offset) {
        return pointer.withByteOffset(offset);
    }

    public long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Cuda.check(cuMemFree(pointer), "cuMemFree (" + bytes + " bytes)");
        }
    }
}
