package io.mlkv.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;
import static jcuda.driver.JCudaDriver.cuMemHostGetDevicePointer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/**
 * Page-locked host memory, so copies to and from the device are DMA at full speed. Freed by
 * {@link #close()}; the owning device's context must be current.
 */
public final class PinnedMemory implements AutoCloseable {
    private final Pointer pointer = new Pointer();
    private final long bytes;
    private final ByteBuffer buffer;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final CUdeviceptr devicePointer;

    public PinnedMemory(long bytes, String purpose) {
        this(bytes, purpose, false);
    }

    private PinnedMemory(long bytes, String purpose, boolean mapped) {
        if (bytes <= 0 || bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(purpose + ": pinned size must be in (0, 2^31), was " + bytes);
        }
        int flags = JCudaDriver.CU_MEMHOSTALLOC_PORTABLE | (mapped ? JCudaDriver.CU_MEMHOSTALLOC_DEVICEMAP : 0);
        Cuda.check(cuMemHostAlloc(pointer, bytes, flags), "cuMemHostAlloc (" + bytes + " bytes for " + purpose + ")");
        this.bytes = bytes;
        this.buffer = pointer.getByteBuffer(0, bytes).order(ByteOrder.nativeOrder());
        if (mapped) {
            devicePointer = new CUdeviceptr();
            try {
                Cuda.check(cuMemHostGetDevicePointer(devicePointer, pointer, 0),
                        "cuMemHostGetDevicePointer (" + purpose + ")");
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        } else {
            devicePointer = null;
        }
    }

    /**
     * Pinned memory that kernels can also write through {@link #devicePointer()} (over PCIe, so
     * for a few words such as a flag the host reads after a synchronize, never for bulk data).
     */
    public static PinnedMemory mapped(long bytes, String purpose) {
        return new PinnedMemory(bytes, purpose, true);
    }

    /** The device's address of this memory; only for {@link #mapped} memory. */
    public CUdeviceptr devicePointer() {
        if (devicePointer == null) {
            throw new IllegalStateException("pinned memory not allocated with PinnedMemory.mapped has no device pointer");
        }
        return devicePointer;
    }

    public Pointer pointer() {
        return pointer;
    }

    /** A native-order view of the whole block. */
    public ByteBuffer buffer() {
        return buffer.duplicate().order(ByteOrder.nativeOrder());
    }

    public long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Cuda.check(cuMemFreeHost(pointer), "cuMemFreeHost (" + bytes + " bytes)");
        }
    }
}
