package io.mlkv.gpu.dram;

import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.storage.dram.DramTier;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A copy of a mapped DRAM tier's keys in device memory, so that a probe of a key HBM lacks reads
 * the bucket's keys from HBM and only the row over PCIe: two PCIe requests a key at dim 64 instead
 * of four, which {@code tools/pcie_row_reads} measured at 199M against 118M rows/s on an H200
 * (docs/BENCHMARKS.md, run 119).
 *
 * <p>The copy holds every slot's key for as long as the tier's {@link DramTier#keyChanges()} stays
 * what it was when the copy was taken; it is taken while no bucket change is under way
 * ({@link DramTier#changesIfQuiet()}), after reading that count, and kept only if the count did
 * not move meanwhile. It is taken again only once the keys, after changing, stayed the same from
 * one look to the next, and the probes since the change have read as many key bytes from host
 * memory as the copy moves ({@link #worthCopying}), so a workload that changes DRAM's keys at every
 * call never pays for a copy it could not use, and one that changes them now and then pays for a
 * copy at most what its probes spent on keys meanwhile. A probe that uses the copy runs where {@link MappedDramTier.Probe#UNCHECKED}
 * may, and its caller checks {@link DramTier#changes()} after it as for that probe (a key change
 * is a change), so a copy gone stale during a probe, or overwritten by a new copy, is never used.
 *
 * <p>Thread-safe. Device memory of 8 bytes a DRAM slot, allocated at the first copy; if that
 * fails, or would leave less than {@link #headroom} of the device free, probes read the keys from
 * host memory and it says so once.
 */
final class DramKeysOnDevice implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DramKeysOnDevice.class);

    private final DramTier tier;
    private final Pointer hostKeys;
    private final long bytes;
    private volatile DeviceMemory copy;
    private boolean unavailable;
    private boolean closed;
    /** {@link DramTier#keyChanges()} that the copy holds the keys of; -1 before the first copy. */
    private volatile long copiedAt = -1;
    /** {@link DramTier#keyChanges()} at the last look that found the copy stale. */
    private long seenAt = -1;
    /** Keys probed through host memory since the keys last changed ({@link #seenAt}). */
    private long probedSinceChange;
    /** Copies taken so far. */
    private long copies;

    /**
     * @param tier     the tier whose keys are copied
     * @param hostKeys its keys array, registered (pinned) for the device
     * @param bytes    the keys array's size
     */
    DramKeysOnDevice(DramTier tier, Pointer hostKeys, long bytes) {
        this.tier = tier;
        this.hostKeys = hostKeys;
        this.bytes = bytes;
    }

    /**
     * The copy, if it holds every slot's key now, else null. It is taken first where the keys
     * have stayed the same since the last look, no change is under way, and the probes since the
     * keys last changed read at least {@link #worthCopying} keys from host memory (counting the
     * {@code probing} keys of the probe asking now if it goes without): a copy then costs at most
     * about what those probes spent on keys, however often the keys change. The device the copy
     * lives on must be current; the copy is queued on {@code stream} and waited for.
     */
    CUdeviceptr current(long probing, CUstream stream) {
        long keys = tier.keyChanges();
        CUdeviceptr c = currentCopy(keys);
        if (c != null) {
            return c;
        }
        synchronized (this) {
            if (closed || unavailable) {
                return null;
            }
            c = currentCopy(keys);
            if (c != null) {
                return c;
            }
            if (keys != seenAt) {
                seenAt = keys; // changed since the last look: copy once they hold still
                probedSinceChange = probing;
                return null;
            }
            if (probedSinceChange < worthCopying() || tier.changesIfQuiet() < 0 || !allocated()) {
                probedSinceChange += probing;
                return null;
            }
            Cuda.check(cuMemcpyHtoDAsync(copy.pointer(), hostKeys, bytes, stream), "cuMemcpyHtoDAsync (DRAM keys to the device, "
                    + bytes + " bytes)");
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after copying the DRAM keys to the device");
            if (tier.keyChanges() != keys) {
                return null;
            }
            copiedAt = keys;
            copies++;
            if (copies == 1) {
                LOG.info("DRAM tier keys copied to the device ({} bytes): unchecked probes read them there while they hold", bytes);
            } else {
                LOG.debug("DRAM tier keys copied to the device again (copy {}, after {} key changes)", copies, keys);
            }
            return copy.pointer();
        }
    }

    /**
     * The copy if it holds every slot's key now, else null; never takes one. For callers that
     * hold off every CPU writer of the tier while they use it (the tier's keys cannot change then)
     * and run while changes are under way, when no copy could be taken.
     */
    CUdeviceptr currentWithoutCopying() {
        return currentCopy(tier.keyChanges());
    }

    private CUdeviceptr currentCopy(long keys) {
        DeviceMemory c = copy;
        return keys == copiedAt && c != null ? c.pointer() : null;
    }

    /**
     * Allocates the copy's memory on first use; false (once logged) where the device has no room,
     * or would keep less than {@link #headroom} free after it: the copy is an optimisation, and
     * must not take memory that the store's staging buffers, grown with the batch, will need.
     */
    private boolean allocated() {
        if (copy != null) {
            return true;
        }
        try {
            long[] free = new long[1];
            long[] total = new long[1];
            Cuda.check(cuMemGetInfo(free, total), "cuMemGetInfo (before copying the DRAM keys to the device)");
            if (free[0] - bytes < headroom(total[0])) {
                unavailable = true;
                LOG.info("a copy of the DRAM tier's keys ({} bytes) would leave less than {} bytes of device memory free"
                        + " ({} free of {}); probes read the keys from host memory", bytes, headroom(total[0]), free[0], total[0]);
                return false;
            }
            copy = new DeviceMemory(bytes, "DRAM keys on the device");
            return true;
        } catch (RuntimeException e) {
            unavailable = true;
            LOG.warn("no device memory for a copy of the DRAM tier's keys ({} bytes: {}); probes read them from host memory",
                    bytes, e.getMessage());
            return false;
        }
    }

    /**
     * Keys probed through host memory, since the keys last changed, before a copy is taken: a
     * sixteenth of the slots. Such a probe reads its bucket's 16 keys (128 bytes) over PCIe, so
     * these probes have moved as many bytes as the copy (8 bytes a slot, in bulk) will; where the
     * keys change more often than that, no copy is taken, and a large tier whose keys change now
     * and then is not copied again for a few small probes.
     */
    private long worthCopying() {
        return bytes / 8 / 16;
    }

    /** Device memory left free after the copy: 1 GiB or a twentieth of the device, whichever is more. */
    private static long headroom(long deviceBytes) {
        return Math.max(1L << 30, deviceBytes / 20);
    }

    /** Frees the copy. Idempotent; callers must have stopped probing. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        copiedAt = -1;
        DeviceMemory c = copy;
        copy = null;
        if (c != null) {
            c.close();
        }
    }
}
