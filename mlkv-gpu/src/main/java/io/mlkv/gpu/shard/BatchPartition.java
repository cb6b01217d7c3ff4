package io.mlkv.gpu.shard;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cuda.PinnedMemory;
import java.nio.IntBuffer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * Buffers and kernels that split a batch of keys on one device by owner shard
 * ({@link ShardedGpuTable#ownerOf}), stably: the keys of one shard keep their batch order, each with
 * its batch position, and the rows of a writing call follow their keys. What the shards give back
 * in partition order (rows, found flags) is put back in batch order by {@link #scatterRows} and
 * {@link #restoreFlags}. Holds up to {@link #capacity()} keys; one call at a time. Its stream is a
 * blocking one, so the partition runs after what the caller queued on the legacy default stream.
 * Create and close it with its device's context current.
 */
public final class BatchPartition implements AutoCloseable {
    /** Keys per block of the partition kernels (src-native: SHARD_CHUNK), and its threads (SHARD_BLOCK). */
    static final int CHUNK = 2048;
    static final int BLOCK = 256;

    private final Kernels kernels;
    private final int shards;
    private final int dim;
    private final int capacity;
    private final CUstream stream = new CUstream();
    private final DeviceMemory blockCounts;
    private final DeviceMemory shardStart;
    private final PinnedMemory hostStartPinned;
    private final int[] hostStart;
    private final DeviceMemory keys;
    private final DeviceMemory positions;
    private final DeviceMemory rows;
    private final DeviceMemory found;
    private final OwnedResources resources = new OwnedResources();

    /**
     * @param kernels  the device's kernels (not owned)
     * @param shards   how many owners keys are split over (at most {@link ShardedGpuTable#MAX_SHARDS})
     * @param capacity the most keys of one call
     */
    public BatchPartition(Kernels kernels, int shards, int dim, int capacity) {
        if (shards < 1 || shards > ShardedGpuTable.MAX_SHARDS) {
            throw new IllegalArgumentException("shards must be 1 to " + ShardedGpuTable.MAX_SHARDS + ", was " + shards);
        }
        this.kernels = kernels;
        this.shards = shards;
        this.dim = dim;
        this.capacity = capacity;
        this.hostStart = new int[shards + 1];
        try {
            Cuda.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_DEFAULT), "cuStreamCreate (batch partition)");
            resources.add(() -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (batch partition)"));
            long chunks = (capacity + CHUNK - 1) / CHUNK;
            blockCounts = resources.add(new DeviceMemory(chunks * shards * Integer.BYTES, "shard counts"));
            shardStart = resources.add(new DeviceMemory((shards + 1L) * Integer.BYTES, "shard starts"));
            hostStartPinned = resources.add(new PinnedMemory((shards + 1L) * Integer.BYTES, "shard starts"));
            keys = resources.add(new DeviceMemory((long) capacity * Long.BYTES, "partitioned keys"));
            positions = resources.add(new DeviceMemory((long) capacity * Integer.BYTES, "partition positions"));
            rows = resources.add(new DeviceMemory((long) capacity * dim * Float.BYTES, "partitioned rows"));
            found = resources.add(new DeviceMemory(capacity, "partitioned found flags"));
        } catch (RuntimeException e) {
            try {
                resources.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** The most keys of one call. */
    public int capacity() {
        return capacity;
    }

    /**
     * Splits {@code n} keys (and their rows, when {@code rowsIn} is not null) by owner into
     * {@link #keys}/{@link #rows}, with each one's batch position in {@link #positions}; returns where
     * each shard's part starts, and {@code n} last (valid until the next call).
     */
    public int[] partition(CUdeviceptr keysIn, CUdeviceptr rowsIn, int n) {
        if (n > capacity) {
            throw new IllegalArgumentException("partition of " + n + " keys; this one holds " + capacity);
        }
        long blocks = (n + CHUNK - 1) / CHUNK;
        kernels.launch("mlkv_shard_count", blocks * BLOCK, BLOCK, stream, keysIn, (long) n, shards, blockCounts.pointer());
        kernels.launch("mlkv_shard_scan", 1024, 1024, stream, blockCounts.pointer(), blocks * shards, blocks, shards,
                shardStart.pointer());
        kernels.launch("mlkv_shard_scatter", blocks * BLOCK, BLOCK, stream, keysIn, (long) n, shards,
                blockCounts.pointer(), keys.pointer(), positions.pointer());
        if (rowsIn != null) {
            gatherRows(rowsIn, n);
        }
        Cuda.check(cuMemcpyDtoHAsync(hostStartPinned.pointer(), shardStart.pointer(),
                hostStart.length * (long) Integer.BYTES, stream), "cuMemcpyDtoHAsync (shard starts)");
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (partition of " + n + " keys)");
        IntBuffer starts = hostStartPinned.buffer().asIntBuffer();
        starts.get(0, hostStart);
        if (hostStart[shards] != n) {
            throw new IllegalStateException("partition of " + n + " keys placed " + hostStart[shards]);
        }
        return hostStart;
    }

    /**
     * Gathers row {@code positions[j]} of {@code src} into row {@code j} of {@link #rows}, for
     * {@code j < n}: the rows of a writing call, or the caller's output rows of a read, so that the
     * rows a read does not fill go back unchanged. Queued on the partition's stream.
     */
    public void gatherRows(CUdeviceptr src, int n) {
        kernels.launch("mlkv_gather_rows", (long) n * dim, BLOCK, stream, src, positions.pointer(), (long) n, dim,
                rows.pointer());
    }

    /** Puts {@link #rows} back in batch order into {@code dst} (row {@code j} to row {@code positions[j]}), and waits. */
    public void scatterRows(int n, CUdeviceptr dst) {
        kernels.launch("mlkv_scatter_rows", (long) n * dim, BLOCK, stream, rows.pointer(), positions.pointer(), (long) n,
                dim, dst);
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (reorder of " + n + " rows)");
    }

    /** Puts {@link #found}, in partition order, back in batch order into {@code dst}, and waits. */
    public void restoreFlags(int n, CUdeviceptr dst) {
        kernels.launch("mlkv_shard_unpermute_flags", n, BLOCK, stream, found.pointer(), positions.pointer(), (long) n, dst);
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (reorder of " + n + " flags)");
    }

    /** Key {@code first} on of the partitioned keys. */
    public CUdeviceptr keys(int first) {
        return keys.at((long) first * Long.BYTES);
    }

    /** The batch position of partitioned key {@code first} on. */
    public CUdeviceptr positions(int first) {
        return positions.at((long) first * Integer.BYTES);
    }

    /** Row {@code first} on of the partitioned rows. */
    public CUdeviceptr rows(int first) {
        return rows.at((long) first * dim * Float.BYTES);
    }

    /** Found flag {@code first} on, in partition order. */
    public CUdeviceptr found(int first) {
        return found.at(first);
    }

    @Override
    public void close() {
        resources.close();
    }
}
