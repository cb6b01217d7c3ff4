package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.PinnedMemory;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import org.agrona.CloseHelper;

/**
 * The table's device counters (entries held, and what each call evicted, rejected, missed,
 * exported or erased), their pinned host copy, and the running totals of evictions and
 * rejections. Lock rule: the table's lock guards every method; the table's device is current.
 *
 * <p>Invariant: the per-call counters ({@link #EVICTED} to {@link #ERASED}) are zero whenever a
 * table call starts. Every call that can raise them queues {@link #zeroCallCounters()} once it has
 * read them ({@link #read()} does) or moved them to the unread pair ({@link #keepUnread}), so the
 * zeroing runs while the host is between calls instead of ahead of the next call's kernel.
 */
final class TableCounters implements AutoCloseable {
    static final int SIZE = 0;
    static final int EVICTED = 1;
    static final int REJECTED = 2;
    static final int MISSED = 3;
    static final int EXPORTED = 4;
    static final int ERASED = 5;
    private static final int CALL_COUNTERS = 5;
    /** Evicted then rejected by inserts that returned without waiting (two counters). */
    private static final int UNREAD_EVICTED = 6;
    static final int RESERVED = 8;
    private static final int COUNT = 9;

    private final CUstream stream;
    private final DeviceMemory device;
    private final PinnedMemory host;
    /** Recorded behind the copy of {@link #readBefore}, so that it waits for that copy only. */
    private final CUevent copied = new CUevent();
    private long evictedTotal;
    private long rejectedTotal;
    /** Whether the unread counters may be non-zero (an insert returned without waiting since they were read). */
    private boolean unread;

    TableCounters(CUstream stream) {
        this.stream = stream;
        this.device = new DeviceMemory(COUNT * 8, "counters");
        PinnedMemory pinned = null;
        try {
            pinned = new PinnedMemory(COUNT * 8, "counters");
            Cuda.check(cuEventCreate(copied, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate (counters copied)");
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(pinned, device);
            throw e;
        }
        this.host = pinned;
    }

    /** The device address of one counter. */
    CUdeviceptr at(int counter) {
        return device.at(counter * 8L);
    }

    /** Waits for the stream and returns the device counters, then zeroes the per-call ones. */
    long[] read() {
        Cuda.check(cuMemcpyDtoHAsync(host.pointer(), device.pointer(), COUNT * 8, stream), "cuMemcpyDtoHAsync (counters)");
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after read counters");
        long[] c = new long[COUNT];
        host.buffer().asLongBuffer().get(c);
        zeroCallCounters();
        return c;
    }

    /**
     * {@link #read(int)} that queues {@code queueAfter}'s work behind the copy of the counters
     * and waits for the copy only, not for that work. {@code queueAfter} queues on the stream and
     * must not read the counters itself; it may raise them (an insert that does not wait moves
     * its counts to the unread pair, {@link #keepUnread}).
     */
    long readBefore(int counter, Runnable queueAfter) {
        Cuda.check(cuMemcpyDtoHAsync(host.pointer(), device.pointer(), COUNT * 8, stream), "cuMemcpyDtoHAsync (counters)");
        Cuda.check(cuEventRecord(copied, stream), "cuEventRecord (counters copied)");
        zeroCallCounters();
        queueAfter.run();
        Cuda.check(cuEventSynchronize(copied), "cuEventSynchronize (counters copied)");
        return host.buffer().asLongBuffer().get(counter);
    }

    /** {@link #read()} of one counter. */
    long read(int counter) {
        return read()[counter];
    }

    /** Reads what a waited insert evicted and rejected, adds both to the totals, and returns the evictions. */
    long readInsert() {
        long[] c = read();
        evictedTotal += c[EVICTED];
        rejectedTotal += c[REJECTED];
        return c[EVICTED];
    }

    /** Queues the zeroing of the per-call counters. */
    void zeroCallCounters() {
        Cuda.check(cuMemsetD8Async(at(EVICTED), (byte) 0, CALL_COUNTERS * 8, stream), "cuMemsetD8Async (call counters)");
    }

    /** Sets the first-reserved-key counter to all ones (-1: none found yet). */
    void resetReserved() {
        Cuda.check(cuMemsetD8Async(at(RESERVED), (byte) 0xFF, 8, stream), "cuMemsetD8Async (first reserved key)");
    }

    /**
     * After an insert that does not wait: adds its evicted and rejected counts to the unread pair
     * on the device (the host reads them later, {@link #foldUnread}) and zeroes the per-call ones.
     */
    void keepUnread(Launcher launcher) {
        // Evicted and rejected, in this order at both places.
        launcher.addU64(at(EVICTED), at(UNREAD_EVICTED), 2);
        zeroCallCounters();
        unread = true;
    }

    /** Launches {@code mlkv_add_u64} for {@link #keepUnread}: {@code to[i] += from[i]} for {@code n} counters. */
    interface Launcher {
        void addU64(CUdeviceptr from, CUdeviceptr to, int n);
    }

    /**
     * Adds the counts of inserts that returned without waiting to the totals and zeroes them on the
     * device; waits for the stream if there are any.
     */
    void foldUnread() {
        if (!unread) {
            return;
        }
        takeUnread();
        Cuda.check(cuMemsetD8Async(at(UNREAD_EVICTED), (byte) 0, 16, stream), "cuMemsetD8Async (unread counters)");
    }

    /** Waits for the stream and adds the unread counters to the totals, leaving them on the device (at close). */
    void takeUnread() {
        if (!unread) {
            return;
        }
        long[] c = read();
        evictedTotal += c[UNREAD_EVICTED];
        rejectedTotal += c[UNREAD_EVICTED + 1];
        unread = false;
    }

    /** Queues the zeroing of every counter (the table is being cleared). */
    void zeroAll() {
        Cuda.check(cuMemsetD8Async(device.pointer(), (byte) 0, COUNT * 8, stream), "cuMemsetD8Async (counters)");
    }

    long evictedTotal() {
        return evictedTotal;
    }

    long rejectedTotal() {
        return rejectedTotal;
    }

    @Override
    public void close() {
        CloseHelper.closeAll(() -> Cuda.check(cuEventDestroy(copied), "cuEventDestroy (counters copied)"), host, device);
    }
}
