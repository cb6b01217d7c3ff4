package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemsetD8Async;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cuda.PinnedMemory;
import io.mlkv.storage.ReservedKeys;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * The scratch set with which the table's kernels find repeated keys in a chunk of a batch
 * ({@code mlkv_dedup*}, {@code DedupArgs} in the kernel source): an open-addressing set of twice
 * the chunk's size, each key's winning (last) position, a per-position slot, a flag raised when a
 * key repeats, and a mapped host flag that an upsert raises when it met a repeat.
 *
 * <p>Lock rule: the table's lock guards every method; the table's device is current; everything
 * is queued on the table's stream. Invariant: between uses the set is empty (keys
 * {@link ReservedKeys#EMPTY}, positions -1, marks 0): every {@link #mark} is followed by
 * {@link #reset} on the same keys before the next.
 */
final class RepeatedKeys implements AutoCloseable {
    private static final int BLOCK = 256;
    /** Keys per chunk of a device batch, at least (a host-array chunk may be larger). */
    private static final int DEVICE_CHUNK = 1 << 20;

    private final Kernels kernels;
    private final CUstream stream;
    private final OwnedResources parts = new OwnedResources();
    private final int chunk;
    private final long mask;
    private final DeviceMemory setKeys;
    private final DeviceMemory win;
    private final DeviceMemory slot;
    private final DeviceMemory flag;
    private final DeviceMemory repeated;
    /** Raised (mapped, host-visible) by an upsert that met a key twice. */
    private final PinnedMemory seen;
    private long epoch;

    RepeatedKeys(int stagingKeys, Kernels kernels, CUstream stream) {
        this.kernels = kernels;
        this.stream = stream;
        this.chunk = Math.max(stagingKeys, DEVICE_CHUNK);
        long slots = Long.highestOneBit(chunk * 2L - 1) << 1;
        this.mask = slots - 1;
        try {
            this.setKeys = parts.add(new DeviceMemory(slots * 8, "dedup scratch keys"));
            this.win = parts.add(new DeviceMemory(slots * 4, "dedup scratch positions"));
            this.slot = parts.add(new DeviceMemory(chunk * 4L, "dedup scratch slots"));
            this.flag = parts.add(new DeviceMemory(8, "dedup flag"));
            this.repeated = parts.add(new DeviceMemory(slots, "dedup marks"));
            this.seen = parts.add(PinnedMemory.mapped(8, "repeated-key flag"));
            kernels.launch("mlkv_fill_u64", Math.min(slots, 1L << 20), BLOCK, stream, setKeys.pointer(), ReservedKeys.EMPTY,
                    slots);
            Cuda.check(cuMemsetD8Async(win.pointer(), (byte) 0xFF, slots * 4, stream), "cuMemsetD8Async (dedup scratch)");
            Cuda.check(cuMemsetD8Async(repeated.pointer(), (byte) 0, slots, stream), "cuMemsetD8Async (dedup marks)");
            Cuda.check(cuMemsetD8Async(flag.pointer(), (byte) 0, 8, stream), "cuMemsetD8Async (dedup flag)");
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The most keys one {@link #mark} takes. */
    int chunk() {
        return chunk;
    }

    /** Fills the set with {@code n} keys and marks the last occurrence of each ({@code mlkv_dedup}, {@code _win}). */
    void mark(CUdeviceptr keysIn, long n) {
        mark(keysIn, null, n);
    }

    /** {@link #mark} where the last occurrence is the one with the highest of {@code positions} (null: index). */
    private void mark(CUdeviceptr keysIn, CUdeviceptr positions, long n) {
        epoch++;
        kernels.launchPacked("mlkv_dedup", TableKernelArgs.DEDUP, n, BLOCK, stream, args(keysIn, n, positions));
        kernels.launchPacked("mlkv_dedup_win", TableKernelArgs.DEDUP, n, BLOCK, stream, args(keysIn, n, positions));
    }

    /**
     * Empties the set after a {@link #mark} of the same keys, with streaming writes: cheaper than
     * each winner clearing its own entry with scattered ones.
     */
    void reset(CUdeviceptr keysIn, long n) {
        kernels.launchPacked("mlkv_dedup_reset", TableKernelArgs.DEDUP, Math.min(mask + 1, 1L << 20), BLOCK, stream,
                args(keysIn, n, null));
    }

    /**
     * After an upsert that reported a repeated key: marks the chunk, writes the row of each
     * repeated key's last occurrence into the table again, and empties the set (queued; the
     * caller waits).
     */
    void rewrite(CUdeviceptr tableKeys, CUdeviceptr digests, CUdeviceptr values, long bucketMask, int dim,
            CUdeviceptr keysIn, CUdeviceptr valuesIn, long n) {
        mark(keysIn, n);
        kernels.launchPacked("mlkv_dedup_rewrite", TableKernelArgs.REWRITE, n * GpuHashTable.TILE, BLOCK, stream,
                tableKeys, digests, values, bucketMask, dim, keysIn, valuesIn, n, slot.pointer(), win.pointer(),
                repeated.pointer(), flag.pointer(), epoch);
        reset(keysIn, n);
    }

    /**
     * Writes the position of the last occurrence of each distinct key among {@code n} keys,
     * compacted, to {@code outIndex}, counting them in {@code counter} (queued).
     */
    void lastOccurrences(CUdeviceptr keysIn, long n, CUdeviceptr outIndex, CUdeviceptr counter) {
        mark(keysIn, n);
        kernels.launch("mlkv_unique_last", n, BLOCK, stream, keysIn, n, flag.pointer(), epoch, win.pointer(),
                slot.pointer(), outIndex, counter);
        reset(keysIn, n);
    }

    /**
     * Writes each distinct key among {@code n} keys that come with their batch positions (distinct
     * positions), with its highest position, compacted, to {@code outKeys}/{@code outPositions},
     * counting them in {@code counter} (queued).
     */
    void lastOccurrencesAt(CUdeviceptr keysIn, CUdeviceptr positions, long n, CUdeviceptr outKeys,
            CUdeviceptr outPositions, CUdeviceptr counter) {
        mark(keysIn, positions, n);
        kernels.launch("mlkv_unique_last_at", n, BLOCK, stream, keysIn, positions, n, flag.pointer(), epoch,
                win.pointer(), slot.pointer(), outKeys, outPositions, counter);
        reset(keysIn, n);
    }

    /** The set's arguments of an upsert kernel: slot, win and flag, or three nulls when not {@code marked}. */
    CUdeviceptr[] upsertArgs(boolean marked) {
        return marked ? new CUdeviceptr[] {slot.pointer(), win.pointer(), flag.pointer()} : new CUdeviceptr[3];
    }

    long epoch() {
        return epoch;
    }

    /** Lowers the host-visible repeat flag; the stream must be idle. */
    void clearSeen() {
        seen.buffer().putLong(0, 0);
    }

    /** Whether an upsert since {@link #clearSeen()} met a repeated key; the stream must be idle. */
    boolean wasSeen() {
        return seen.buffer().getLong(0) != 0;
    }

    /** The device address of the repeat flag, for an upsert that detects repeats; null when it does not. */
    CUdeviceptr seenFlag(boolean detect) {
        return detect ? seen.devicePointer() : null;
    }

    private Object[] args(CUdeviceptr keysIn, long n, CUdeviceptr positions) {
        return new Object[] {keysIn, n, setKeys.pointer(), win.pointer(), mask, slot.pointer(), flag.pointer(), epoch,
            repeated.pointer(), positions};
    }

    @Override
    public void close() {
        parts.close();
    }
}
