package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import org.agrona.CloseHelper;

/**
 * Installs grouped by bucket ({@code mlkv_install_grouped} and the passes before it in the kernel
 * source): for an install that brings many keys to each bucket, such as half a million misses into
 * a full table of a million entries, one warp per bucket installs that bucket's newcomers in turn,
 * instead of every newcomer queueing at its bucket's lock. This class orders a batch by bucket
 * (count, scan, scatter) into scratch memory it owns, which grows with the largest batch grouped.
 *
 * <p>Lock rule: the table's lock guards every method; the table's device is current; everything
 * is queued on the table's stream, which serialises the table's calls, so the install's warps are
 * their buckets' only writers.
 */
final class InstallGroups implements AutoCloseable {
    private static final int BLOCK = 256;
    private static final int SCAN_THREADS = 1024;
    private static final long MIN_CAPACITY = 4096;

    private final Kernels kernels;
    private final CUstream stream;
    private final long buckets;
    /** Per bucket: its newcomers counted, then (scanned in place) its first place in {@link #order}. */
    private final DeviceMemory starts;
    /** The scan's shard starts of one shard: 0, then the number of keys grouped. */
    private final DeviceMemory total;
    private DeviceMemory rank;
    private DeviceMemory order;
    private long capacity;

    InstallGroups(long buckets, Kernels kernels, CUstream stream) {
        this.kernels = kernels;
        this.stream = stream;
        this.buckets = buckets;
        this.starts = new DeviceMemory(buckets * 4, "install groups: bucket starts");
        try {
            this.total = new DeviceMemory(8, "install groups: total");
        } catch (RuntimeException e) {
            starts.close();
            throw e;
        }
    }

    /**
     * Queues the grouping of {@code n} device keys by bucket; then {@link #order()},
     * {@link #starts()} and {@link #total()} hold it for {@code mlkv_install_grouped}.
     */
    void group(CUdeviceptr keysIn, long n) {
        ensure(n);
        Cuda.check(cuMemsetD8Async(starts.pointer(), (byte) 0, buckets * 4, stream), "cuMemsetD8Async (install group counts)");
        kernels.launch("mlkv_group_count", n, BLOCK, stream, keysIn, n, buckets - 1, starts.pointer(), rank.pointer());
        // One shard of `buckets` chunks: each count becomes its bucket's first place, total[1] the number grouped.
        kernels.launch("mlkv_shard_scan", SCAN_THREADS, SCAN_THREADS, stream, starts.pointer(), buckets, buckets, 1,
                total.pointer());
        kernels.launch("mlkv_group_scatter", n, BLOCK, stream, keysIn, n, buckets - 1, starts.pointer(), rank.pointer(),
                order.pointer());
    }

    CUdeviceptr order() {
        return order.pointer();
    }

    CUdeviceptr starts() {
        return starts.pointer();
    }

    /** The number of keys grouped (on the device). */
    CUdeviceptr total() {
        return total.at(4);
    }

    private void ensure(long n) {
        if (n <= capacity) {
            return;
        }
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("an install grouped by bucket takes at most " + Integer.MAX_VALUE
                    + " keys, not " + n);
        }
        // An earlier grouped install may still read the old buffers.
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize before growing install groups");
        CloseHelper.closeAll(order, rank);
        order = null;
        rank = null;
        capacity = 0;
        // Half as much again: the misses of equal batches differ a little from call to call, and
        // each new largest would otherwise wait for the stream and reallocate.
        long cap = Math.min(Integer.MAX_VALUE, Math.max(MIN_CAPACITY, n + n / 2));
        rank = new DeviceMemory(cap * 4, "install groups: rank in bucket");
        order = new DeviceMemory(cap * 4, "install groups: batch order");
        capacity = cap;
    }

    @Override
    public void close() {
        CloseHelper.closeAll(order, rank, total, starts);
    }
}
