package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cuda.PinnedMemory;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * The host-array API's way to the GPU: pinned host buffers and device buffers for one chunk of
 * {@link #keys()} keys, allocated once, and the loops that move a batch through them chunk by
 * chunk. Reads pipeline two halves of the buffers over the table's stream and a copy stream of
 * their own; everything else runs on the table's stream.
 *
 * <p>Lock rule: the table's lock guards every method; the table's device is current.
 */
final class HostStaging implements AutoCloseable {
    private final OwnedResources parts = new OwnedResources();
    private final int keys;
    private final int dim;
    private final CUstream stream;
    private final CUstream copyStream = new CUstream();
    /** Per half of the buffers: keys copied in, kernel done, results copied out. */
    private final CUevent[][] pipeEvents = new CUevent[2][3];
    private final PinnedMemory hKeys;
    private final PinnedMemory hValuesIn;
    private final PinnedMemory hValuesOut;
    private final PinnedMemory hFlags;
    private final PinnedMemory hScores;
    private final PinnedMemory hEvictKeys;
    private final PinnedMemory hEvictScores;
    private final PinnedMemory hEvictDirty;
    private final DeviceMemory dKeys;
    private final DeviceMemory dValuesIn;
    private final DeviceMemory dValuesOut;
    private final DeviceMemory dFlags;
    private final DeviceMemory dScores;
    private final DeviceMemory dEvictKeys;
    private final DeviceMemory dEvictValues;
    private final DeviceMemory dEvictScores;
    private final DeviceMemory dEvictDirty;

    /** Host arrays for what a host-array upsert evicts; {@code scores} and {@code dirty} may be null. */
    record Evicted(long[] keys, float[] values, long[] scores, boolean[] dirty) {
    }

    /** One find kernel over staged keys. */
    interface FindLaunch {
        void find(CUdeviceptr keysIn, long n, CUdeviceptr out, CUdeviceptr found);
    }

    /** One upsert over a staged chunk (null pointers: not wanted); returns the entries it evicted. */
    interface ChunkUpsert {
        long run(CUdeviceptr keysIn, CUdeviceptr rows, CUdeviceptr scoresIn, long n, CUdeviceptr out, CUdeviceptr found,
                Evictions evictions);
    }

    HostStaging(int keys, int dim, CUstream stream) {
        this.keys = keys;
        this.dim = dim;
        this.stream = stream;
        long rows = (long) keys * dim * 4;
        try {
            // Non-blocking: the copies must not wait for callers' work on the legacy default stream.
            Cuda.check(cuStreamCreate(copyStream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate (copies)");
            parts.add(() -> Cuda.check(cuStreamDestroy(copyStream), "cuStreamDestroy (copies)"));
            for (CUevent[] half : pipeEvents) {
                for (int e = 0; e < half.length; e++) {
                    CUevent event = new CUevent();
                    Cuda.check(cuEventCreate(event, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
                    parts.add(() -> Cuda.check(cuEventDestroy(event), "cuEventDestroy (copy pipeline)"));
                    half[e] = event;
                }
            }
            hKeys = parts.add(new PinnedMemory(keys * 8L, "staged keys"));
            hValuesIn = parts.add(new PinnedMemory(rows, "staged input values"));
            hValuesOut = parts.add(new PinnedMemory(rows, "staged output values"));
            hFlags = parts.add(new PinnedMemory(keys, "staged flags"));
            hScores = parts.add(new PinnedMemory(keys * 8L, "staged scores"));
            hEvictKeys = parts.add(new PinnedMemory(keys * 8L, "staged evicted keys"));
            hEvictScores = parts.add(new PinnedMemory(keys * 8L, "staged evicted scores"));
            hEvictDirty = parts.add(new PinnedMemory(keys, "staged evicted dirty marks"));
            dKeys = parts.add(new DeviceMemory(keys * 8L, "staged keys"));
            dValuesIn = parts.add(new DeviceMemory(rows, "staged input values"));
            dValuesOut = parts.add(new DeviceMemory(rows, "staged output values"));
            dFlags = parts.add(new DeviceMemory(keys, "staged flags"));
            dScores = parts.add(new DeviceMemory(keys * 8L, "staged scores"));
            dEvictKeys = parts.add(new DeviceMemory(keys * 8L, "staged evicted keys"));
            dEvictValues = parts.add(new DeviceMemory(rows, "staged evicted values"));
            dEvictScores = parts.add(new DeviceMemory(keys * 8L, "staged evicted scores"));
            dEvictDirty = parts.add(new DeviceMemory(keys, "staged evicted dirty marks"));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Keys per chunk. */
    int keys() {
        return keys;
    }

    /**
     * Find through the two halves of the buffers in turn, so that packing one piece's keys and
     * unpacking another's rows on the CPU overlap the copies and the kernel of the piece in
     * between: keys go in on the copy stream, the kernel runs on the table's stream once they are
     * there, results come back on the copy stream once it is done. Rows of missing keys in
     * {@code out} are left untouched.
     *
     * @return the number of keys found
     */
    long find(long[] batch, float[] out, boolean[] found, FindLaunch launch) {
        int piece = Math.max(1, keys / 2);
        int pieces = (batch.length + piece - 1) / piece;
        long rowBytes = dim * 4L;
        long hits = 0;
        for (int p = 0; p < pieces + 2; p++) {
            if (p >= 2) {
                int done = p - 2;
                int h = done & 1;
                int from = done * piece;
                int n = Math.min(piece, batch.length - from);
                Cuda.check(cuEventSynchronize(pipeEvents[h][2]), "cuEventSynchronize after find (n=" + n + ")");
                hits += unpackFoundRows(h * piece, from, n, out, found);
            }
            if (p >= pieces) {
                continue;
            }
            int h = p & 1;
            int from = p * piece;
            int n = Math.min(piece, batch.length - from);
            long at = (long) h * piece;
            CUevent[] ev = pipeEvents[h];
            hKeys.buffer().asLongBuffer().put((int) at, batch, from, n);
            Cuda.check(cuMemcpyHtoDAsync(dKeys.at(at * 8), hKeys.pointer().withByteOffset(at * 8), n * 8L, copyStream),
                    "cuMemcpyHtoDAsync (keys)");
            Cuda.check(cuEventRecord(ev[0], copyStream), "cuEventRecord");
            Cuda.check(cuStreamWaitEvent(stream, ev[0], 0), "cuStreamWaitEvent");
            launch.find(dKeys.at(at * 8), n, dValuesOut.at(at * rowBytes), dFlags.at(at));
            Cuda.check(cuEventRecord(ev[1], stream), "cuEventRecord");
            Cuda.check(cuStreamWaitEvent(copyStream, ev[1], 0), "cuStreamWaitEvent");
            Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer().withByteOffset(at * rowBytes), dValuesOut.at(at * rowBytes),
                    n * rowBytes, copyStream), "cuMemcpyDtoHAsync (values)");
            Cuda.check(cuMemcpyDtoHAsync(hFlags.pointer().withByteOffset(at), dFlags.at(at), n, copyStream),
                    "cuMemcpyDtoHAsync (flags)");
            Cuda.check(cuEventRecord(ev[2], copyStream), "cuEventRecord");
        }
        return hits;
    }

    /**
     * Runs {@code body} over the batch a chunk at a time: keys, rows and (when not null) scores
     * go in; the rows written to {@code out}, the flags to {@code found} and the evicted entries
     * to {@code evicted} (each when not null) come back.
     *
     * @return the entries evicted in all
     */
    long upsert(String op, long[] batch, float[] rows, long[] scoresIn, float[] out, boolean[] found, Evicted evicted,
            ChunkUpsert body) {
        long evictedCount = 0;
        for (int from = 0; from < batch.length; from += keys) {
            int n = Math.min(keys, batch.length - from);
            putKeys(batch, from, n);
            putRows(rows, from, n);
            if (scoresIn != null) {
                hScores.buffer().asLongBuffer().put(scoresIn, from, n);
                Cuda.check(cuMemcpyHtoDAsync(dScores.pointer(), hScores.pointer(), n * 8L, stream),
                        "cuMemcpyHtoDAsync (scores)");
            }
            long e = body.run(dKeys.pointer(), dValuesIn.pointer(), scoresIn == null ? null : dScores.pointer(), n,
                    out == null ? null : dValuesOut.pointer(), found == null ? null : dFlags.pointer(),
                    evicted == null ? Evictions.DROPPED : new Evictions(dEvictKeys.pointer(), dEvictValues.pointer(),
                            dEvictScores.pointer(), evicted.dirty() == null ? null : dEvictDirty.pointer()));
            if (out != null) {
                Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer(), dValuesOut.pointer(), (long) n * dim * 4, stream),
                        "cuMemcpyDtoHAsync (values)");
            }
            if (found != null) {
                fetchFlags(n);
            }
            if (evicted != null) {
                fetchEvicted((int) e);
            }
            sync(op + " (n=" + n + ")");
            if (out != null) {
                hValuesOut.buffer().asFloatBuffer().get(out, from * dim, n * dim);
            }
            if (found != null) {
                unpackFlags(from, n, found);
            }
            if (evicted != null) {
                unpackEvicted((int) e, (int) evictedCount, evicted);
            }
            evictedCount += e;
        }
        return evictedCount;
    }

    /**
     * Runs {@code flagKernel} over the batch a chunk at a time (staged keys in, one flag byte per
     * key out) and copies the flags to {@code out}.
     *
     * @return the number of flags set
     */
    long flags(String op, long[] batch, boolean[] out, FlagLaunch flagKernel) {
        long set = 0;
        for (int from = 0; from < batch.length; from += keys) {
            int n = Math.min(keys, batch.length - from);
            putKeys(batch, from, n);
            flagKernel.launch(dKeys.pointer(), n, dFlags.pointer());
            fetchFlags(n);
            sync(op + " (n=" + n + ")");
            set += unpackFlags(from, n, out);
        }
        return set;
    }

    /** One kernel that writes a flag byte per staged key. */
    interface FlagLaunch {
        void launch(CUdeviceptr keysIn, long n, CUdeviceptr flags);
    }

    /** Runs {@code body} over the batch's keys a chunk at a time and adds up what it returns. */
    long eachKeyChunk(long[] batch, KeyChunk body) {
        long total = 0;
        for (int from = 0; from < batch.length; from += keys) {
            int n = Math.min(keys, batch.length - from);
            putKeys(batch, from, n);
            total += body.run(dKeys.pointer(), n);
        }
        return total;
    }

    /** One call over staged keys. */
    interface KeyChunk {
        long run(CUdeviceptr keysIn, long n);
    }

    /**
     * Copies {@code n} entries that {@code exporter} compacted into the staging buffers (keys,
     * rows, scores) to the arrays ({@code outScores} may be null).
     */
    void export(int n, long[] outKeys, float[] outValues, long[] outScores) {
        if (n > 0) {
            Cuda.check(cuMemcpyDtoHAsync(hKeys.pointer(), dKeys.pointer(), n * 8L, stream), "cuMemcpyDtoHAsync (export keys)");
            Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer(), dValuesOut.pointer(), (long) n * dim * 4, stream),
                    "cuMemcpyDtoHAsync (export values)");
            Cuda.check(cuMemcpyDtoHAsync(hScores.pointer(), dScores.pointer(), n * 8L, stream),
                    "cuMemcpyDtoHAsync (export scores)");
        }
        sync("exportBatch");
        hKeys.buffer().asLongBuffer().get(outKeys, 0, n);
        hValuesOut.buffer().asFloatBuffer().get(outValues, 0, n * dim);
        if (outScores != null) {
            hScores.buffer().asLongBuffer().get(outScores, 0, n);
        }
    }

    /** Where an export writes keys, rows and scores: the device side of the staging buffers. */
    CUdeviceptr exportKeys() {
        return dKeys.pointer();
    }

    CUdeviceptr exportValues() {
        return dValuesOut.pointer();
    }

    CUdeviceptr exportScores() {
        return dScores.pointer();
    }

    private void putKeys(long[] src, int from, int n) {
        hKeys.buffer().asLongBuffer().put(src, from, n);
        Cuda.check(cuMemcpyHtoDAsync(dKeys.pointer(), hKeys.pointer(), n * 8L, stream), "cuMemcpyHtoDAsync (keys)");
    }

    private void putRows(float[] src, int from, int n) {
        hValuesIn.buffer().asFloatBuffer().put(src, from * dim, n * dim);
        Cuda.check(cuMemcpyHtoDAsync(dValuesIn.pointer(), hValuesIn.pointer(), (long) n * dim * 4, stream),
                "cuMemcpyHtoDAsync (values)");
    }

    private void fetchFlags(int n) {
        Cuda.check(cuMemcpyDtoHAsync(hFlags.pointer(), dFlags.pointer(), n, stream), "cuMemcpyDtoHAsync (flags)");
    }

    private void fetchEvicted(int n) {
        if (n == 0) {
            return;
        }
        Cuda.check(cuMemcpyDtoHAsync(hEvictKeys.pointer(), dEvictKeys.pointer(), n * 8L, stream),
                "cuMemcpyDtoHAsync (evicted keys)");
        Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer(), dEvictValues.pointer(), (long) n * dim * 4, stream),
                "cuMemcpyDtoHAsync (evicted values)");
        Cuda.check(cuMemcpyDtoHAsync(hEvictScores.pointer(), dEvictScores.pointer(), n * 8L, stream),
                "cuMemcpyDtoHAsync (evicted scores)");
        Cuda.check(cuMemcpyDtoHAsync(hEvictDirty.pointer(), dEvictDirty.pointer(), n, stream),
                "cuMemcpyDtoHAsync (evicted dirty marks)");
    }

    /**
     * Copies found rows only (missing rows of {@code out} stay untouched), in runs of found rows,
     * from staging positions {@code [at, at + n)} to batch positions {@code [from, from + n)}.
     */
    private int unpackFoundRows(int at, int from, int n, float[] out, boolean[] found) {
        ByteBuffer flags = hFlags.buffer();
        flags.position(at);
        flags = flags.slice();
        FloatBuffer rows = hValuesOut.buffer().asFloatBuffer();
        rows.position(at * dim);
        rows = rows.slice();
        int hits = 0;
        int runStart = -1;
        for (int i = 0; i <= n; i++) {
            boolean f = i < n && flags.get(i) != 0;
            if (i < n) {
                found[from + i] = f;
            }
            if (f) {
                hits++;
                if (runStart < 0) {
                    runStart = i;
                }
            } else if (runStart >= 0) {
                rows.position(runStart * dim);
                rows.get(out, (from + runStart) * dim, (i - runStart) * dim);
                runStart = -1;
            }
        }
        return hits;
    }

    private int unpackFlags(int from, int n, boolean[] out) {
        ByteBuffer flags = hFlags.buffer();
        int set = 0;
        for (int i = 0; i < n; i++) {
            out[from + i] = flags.get(i) != 0;
            set += out[from + i] ? 1 : 0;
        }
        return set;
    }

    private void unpackEvicted(int n, int at, Evicted to) {
        hEvictKeys.buffer().asLongBuffer().get(to.keys(), at, n);
        hValuesOut.buffer().asFloatBuffer().get(to.values(), at * dim, n * dim);
        if (to.scores() != null) {
            hEvictScores.buffer().asLongBuffer().get(to.scores(), at, n);
        }
        if (to.dirty() != null) {
            ByteBuffer marks = hEvictDirty.buffer();
            for (int e = 0; e < n; e++) {
                to.dirty()[at + e] = marks.get(e) != 0;
            }
        }
    }

    private void sync(String op) {
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after " + op);
    }

    @Override
    public void close() {
        parts.close();
    }
}
