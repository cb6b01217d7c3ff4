package io.mlkv.gpu.shard;

import static jcuda.driver.JCudaDriver.cuMemcpyPeerAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.OwnedResources;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * Buffers on a shard's device for the part of a batch that another device sends it (keys, batch
 * positions, rows, found flags, up to {@link #capacity()} keys), and a stream of their own for the
 * peer copies there and back ({@code cuMemcpyPeerAsync}, over NVLink where present). One part at a time.
 */
public final class PeerBuffers implements AutoCloseable {
    private final CudaDevice device;
    private final int capacity;
    private final CUstream stream = new CUstream();
    private final DeviceMemory keys;
    private final DeviceMemory positions;
    private final DeviceMemory rows;
    private final DeviceMemory found;
    private final OwnedResources resources = new OwnedResources();

    /** Allocates on {@code device} (made current). */
    public PeerBuffers(CudaDevice device, int capacity, int dim) {
        this.device = device;
        this.capacity = capacity;
        device.makeCurrent();
        try {
            Cuda.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate (shard part)");
            resources.add(() -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (shard part)"));
            keys = resources.add(new DeviceMemory((long) capacity * Long.BYTES, "shard part keys"));
            positions = resources.add(new DeviceMemory((long) capacity * Integer.BYTES, "shard part positions"));
            rows = resources.add(new DeviceMemory((long) capacity * dim * Float.BYTES, "shard part rows"));
            found = resources.add(new DeviceMemory(capacity, "shard part found flags"));
        } catch (RuntimeException e) {
            try {
                resources.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    public CudaDevice device() {
        return device;
    }

    /** The most keys of one part. */
    public int capacity() {
        return capacity;
    }

    public CUdeviceptr keys() {
        return keys.pointer();
    }

    public CUdeviceptr positions() {
        return positions.pointer();
    }

    public CUdeviceptr rows() {
        return rows.pointer();
    }

    public CUdeviceptr found() {
        return found.pointer();
    }

    /** Queues a peer copy of {@code bytes} on this part's stream; {@code what} names it in an error. */
    public void copy(CUdeviceptr dst, CudaDevice dstDevice, CUdeviceptr src, CudaDevice srcDevice, long bytes, String what) {
        Cuda.check(cuMemcpyPeerAsync(dst, dstDevice.context(), src, srcDevice.context(), bytes, stream),
                "cuMemcpyPeerAsync (" + bytes + " bytes of " + what + ", device " + srcDevice.ordinal() + " to "
                        + dstDevice.ordinal() + ")");
    }

    /** Waits for the copies queued so far; {@code direction} ("to", "from") names them in an error. */
    public void sync(String direction) {
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (shard part copies " + direction + " device "
                + device.ordinal() + ")");
    }

    @Override
    public void close() {
        device.makeCurrent();
        resources.close();
    }
}
