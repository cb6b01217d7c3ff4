package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import java.util.List;
import java.util.concurrent.TimeUnit;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import org.agrona.CloseHelper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Device-pointer calls of several threads at once, combined ({@link CallCombiner}): concurrent
 * small {@code multiGet}s become one read of their keys laid end to end, concurrent
 * {@code accumulate}s (and {@code multiPut}s) one write, so that four callers of 64K-key batches
 * pay a training step's fixed costs (kernel launches, waits for the GPU, hand-overs of the
 * table's and the store's locks) once for 256K keys instead of four times. The leader copies the
 * callers' keys (and rows) into its own device buffers on its own stream, runs the store's device
 * path on them, and copies each caller's part of the results back; a caller alone runs its call
 * on its own buffers, with nothing copied.
 *
 * <p>A combined read keeps the single call's contract: rows of missing keys are left as they were
 * (the callers' rows are copied in first), each caller gets its own count. A combined write is one
 * write of all the keys: a key in several callers' batches gets every delta (accumulate) or one of
 * the callers' rows, the last in queue order (put), as if the calls had run in that order. Keys
 * are checked for reserved values per call before it is queued, so a group never fails on one
 * caller's key.
 *
 * <p>Groups hold at most {@link #maxKeys} keys (about 256K at dim 64, fewer for wide rows); calls
 * larger than half of it run alone, as do all calls where the leader's buffers cannot be
 * allocated. {@code -Dmlkv.combineDeviceCalls=false} turns combining off. Thread-safe.
 */
public final class CombinedDeviceCalls implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CombinedDeviceCalls.class);
    /** Whether device calls are combined; {@code -Dmlkv.combineDeviceCalls=false} turns it off. */
    public static final boolean ENABLED = !"false".equals(System.getProperty("mlkv.combineDeviceCalls"));
    private static final long MAX_GROUP_KEYS = 1L << 18;
    private static final long MAX_GROUP_ROW_BYTES = 64L << 20;
    /**
     * How long a leader waits, at most, for the callers it served to take their results, so that
     * they reach their next calls together ({@link CallCombiner}); {@code -Dmlkv.combinedLeaderWaitMicros=0} turns it off.
     */
    private static final long LEADER_WAIT_NANOS = TimeUnit.MICROSECONDS.toNanos(
            Math.max(0, Long.getLong("mlkv.combinedLeaderWaitMicros", 200)));
    /**
     * How long a leader waits, at most, for a call of each caller that recent groups served before
     * it takes the queue ({@link CallCombiner}; also at most twice the last group's run time):
     * callers that read together come back to write a few microseconds apart, and the first would
     * otherwise write alone; callers split into a reading and a writing half join again.
     * {@code -Dmlkv.combinedGatherMicros=0} turns it off.
     */
    private static final long GATHER_NANOS = TimeUnit.MICROSECONDS.toNanos(
            Math.max(0, Long.getLong("mlkv.combinedGatherMicros", 1000)));

    /** The store's device read, as one call runs it. */
    public interface Read {
        long run(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found);
    }

    /** The store's device write (put or accumulate), as one call runs it. */
    public interface Write {
        void run(CUdeviceptr keys, long n, CUdeviceptr rows);
    }

    private final HbmTier hbm;
    private final long rowBytes;
    private final long maxKeys;
    private final Read read;
    private final Write put;
    private final Write accumulate;
    private final CallCombiner<ReadCall> reads;
    private final CallCombiner<DeviceCall> puts;
    private final CallCombiner<DeviceCall> accumulates;
    private final Buffers readBuffers = new Buffers("combined reads", true);
    private final Buffers putBuffers = new Buffers("combined puts", false);
    private final Buffers accumulateBuffers = new Buffers("combined accumulates", false);

    public CombinedDeviceCalls(HbmTier hbm, Read read, Write put, Write accumulate) {
        this.hbm = hbm;
        this.rowBytes = hbm.table().dim() * 4L;
        this.maxKeys = Math.max(2, Math.min(MAX_GROUP_KEYS, MAX_GROUP_ROW_BYTES / rowBytes));
        this.read = read;
        this.put = put;
        this.accumulate = accumulate;
        this.reads = new CallCombiner<>(maxKeys, LEADER_WAIT_NANOS, GATHER_NANOS, this::runReads);
        this.puts = new CallCombiner<>(maxKeys, LEADER_WAIT_NANOS, GATHER_NANOS, calls -> runWrites(calls, put, putBuffers));
        this.accumulates = new CallCombiner<>(maxKeys, LEADER_WAIT_NANOS, GATHER_NANOS,
                calls -> runWrites(calls, accumulate, accumulateBuffers));
    }

    /** Whether a call of {@code n} keys is combined with others (else the caller runs it alone). */
    private boolean combines(long n) {
        return ENABLED && n <= maxKeys / 2;
    }

    /** The store's device read of these pointers, combined with other callers' reads where small enough. */
    public long multiGet(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found) {
        if (!combines(n)) {
            return read.run(keys, n, out, found);
        }
        ReadCall c = new ReadCall(keys, n, out, found);
        reads.run(c);
        return c.hits;
    }

    /** The store's device put of these pointers, combined with other callers' puts where small enough. */
    public void multiPut(CUdeviceptr keys, long n, CUdeviceptr values) {
        if (combines(n)) {
            puts.run(new DeviceCall(keys, n, values));
        } else {
            put.run(keys, n, values);
        }
    }

    /** The store's device accumulate of these pointers, combined with other callers' accumulates where small enough. */
    public void accumulate(CUdeviceptr keys, long n, CUdeviceptr deltas) {
        if (combines(n)) {
            accumulates.run(new DeviceCall(keys, n, deltas));
        } else {
            accumulate.run(keys, n, deltas);
        }
    }

    /**
     * Of reads, puts and accumulates in that order, four numbers each: groups run so far, calls that
     * ran combined with others, groups whose leader waited for other callers' calls, and the waits
     * that ran out ({@link CallCombiner#counts}).
     */
    public long[] counts() {
        long[] all = new long[12];
        System.arraycopy(reads.counts(), 0, all, 0, 4);
        System.arraycopy(puts.counts(), 0, all, 4, 4);
        System.arraycopy(accumulates.counts(), 0, all, 8, 4);
        return all;
    }

    /** A call's keys and rows (a read's output rows, a write's input rows) on the device. */
    private static class DeviceCall extends CallCombiner.Call {
        final CUdeviceptr keys;
        final CUdeviceptr rows;

        DeviceCall(CUdeviceptr keys, long n, CUdeviceptr rows) {
            super(n);
            this.keys = keys;
            this.rows = rows;
        }
    }

    private static final class ReadCall extends DeviceCall {
        final CUdeviceptr found;
        long hits;

        ReadCall(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found) {
            super(keys, n, out);
            this.found = found;
        }
    }

    private void runReads(List<ReadCall> calls) {
        Buffers b = calls.size() == 1 ? null : readBuffers.ready();
        if (b == null) {
            for (ReadCall c : calls) {
                c.hits = read.run(c.keys, c.size, c.rows, c.found);
            }
            return;
        }
        long n = copyIn(b, calls, "reads");
        long hits = read.run(b.keys.pointer(), n, b.rows.pointer(), b.found.pointer());
        hbm.makeCurrent();
        long at = 0;
        for (ReadCall c : calls) {
            copy(c.rows, b.rows.at(at * rowBytes), c.size * rowBytes, b.stream, "rows out");
            copy(c.found, b.found.at(at), c.size, b.stream, "found out");
            at += c.size;
        }
        b.sync("copies out of combined reads");
        if (hits == n || hits == 0) {
            for (ReadCall c : calls) {
                c.hits = hits == 0 ? 0 : c.size;
            }
            return;
        }
        byte[] found = new byte[(int) n];
        Cuda.check(cuMemcpyDtoH(Pointer.to(found), b.found.pointer(), n), "cuMemcpyDtoH (found of combined reads)");
        at = 0;
        for (ReadCall c : calls) {
            long h = 0;
            for (long i = at; i < at + c.size; i++) {
                h += found[(int) i];
            }
            c.hits = h;
            at += c.size;
        }
    }

    private void runWrites(List<DeviceCall> calls, Write write, Buffers buffers) {
        Buffers b = calls.size() == 1 ? null : buffers.ready();
        if (b == null) {
            for (DeviceCall c : calls) {
                write.run(c.keys, c.size, c.rows);
            }
            return;
        }
        write.run(b.keys.pointer(), copyIn(b, calls, "writes"), b.rows.pointer());
    }

    /** Copies the calls' keys and rows end to end into {@code b} and waits; returns how many keys. */
    private long copyIn(Buffers b, List<? extends DeviceCall> calls, String what) {
        long at = 0;
        for (DeviceCall c : calls) {
            copy(b.keys.at(at * 8), c.keys, c.size * 8, b.stream, "keys in");
            copy(b.rows.at(at * rowBytes), c.rows, c.size * rowBytes, b.stream, "rows in");
            at += c.size;
        }
        b.sync("copies into combined " + what);
        return at;
    }

    private static void copy(CUdeviceptr to, CUdeviceptr from, long bytes, CUstream stream, String what) {
        Cuda.check(cuMemcpyDtoDAsync(to, from, bytes, stream), "cuMemcpyDtoDAsync (" + what + ", " + bytes + " bytes)");
    }

    /**
     * A leader's device buffers (room for a whole group, {@link #maxKeys} keys) and stream, made
     * on first use. Used only by the leader of one combiner (under its lock).
     */
    private final class Buffers implements AutoCloseable {
        private final String purpose;
        private final boolean withFound;
        private CUstream stream;
        private DeviceMemory keys;
        private DeviceMemory rows;
        private DeviceMemory found;
        private boolean unavailable;

        Buffers(String purpose, boolean withFound) {
            this.purpose = purpose;
            this.withFound = withFound;
        }

        /** These buffers, or null where they cannot be had (the calls then run alone). */
        Buffers ready() {
            if (unavailable) {
                return null;
            }
            hbm.makeCurrent();
            if (keys != null) {
                return this;
            }
            try {
                if (stream == null) {
                    CUstream s = new CUstream();
                    // A blocking stream: copies wait for work queued before them on the legacy default stream.
                    Cuda.check(cuStreamCreate(s, CUstream_flags.CU_STREAM_DEFAULT), "cuStreamCreate (" + purpose + ")");
                    stream = s;
                }
                keys = new DeviceMemory(maxKeys * 8, purpose + " keys");
                rows = new DeviceMemory(maxKeys * rowBytes, purpose + " rows");
                found = withFound ? new DeviceMemory(maxKeys, purpose + " found") : null;
                return this;
            } catch (RuntimeException e) {
                freeMemory();
                unavailable = true;
                LOG.warn("{}: no device memory for combined calls ({}); concurrent device calls run one by one", purpose,
                        e.getMessage());
                return null;
            }
        }

        void sync(String after) {
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after " + after);
        }

        private void freeMemory() {
            DeviceMemory k = keys;
            DeviceMemory r = rows;
            DeviceMemory f = found;
            keys = null;
            rows = null;
            found = null;
            CloseHelper.closeAll(k, r, f);
        }

        @Override
        public void close() {
            try {
                freeMemory();
            } finally {
                if (stream != null) {
                    CUstream s = stream;
                    stream = null;
                    Cuda.check(cuStreamDestroy(s), "cuStreamDestroy (" + purpose + ")");
                }
            }
        }
    }

    /**
     * Frees the leaders' buffers and streams. The store calls it after every call has ended, with
     * the HBM tier's context current.
     */
    @Override
    public void close() {
        hbm.makeCurrent();
        CloseHelper.closeAll(readBuffers, putBuffers, accumulateBuffers);
    }
}
