package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.PinnedMemory;
import io.mlkv.gpu.table.GpuHashTable;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import org.agrona.CloseHelper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

final class Staging implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Staging.class);

    private final GpuHashTable table;
    final CUstream stream = new CUstream();
    /** Recorded behind an install queued without waiting; see {@link #awaitInstall}. */
    final CUevent installed = new CUevent();
    /** Whether an install that reads these buffers may still be running on the table's stream. */
    boolean installQueued;
    /** The install of these buffers the table holds back, if any ({@link GpuHashTable#installAbsentDeferred}). */
    GpuHashTable.DeferredInstall deferred;
    long capacity;
    DeviceMemory missedKeys;
    DeviceMemory missedIndex;
    DeviceMemory rowsIn;
    DeviceMemory rowsIndex;
    DeviceMemory flags;
    DeviceMemory probeSeqs;
    PinnedMemory hostKeys;
    PinnedMemory hostIndex;
    PinnedMemory hostRows;
    PinnedMemory hostRowsIndex;
    PinnedMemory hostFlags;
    /** Device lookups' own copies (missed keys, DRAM probe hits, sequence counts, hit count): kept until release. */
    PinnedMemory hostMissKeys;
    PinnedMemory hostHits;
    PinnedMemory hostSeqs;
    PinnedMemory hostHitCount;
    DeviceMemory hitCount;
    /** Rows and outputs of installs from device staging: allocated on first use, as large as the other buffers. */
    DeviceMemory installRows;
    DeviceMemory evictedKeys;
    DeviceMemory evictedRows;
    DeviceMemory evictedDirty;
    PinnedMemory hostEvictedDirty;
    /** Keys of device writes' installs (and of the misses their second pass reports). */
    DeviceMemory installKeys;

    Staging(GpuHashTable table) {
        this.table = table;
        Cuda.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate (store read staging)");
        try {
            Cuda.check(cuEventCreate(installed, CUevent_flags.CU_EVENT_DISABLE_TIMING),
                    "cuEventCreate (store read staging)");
        } catch (RuntimeException e) {
            try {
                Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (store read staging)");
            } catch (RuntimeException second) {
                e.addSuppressed(second);
            }
            throw e;
        }
    }

    /** Waits for the install queued on these buffers, if any, so that they can be written or freed. */
    void awaitInstall() {
        if (deferred != null) {
            table.settle(deferred); // queued (then waited for below) or dropped
            deferred = null;
        }
        if (installQueued) {
            Cuda.check(cuEventSynchronize(installed), "cuEventSynchronize (install queued without waiting)");
            installQueued = false;
        }
    }

    /** Whether the table still holds back an install that reads these buffers. */
    boolean holdsDeferredInstall() {
        return deferred != null && !deferred.settled();
    }

    void ensure(long n) {
        if (n <= capacity) {
            return;
        }
        long cap = Math.max(n, 1024);
        long rowBytes = table.dim() * 4L;
        releaseBuffers();
        missedKeys = new DeviceMemory(cap * 8, "store read: missed keys");
        missedIndex = new DeviceMemory(cap * 4, "store read: missed positions");
        rowsIn = new DeviceMemory(cap * rowBytes, "store read: rows from below");
        rowsIndex = new DeviceMemory(cap * 4, "store read: row positions");
        flags = new DeviceMemory(cap, "store read: per-key flags");
        probeSeqs = new DeviceMemory(cap * 8, "store read: DRAM sequence counts");
        hostKeys = new PinnedMemory(cap * 8, "store read: missed keys");
        hostIndex = new PinnedMemory(cap * 4, "store read: missed positions");
        hostRows = new PinnedMemory(cap * rowBytes, "store read: rows from below");
        hostRowsIndex = new PinnedMemory(cap * 4, "store read: row positions");
        hostFlags = new PinnedMemory(cap, "store read: per-key flags");
        hostMissKeys = new PinnedMemory(cap * 8, "store read: missed keys");
        hostHits = new PinnedMemory(cap, "store read: DRAM probe hits");
        hostSeqs = new PinnedMemory(cap * 8, "store read: DRAM sequence counts");
        hostHitCount = new PinnedMemory(8, "store read: DRAM probe hit count");
        hitCount = new DeviceMemory(8, "store read: DRAM probe hit count");
        capacity = cap;
    }

    void ensureInstall() {
        if (evictedKeys == null) {
            installRows = new DeviceMemory(capacity * table.dim() * 4L, "install: rows");
            evictedKeys = new DeviceMemory(capacity * 8, "install: evicted keys");
            evictedRows = new DeviceMemory(capacity * table.dim() * 4L, "install: evicted rows");
            evictedDirty = new DeviceMemory(capacity, "install: evicted dirty marks");
            hostEvictedDirty = new PinnedMemory(capacity, "install: evicted dirty marks");
            installKeys = new DeviceMemory(capacity * 8, "install: keys");
        }
    }

    private void releaseBuffers() {
        try {
            // In reverse order of allocation; CloseHelper skips the nulls and closes the rest if one fails.
            CloseHelper.closeAll(installKeys, hostEvictedDirty, evictedDirty, evictedRows, evictedKeys, installRows, hitCount, hostHitCount, hostSeqs, hostHits,
                    hostMissKeys, hostFlags, hostRowsIndex, hostRows, hostIndex, hostKeys, probeSeqs, flags, rowsIndex,
                    rowsIn, missedIndex, missedKeys);
        } catch (RuntimeException e) {
            // Growing the buffers reallocates them; a failed free must not fail the read that grows them.
            LOG.warn("releasing read staging: {}", e.toString());
        }
        installRows = null;
        evictedKeys = null;
        evictedRows = null;
        evictedDirty = null;
        hostEvictedDirty = null;
        installKeys = null;
        capacity = 0;
    }

    @Override
    public void close() {
        try {
            awaitInstall();
        } finally {
            releaseBuffers();
            CloseHelper.closeAll(() -> Cuda.check(cuEventDestroy(installed), "cuEventDestroy (store read staging)"),
                    () -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (store read staging)"));
        }
    }
}
