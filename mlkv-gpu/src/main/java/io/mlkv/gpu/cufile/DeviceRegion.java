package io.mlkv.gpu.cufile;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.PinnedMemory;
import java.nio.ByteBuffer;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/**
 * A region of device memory. Copies go through pinned bounce buffers, so they are DMA transfers.
 * The caller keeps the memory alive and the CUDA context current on the calling threads.
 */
public final class DeviceRegion implements Region {
    private final CUdeviceptr base;
    private final long bytes;

    public DeviceRegion(CUdeviceptr base, long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("bytes must not be negative, was " + bytes);
        }
        this.base = base;
        this.bytes = bytes;
    }

    public CUdeviceptr base() {
        return base;
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public void copyOut(long offset, ByteBuffer dst, int len) {
        Cuda.check(cuMemcpyDtoH(Pointer.to(dst), base.withByteOffset(offset), len),
                "cuMemcpyDtoH (" + len + " bytes at " + offset + ")");
    }

    @Override
    public void copyIn(ByteBuffer src, long offset, int len) {
        Cuda.check(cuMemcpyHtoD(base.withByteOffset(offset), Pointer.to(src), len),
                "cuMemcpyHtoD (" + len + " bytes at " + offset + ")");
    }

    @Override
    public Bounce bounce(int len) {
        PinnedMemory pinned = new PinnedMemory(len, "file I/O bounce buffer");
        return new Bounce() {
            @Override
            public ByteBuffer buffer() {
                return pinned.buffer();
            }

            @Override
            public void close() {
                pinned.close();
            }
        };
    }
}
