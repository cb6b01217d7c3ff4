package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.PinnedMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import org.agrona.CloseHelper;

/**
 * Finds reserved keys in device batches without the table's lock or stream: each check runs the
 * reserved-key kernel on a stream and result word of its own (taken from a pool that grows to the
 * number of threads checking at once), so a caller's check neither waits for the table's queued
 * work nor holds up the table's other callers. The keys are read after the work the caller queued
 * on the legacy default stream (the check's streams block on it, as the table's does).
 *
 * <p>Thread-safe. {@link #close} waits for checks under way, then frees every stream and word;
 * a check after close throws {@link IllegalStateException}.
 */
final class ReservedKeyChecks implements AutoCloseable {
    private static final int BLOCK = 256;

    private final CudaDevice device;
    private final Kernels kernels;
    private final ConcurrentLinkedQueue<Check> idle = new ConcurrentLinkedQueue<>();
    private final List<Check> all = new ArrayList<>();
    /** Checks hold it shared; close holds it exclusively, so nothing is freed under a check. */
    private final ReadWriteLock open = new ReentrantReadWriteLock();
    private boolean closed;

    ReservedKeyChecks(CudaDevice device, Kernels kernels) {
        this.device = device;
        this.kernels = kernels;
    }

    /** The lowest position of a reserved key among {@code n} device keys, or -1 if there is none. */
    long first(CUdeviceptr keys, long n) {
        open.readLock().lock();
        try {
            if (closed) {
                throw new IllegalStateException("GPU table is closed");
            }
            device.makeCurrent();
            Check c = idle.poll();
            if (c == null) {
                c = newCheck();
            }
            try {
                return c.first(keys, n);
            } finally {
                idle.add(c);
            }
        } finally {
            open.readLock().unlock();
        }
    }

    private Check newCheck() {
        Check c = new Check();
        synchronized (all) {
            all.add(c);
        }
        return c;
    }

    @Override
    public void close() {
        open.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            device.makeCurrent();
            synchronized (all) {
                CloseHelper.closeAll(all);
                all.clear();
            }
            idle.clear();
        } finally {
            open.writeLock().unlock();
        }
    }

    /** One check's stream and result word (device, and pinned for the copy back). */
    private final class Check implements AutoCloseable {
        private final CUstream stream = new CUstream();
        private final DeviceMemory word;
        private final PinnedMemory back;

        Check() {
            Cuda.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_DEFAULT), "cuStreamCreate (reserved-key check)");
            DeviceMemory w = null;
            try {
                w = new DeviceMemory(8, "reserved-key check");
                this.word = w;
                this.back = new PinnedMemory(8, "reserved-key check");
            } catch (RuntimeException e) {
                CloseHelper.closeAll(w, () -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (reserved-key check)"));
                throw e;
            }
        }

        long first(CUdeviceptr keys, long n) {
            Cuda.check(cuMemsetD8Async(word.pointer(), (byte) 0xFF, 8, stream), "cuMemsetD8Async (first reserved key)");
            kernels.launch("mlkv_first_reserved", n, BLOCK, stream, keys, n, word.pointer());
            Cuda.check(cuMemcpyDtoHAsync(back.pointer(), word.pointer(), 8, stream), "cuMemcpyDtoHAsync (first reserved key)");
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after the reserved-key check");
            return back.buffer().getLong(0); // all ones, -1, when none was found
        }

        @Override
        public void close() {
            CloseHelper.closeAll(word, back, () -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy (reserved-key check)"));
        }
    }
}
