package io.mlkv.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.Pointer;
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

    public PinnedMemory(long bytes, String purpose) {
        if (bytes <= 0 || bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(purpose + ": pinned size must be in (0, 2^31), was " + bytes);
        }
        Cuda.check(cuMemHostAlloc(pointer, bytes, JCudaDriver.CU_MEMHOSTALLOC_PORTABLE),
                "cuMemHostAlloc (" + bytes + " bytes for " + purpose + ")");
        this.bytes = bytes;
        this.buffer = pointer.getByteBuffer(0, bytes).order(ByteOrder.nativeOrder());
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
