package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.PinnedMemory;
import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import org.agrona.CloseHelper;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * A GPU-resident hash table of {@code long} keys to {@code float[dim]} vectors, run by the
 * project's own CUDA kernels ({@code src-native/cuda/mlkv_table.cu}).
 *
 * <h2>Design</h2>
 * A fixed number of buckets (a power of two) of {@value #BUCKET_SLOTS} slots each; a key lives
 * only in bucket {@code hash(key) & (buckets - 1)}. Keys, scores, one-byte digests and values are
 * separate device arrays (structure of arrays). A lookup reads the bucket's 128 digests in one
 * coalesced 128-byte access and checks only slots whose digest matches. A full bucket evicts its
 * lowest-scored entry ({@link ScoreMode}). Each key is handled by a tile of 8 threads.
 *
 * <h2>Two APIs</h2>
 * Host arrays ({@code long[]}, {@code float[]}): staged through pinned buffers allocated once at
 * creation and processed in chunks of {@link #stagingKeys()} keys; no allocation per call.
 * {@code find}, the read path, pipelines halves of the staging buffers over two streams so CPU
 * packing, copies and kernels overlap.
 * Device pointers ({@link CUdeviceptr} in and out): for training code whose tensors already live
 * on the GPU; pointers must belong to this table's device, values be 16-byte aligned for full
 * speed (any alignment works). A call reads its inputs after everything queued before it on the
 * legacy default stream (plain {@code cuMemcpyHtoD}, {@code cuMemsetD8}, kernels launched on
 * stream 0) has finished, and such work queued after the call waits for the call's; inputs
 * written on other streams must be complete (synchronize those streams) before the call.
 *
 * <h2>Semantics</h2>
 * <ul>
 *   <li>{@link #find} does not change scores. Inserts and updates set the score per the mode.</li>
 *   <li>A key repeated in one batch is stored once. {@code insertOrAssign}, {@code assign} and
 *       {@code insertAndEvict} keep its <em>last</em> occurrence's value (with LRU scores, in a
 *       call that waits, every occurrence writes and a call that met a repeat writes each
 *       repeated key's last row again before it returns; otherwise a pass over the batch marks
 *       last occurrences first and only they write), {@code accumOrAssign} adds
 *       every occurrence's delta, {@code findOrInsert} initialises it once from one of its
 *       occurrences' rows and returns that vector for every occurrence, {@code erase} erases it
 *       once.</li>
 *   <li>{@code insertAndEvict} returns every entry that leaves the table exactly once, with its
 *       value and score, in the order they left; {@code insertOrAssign} drops them (and counts
 *       them). A key can leave twice in one call (its old value evicted, the batch re-inserting
 *       it, the new value evicted again by a later insert into the same full bucket): applying
 *       the returned entries in array order always ends with the key's newest value.</li>
 *   <li>Keys {@link ReservedKeys#EMPTY} and {@link ReservedKeys#LOCKED} mark slot states: the host API refuses
 *       them with {@link IllegalArgumentException}, the device API ignores them
 *       ({@link #firstReservedKey} finds them in a device batch).</li>
 *   <li>Each entry carries a dirty mark for a tier above others ({@link EntryState}): the calls
 *       that take an {@code EntryState} or are named {@code ...Dirty} set it, inserts write it, {@link #installAbsent} reports it for
 *       every entry it evicts, and {@link #exportDirty}/{@link #markClean} find and clear it. The
 *       other calls insert clean entries and leave the marks of present ones alone.</li>
 * </ul>
 *
 * <p>Thread-safe: calls from several threads are serialised on one CUDA stream. Every CUDA call is
 * checked; failures are {@link MlkvException} naming the call and the {@code CUresult}.
 */
public final class GpuHashTable implements VectorTier {
    /** Slots per bucket. */
    public static final int BUCKET_SLOTS = 128;

    private static final int TILE = 8;
    private static final int BLOCK = 256;
    private static final int MODE_ASSIGN = 0;
    private static final int MODE_FIND_OR_INSERT = 1;
    private static final int MODE_ACCUM = 2;
    /** Launches mlkv_assign_only; not a mode of the upsert kernel. */
    private static final int MODE_ASSIGN_ONLY = 3;
    private static final int MODE_INSERT_ABSENT = 4;
    private static final int COUNTER_SIZE = 0;
    private static final int COUNTER_EVICTED = 1;
    private static final int COUNTER_REJECTED = 2;
    private static final int COUNTER_MISSED = 3;
    private static final int COUNTER_EXPORTED = 4;
    private static final int COUNTER_ERASED = 5;
    /** The per-call counters: COUNTER_EVICTED to COUNTER_ERASED, zero whenever a call starts. */
    private static final int CALL_COUNTERS = 5;
    /** Evictions and rejections of inserts that returned without waiting, in this order, not yet read. */
    private static final int COUNTER_UNREAD_EVICTED = 6;
    /** Set to all ones, then lowered by mlkv_first_reserved. */
    private static final int COUNTER_RESERVED = 8;
    private static final int COUNTERS = 9;
    /** At least this many device keys per assigning launch (the scratch set costs about 30 bytes a key). */
    private static final int DEVICE_DEDUP_CHUNK = 1 << 20;

    private final int dim;
    private final long buckets;
    private final long capacity;
    private final ScoreMode scoreMode;
    private final int stagingKeys;
    private final CudaDevice device;
    private final Kernels kernels;
    private final CUstream stream = new CUstream();
    /** Copies of the pipelined host-array paths run here, overlapping kernels on {@link #stream}. */
    private final CUstream copyStream = new CUstream();
    /** Per staging half: keys copied in, kernel done, results copied out. */
    private final CUevent[][] pipeEvents = new CUevent[2][3];
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final DeviceMemory keys;
    private final DeviceMemory scores;
    private final DeviceMemory digests;
    private final DeviceMemory values;
    /** One byte per slot: 1 while the slot's value is newer than the tiers below (see {@link EntryState}). */
    private final DeviceMemory dirty;
    private final DeviceMemory bucketLocks;
    /**
     * Keys per assigning launch that may repeat keys: the repeated-key scratch set holds this
     * many. Device batches go in chunks of it (host arrays in smaller chunks of stagingKeys).
     */
    private final int dedupChunk;
    private final long dedupMask;
    private final DeviceMemory dedupKeys;
    private final DeviceMemory dedupWin;
    private final DeviceMemory dedupSlot;
    /** Holds the epoch of the last marking pass that met a repeated key. */
    private final DeviceMemory dedupFlag;
    /** Per scratch-set slot: 1 when its key occurs more than once in the chunk. */
    private final DeviceMemory dedupRepeated;
    /**
     * Set to 1 by an upsert that detects a repeated key; host memory the kernel writes through
     * its mapping, so reading it after the synchronize needs no copy.
     */
    private final PinnedMemory repeatSeen;
    /** Numbers the marking passes; never reused, so the flag needs no reset. */
    private long dedupEpoch;
    private final DeviceMemory counters;
    private final PinnedMemory countersHost;
    private final Staging staging;
    private final ReentrantLock lock = new ReentrantLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    private long clock;
    /** Whether finds refresh the scores of the keys they find; see {@link #scoreReads(boolean)}. */
    private volatile boolean scoreReads;
    /** Whether callers promise batches without repeated keys; see {@link #uniqueKeys(boolean)}. */
    private volatile boolean uniqueKeys;
    private long evictedTotal;
    private long rejectedTotal;
    /** Whether the unread counters may be non-zero (an insert returned without waiting since they were read). */
    private boolean unreadCounts;

    private GpuHashTable(int dim, long requestedCapacity, ScoreMode scoreMode, int stagingKeys, int deviceOrdinal) {
        this.dim = dim;
        this.scoreMode = scoreMode;
        this.buckets = Long.highestOneBit(Math.max(1, (requestedCapacity + BUCKET_SLOTS - 1) / BUCKET_SLOTS) * 2 - 1);
        this.capacity = buckets * BUCKET_SLOTS;
        long rowBytes = dim * 4L;
        this.stagingKeys = (int) Math.max(1, Math.min(stagingKeys, (256L << 20) / rowBytes));
        this.device = CudaDevice.open(deviceOrdinal);
        try {
            this.kernels = Kernels.load();
            owned.add(kernels);
            long tableBytes = capacity * (8 + 8 + 1 + 1 + rowBytes) + buckets * 4;
            long[] mem = device.memoryInfo();
            if (tableBytes > mem[0]) {
                throw new MlkvException(StatusCode.OUT_OF_MEMORY, "create GPU table", "CUDA_ERROR_OUT_OF_MEMORY",
                        "capacity " + capacity + " x dim " + dim + " needs " + tableBytes + " bytes of device memory, but "
                                + device.name() + " has " + mem[0] + " free of " + mem[1]
                                + "; lower the capacity or the dimension", null);
            }
            // A blocking stream: its work runs after what callers queued on the legacy default
            // stream, such as a cuMemcpyHtoD from pageable memory, which returns before its DMA
            // has landed; a non-blocking stream could read the caller's keys before they arrive.
            Cuda.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_DEFAULT), "cuStreamCreate");
            Cuda.check(cuStreamCreate(copyStream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate (copies)");
            for (CUevent[] half : pipeEvents) {
                for (int e = 0; e < half.length; e++) {
                    half[e] = new CUevent();
                    Cuda.check(cuEventCreate(half[e], CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
                }
            }
            this.keys = own(new DeviceMemory(capacity * 8, "table keys"));
            this.scores = own(new DeviceMemory(capacity * 8, "table scores"));
            this.digests = own(new DeviceMemory(capacity, "table digests"));
            this.values = own(new DeviceMemory(capacity * rowBytes, "table values"));
            this.dirty = own(new DeviceMemory(capacity, "table dirty marks"));
            this.bucketLocks = own(new DeviceMemory(buckets * 4, "bucket locks"));
            this.counters = own(new DeviceMemory(COUNTERS * 8, "counters"));
            this.countersHost = own(new PinnedMemory(COUNTERS * 8, "counters"));
            this.staging = own(new Staging(this.stagingKeys, dim));
            this.dedupChunk = Math.max(this.stagingKeys, DEVICE_DEDUP_CHUNK);
            long dedupSlots = Long.highestOneBit(dedupChunk * 2L - 1) << 1;
            this.dedupMask = dedupSlots - 1;
            this.dedupKeys = own(new DeviceMemory(dedupSlots * 8, "dedup scratch keys"));
            this.dedupWin = own(new DeviceMemory(dedupSlots * 4, "dedup scratch positions"));
            this.dedupSlot = own(new DeviceMemory(dedupChunk * 4L, "dedup scratch slots"));
            this.dedupFlag = own(new DeviceMemory(8, "dedup flag"));
            this.dedupRepeated = own(new DeviceMemory(dedupSlots, "dedup marks"));
            this.repeatSeen = own(PinnedMemory.mapped(8, "repeated-key flag"));
            emptyDedup();
            clearLocked();
        } catch (RuntimeException e) {
            releaseAll(e);
            throw e;
        }
    }

    /**
     * Creates a table on device 0.
     *
     * @param dim         floats per value, 1 to 65536
     * @param capacity    slots wanted; rounded up to a power-of-two number of 128-slot buckets
     * @param scoreMode   how entries are scored for eviction
     * @param stagingKeys keys per chunk of the host-array API (pinned staging size)
     * @throws IllegalStateException if no CUDA device can be used or the kernels were not built
     * @throws MlkvException         {@code OUT_OF_MEMORY} naming the size asked and the memory free
     */
    public static GpuHashTable create(int dim, long capacity, ScoreMode scoreMode, int stagingKeys) {
        if (dim < 1 || dim > 65536) {
            throw new IllegalArgumentException("dim must be between 1 and 65536, was " + dim);
        }
        if (capacity < 1 || capacity > (1L << 40)) {
            throw new IllegalArgumentException("capacity must be between 1 and 2^40 slots, was " + capacity);
        }
        if (scoreMode == null) {
            throw new IllegalArgumentException("scoreMode must not be null");
        }
        if (stagingKeys < 1) {
            throw new IllegalArgumentException("stagingKeys must be positive, was " + stagingKeys);
        }
        return new GpuHashTable(dim, capacity, scoreMode, stagingKeys, 0);
    }

    /** {@link #create(int, long, ScoreMode, int)} with 256 Ki keys per staging chunk. */
    public static GpuHashTable create(int dim, long capacity, ScoreMode scoreMode) {
        return create(dim, capacity, scoreMode, 1 << 18);
    }

    private <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    @Override
    public int dim() {
        return dim;
    }

    /** Slots in the table (the most entries it can hold). */
    public long capacity() {
        return capacity;
    }

    /** Number of 128-slot buckets. */
    public long buckets() {
        return buckets;
    }

    /** Keys per chunk of the host-array API. */
    public int stagingKeys() {
        return stagingKeys;
    }

    public ScoreMode scoreMode() {
        return scoreMode;
    }

    /** The CUDA device's name. */
    public String deviceName() {
        return device.name();
    }

    /** Entries evicted (returned or dropped) since creation. */
    public long evictions() {
        lock.lock();
        try {
            foldUnreadCounts();
            return evictedTotal;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Whether {@code find} (both APIs) refreshes the score of every key it finds, as a write
     * does: {@link ScoreMode#LRU} sets it to the call's clock, {@link ScoreMode#LFU} adds one per
     * occurrence in the batch; {@link ScoreMode#CUSTOM} scores are left alone. Off by default, so
     * that a find only reads (as in HierarchicalKV); a cache that should keep what is read turns it
     * on, so that a full bucket evicts its least recently (or least often) used entry rather than
     * its oldest write. {@code contains} never changes scores.
     */
    public void scoreReads(boolean on) {
        scoreReads = on;
    }

    /**
     * Whether callers promise that no key repeats within one batch of {@code insertOrAssign},
     * {@code insertAndEvict} or {@code assign} (both APIs), as training code that deduplicates its
     * keys before a step can: those calls then skip the handling of repeated keys, the detection
     * and repair or the marking pass (HierarchicalKV makes the same assumption). Off by default.
     * A batch that breaks the promise never corrupts the table (a key is still stored once and
     * nothing else is lost), but a repeated key ends up with the value of any of its occurrences,
     * not necessarily the last, and after {@code assign} possibly with elements of several.
     */
    public void uniqueKeys(boolean promised) {
        uniqueKeys = promised;
    }

    /** Inserts refused since creation because their custom score was below a full bucket's lowest. */
    public long rejections() {
        lock.lock();
        try {
            foldUnreadCounts();
            return rejectedTotal;
        } finally {
            lock.unlock();
        }
    }

    // ------------------------------------------------------------------ device-pointer API

    /**
     * Looks up {@code n} keys. Writes each found key's value to row {@code i} of {@code outValues}
     * (other rows untouched) and 1/0 to byte {@code i} of {@code found}. If {@code missedKeys} is
     * not null, the missed keys and their batch positions are written, compacted and in no
     * particular order, to {@code missedKeys}/{@code missedIndex} (int32).
     *
     * @return the number of missed keys when {@code missedKeys} is given; 0 without it (misses
     *     are counted only while they are compacted)
     */
    public long find(CUdeviceptr keysIn, long n, CUdeviceptr outValues, CUdeviceptr found, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex) {
        return call(() -> {
            launchFind(keysIn, n, outValues, found, missedKeys, missedIndex, readTouch());
            if (missedKeys == null) {
                sync("find (n=" + n + ")");
                return 0L;
            }
            return readCounters()[COUNTER_MISSED];
        });
    }

    /** Writes 1/0 to byte {@code i} of {@code found} for each of {@code n} keys. */
    public void contains(CUdeviceptr keysIn, long n, CUdeviceptr found) {
        call(() -> {
            kernels.launchPacked("mlkv_contains", TableKernelArgs.CONTAINS, n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(), buckets - 1,
                    keysIn, n, found);
            sync("contains (n=" + n + ")");
            return 0L;
        });
    }

    /** Inserts or overwrites {@code n} rows; evicted entries are dropped. {@code scoresIn} only for CUSTOM. */
    public void insertOrAssign(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n) {
        call(() -> upsert(MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null, Evictions.DROPPED, Marks.CLEAN, true));
    }

    /**
     * Inserts or overwrites {@code n} rows, writing every entry evicted to make room to the
     * {@code evicted*} arrays (room for {@code n} entries each; {@code evictedScores} may be null).
     *
     * @return the number of evicted entries
     */
    public long insertAndEvict(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n,
            CUdeviceptr evictedKeys, CUdeviceptr evictedValues, CUdeviceptr evictedScores) {
        return call(() -> upsert(MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null,
                new Evictions(evictedKeys, evictedValues, evictedScores, null), Marks.CLEAN, true));
    }

    /**
     * {@link #insertOrAssign} that returns without waiting for the GPU: the insert is queued on
     * the table's stream, and {@code done} is recorded behind it. The caller must not change or
     * free {@code keysIn} and {@code valuesIn} before {@code done} has completed
     * ({@code cuEventSynchronize}, or a stream wait); every later call of this table runs after
     * the insert. What it evicts is dropped and counted in {@link #evictions()}. A failure of the
     * queued work is reported by the next call that waits for the table's stream.
     */
    public void insertOrAssignAsync(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n,
            CUevent done) {
        call(() -> {
            upsert(MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null, Evictions.DROPPED, Marks.CLEAN, false);
            Cuda.check(cuEventRecord(done, stream), "cuEventRecord (insert queued without waiting)");
            return 0L;
        });
    }

    /**
     * Returns each key's value in {@code outValues}, inserting absent keys with their row of
     * {@code initValues} first; byte {@code i} of {@code found} (may be null) tells which existed.
     */
    public void findOrInsert(CUdeviceptr keysIn, CUdeviceptr initValues, CUdeviceptr scoresIn, long n,
            CUdeviceptr outValues, CUdeviceptr found) {
        call(() -> upsert(MODE_FIND_OR_INSERT, keysIn, initValues, scoresIn, n, outValues, found, Evictions.DROPPED, Marks.CLEAN, true));
    }

    /** Overwrites the values of keys that exist; byte {@code i} of {@code found} (may be null) tells which. */
    public void assign(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n, CUdeviceptr found) {
        call(() -> upsert(MODE_ASSIGN_ONLY, keysIn, valuesIn, scoresIn, n, null, found, Evictions.DROPPED, Marks.CLEAN, true));
    }

    /**
     * Adds each row of {@code deltas} to its key's value where the key exists; absent keys are
     * left alone. Byte {@code i} of {@code found} (may be null) tells which existed. A repeated key
     * gets every delta. {@code scoresIn} only for CUSTOM.
     */
    public void accumExisting(CUdeviceptr keysIn, CUdeviceptr deltas, CUdeviceptr scoresIn, long n, CUdeviceptr found) {
        if (scoreMode == ScoreMode.CUSTOM && scoresIn == null) {
            throw new IllegalArgumentException("ScoreMode.CUSTOM needs one score per key");
        }
        call(() -> {
            clock++;
            kernels.launch("mlkv_accum_existing", n * TILE, BLOCK, stream, keys.pointer(), scores.pointer(),
                    digests.pointer(), values.pointer(), buckets - 1, dim, scoreMode.code, clock, keysIn, deltas,
                    scoresIn, n, found, null, null, null, null);
            sync("accumExisting (n=" + n + ")");
            return 0L;
        });
    }

    // ------------------------------------------------------------------ dirty marks (a tier above others)

    /**
     * The lowest position of a reserved key ({@link ReservedKeys}) among {@code n} device keys, or
     * -1 if there is none: a device batch checked without copying it to the host.
     */
    public long firstReservedKey(CUdeviceptr keysIn, long n) {
        return call(() -> {
            Cuda.check(cuMemsetD8Async(counters.at(COUNTER_RESERVED * 8L), (byte) 0xFF, 8, stream),
                    "cuMemsetD8Async (first reserved key)");
            kernels.launch("mlkv_first_reserved", n, BLOCK, stream, keysIn, n, counters.at(COUNTER_RESERVED * 8L));
            return readCounters()[COUNTER_RESERVED]; // still all ones, -1, when none was found
        });
    }

    /**
     * {@link #assign} of the keys the table holds, which leaves each entry it writes in
     * {@code state} ({@link EntryState#CLEAN} leaves the marks as they are), and writes the keys it
     * does not find, with their batch positions (int32), compacted in no particular order, to
     * {@code missedKeys}/{@code missedIndex} (room for {@code n} each). Every occurrence of a
     * missed key is reported.
     *
     * @return the number of positions whose key was missed
     */
    public long assignHeld(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n, EntryState state, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex) {
        return call(() -> upsert(MODE_ASSIGN_ONLY, keysIn, valuesIn, null, n, null, null, Evictions.DROPPED,
                Marks.reportingMisses(state == EntryState.DIRTY, missedKeys, missedIndex), true));
    }

    /**
     * {@link #accumExisting} that leaves each entry it writes in {@code state} and reports the
     * keys it does not find as {@link #assignHeld} does.
     *
     * @return the number of positions whose key was missed
     */
    public long accumulateHeld(CUdeviceptr keysIn, CUdeviceptr deltas, long n, EntryState state, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex) {
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("accumulateHeld keeps the table's scores; a ScoreMode.CUSTOM table needs them");
        }
        return call(() -> {
            clock++;
            kernels.launch("mlkv_accum_existing", n * TILE, BLOCK, stream, keys.pointer(), scores.pointer(),
                    digests.pointer(), values.pointer(), buckets - 1, dim, scoreMode.code, clock, keysIn, deltas,
                    null, n, null, state == EntryState.DIRTY ? dirty.pointer() : null, missedKeys, missedIndex,
                    counters.at(COUNTER_MISSED * 8L));
            return readCounters()[COUNTER_MISSED];
        });
    }

    /** The most keys {@link #lastOccurrences} takes in one call. */
    public int maxDistinctBatch() {
        return dedupChunk;
    }

    /**
     * The position of the last occurrence of each distinct key among {@code n} device keys
     * ({@code n <= }{@link #maxDistinctBatch()}), compacted in no particular order, to
     * {@code outIndex} (int32, room for {@code n}).
     *
     * @return the number of distinct keys
     */
    public long lastOccurrences(CUdeviceptr keysIn, long n, CUdeviceptr outIndex) {
        if (n < 0 || n > dedupChunk) {
            throw new IllegalArgumentException("lastOccurrences: n must be 0 to " + dedupChunk + ", was " + n);
        }
        if (n == 0) {
            return 0;
        }
        return call(() -> {
            markRepeats(keysIn, n);
            kernels.launch("mlkv_unique_last", n, BLOCK, stream, keysIn, n, dedupFlag.pointer(), dedupEpoch,
                    dedupWin.pointer(), dedupSlot.pointer(), outIndex, counters.at(COUNTER_EXPORTED * 8L));
            kernels.launchPacked("mlkv_dedup_reset", TableKernelArgs.DEDUP, Math.min(dedupMask + 1, 1L << 20), BLOCK,
                    stream, dedupArgs(keysIn, n));
            return readCounters()[COUNTER_EXPORTED];
        });
    }

    /**
     * Installs {@code n} rows of distinct keys: an absent key is inserted in {@code state}; a
     * present one is left as it is (value and mark), since the table's copy is never older than
     * what a tier below offers. Every entry evicted to make room is written to {@code evicted}
     * (room for {@code n} entries) with its dirty mark, in the order they left.
     *
     * @return the number of evicted entries
     */
    public long installAbsent(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, EntryState state, Evictions evicted) {
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("installAbsent scores by the clock; a ScoreMode.CUSTOM table needs scores");
        }
        return call(() -> upsert(MODE_INSERT_ABSENT, keysIn, rowsIn, null, n, null, null, evicted,
                state == EntryState.DIRTY ? Marks.DIRTY : Marks.CLEAN, true));
    }

    /**
     * {@link #installAbsent} of clean rows that returns without waiting, as
     * {@link #insertOrAssignAsync} does; what it evicts is dropped and counted, so call it only
     * when no entry is dirty.
     */
    public void installAbsentAsync(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, CUevent done) {
        call(() -> {
            upsert(MODE_INSERT_ABSENT, keysIn, rowsIn, null, n, null, null, Evictions.DROPPED, Marks.CLEAN, false);
            Cuda.check(cuEventRecord(done, stream), "cuEventRecord (install queued without waiting)");
            return 0L;
        });
    }

    /**
     * Copies the dirty entries of slots {@code [offset, offset + count)} to the outputs (device
     * memory, room for {@code count}), compacted. Their marks stay until {@link #markClean}.
     *
     * @return entries written
     */
    public long exportDirty(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues) {
        checkRange("exportDirty", offset, count);
        return call(() -> {
            kernels.launch("mlkv_export_dirty", count, BLOCK, stream, keys.pointer(), dirty.pointer(), values.pointer(),
                    dim, offset, count, outKeys, outValues, counters.at(COUNTER_EXPORTED * 8L));
            return readCounters()[COUNTER_EXPORTED];
        });
    }

    /** Clears the dirty marks of slots {@code [offset, offset + count)}, once their entries are safe below. */
    public void markClean(long offset, long count) {
        checkRange("markClean", offset, count);
        call(() -> {
            Cuda.check(cuMemsetD8Async(dirty.at(offset), (byte) 0, count, stream), "cuMemsetD8Async (dirty marks)");
            sync("markClean");
            return 0L;
        });
    }

    private void checkRange(String op, long offset, long count) {
        if (offset < 0 || count < 0 || offset + count > capacity) {
            throw new IllegalArgumentException(op + ": range [" + offset + ", " + (offset + count)
                    + ") is outside the table's " + capacity + " slots");
        }
    }

    /** Adds each row of {@code deltas} to its key's value; absent keys are inserted as their delta. */
    public void accumOrAssign(CUdeviceptr keysIn, CUdeviceptr deltas, CUdeviceptr scoresIn, long n) {
        call(() -> upsert(MODE_ACCUM, keysIn, deltas, scoresIn, n, null, null, Evictions.DROPPED, Marks.CLEAN, true));
    }

    /**
     * Inserts or overwrites {@code n} rows with distinct keys that arrive grouped by bucket, as
     * {@link #exportBatch} writes them (a restore). Inserting such a batch as it is would put many
     * threads of one launch on one bucket's lock; this takes the rows in a strided order (each
     * once), a staging batch at a time, so every launch spreads over the table. Evicted entries
     * are dropped.
     */
    public void insertOrAssignExported(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n) {
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("insertOrAssignExported keeps no scores; a ScoreMode.CUSTOM table needs them");
        }
        if (n <= 0) {
            return;
        }
        long step = 1_000_003L; // a prime; made coprime to n below
        while (n % step == 0 || gcd(n, step) != 1) {
            step += 2;
        }
        long chunk = Math.min(n, stagingKeys);
        long rowBytes = dim * 4L;
        long stride = step;
        call(() -> {
            try (DeviceMemory k = new DeviceMemory(chunk * 8, "restore staging keys");
                 DeviceMemory v = new DeviceMemory(chunk * rowBytes, "restore staging values")) {
                for (long start = 0; start < n; start += chunk) {
                    long m = Math.min(chunk, n - start);
                    kernels.launch("mlkv_gather_stride", m * dim, BLOCK, stream, keysIn, valuesIn, n, dim, stride, start,
                            m, k.pointer(), v.pointer());
                    upsert(MODE_ASSIGN, k.pointer(), v.pointer(), null, m, null, null, Evictions.DROPPED, Marks.CLEAN, true);
                }
            }
            return 0L;
        });
    }

    private static long gcd(long a, long b) {
        while (b != 0) {
            long t = a % b;
            a = b;
            b = t;
        }
        return a;
    }

    /**
     * Writes row {@code j} of {@code rows} to row {@code index[j]} of {@code out} and sets byte
     * {@code index[j]} of {@code found} to 1, for {@code j < n} (int32 indices, all on this table's
     * device). The store uses it to merge rows read from the tiers below into a device output.
     */
    public void scatterRows(CUdeviceptr rows, CUdeviceptr index, long n, CUdeviceptr out, CUdeviceptr found) {
        call(() -> {
            kernels.launch("mlkv_scatter_rows", n * dim, BLOCK, stream, rows, index, n, dim, out);
            kernels.launch("mlkv_set_flags", n, BLOCK, stream, index, n, found);
            sync("scatter rows (n=" + n + ")");
            return 0L;
        });
    }

    /**
     * Writes row {@code index[j]} of {@code rows} to row {@code j} of {@code out}, for
     * {@code j < n} (int32 indices, all on this table's device): the inverse of
     * {@link #scatterRows}. The store uses it to compact rows it read into device memory before
     * installing them.
     */
    public void gatherRows(CUdeviceptr rows, CUdeviceptr index, long n, CUdeviceptr out) {
        call(() -> {
            kernels.launch("mlkv_gather_rows", n * dim, BLOCK, stream, rows, index, n, dim, out);
            sync("gather rows (n=" + n + ")");
            return 0L;
        });
    }

    /** Erases {@code n} keys; returns how many were present. */
    public long erase(CUdeviceptr keysIn, long n) {
        return call(() -> {
            kernels.launch("mlkv_erase", n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(),
                    counters.at(COUNTER_SIZE * 8L), buckets - 1, keysIn, n, counters.at(COUNTER_ERASED * 8L));
            return readCounters()[COUNTER_ERASED];
        });
    }

    /**
     * Copies the entries in slots {@code [offset, offset + count)} to the outputs, compacted;
     * walking offsets 0, count, 2 x count, ... up to {@link #capacity()} visits every entry once.
     *
     * @param outScores may be null
     * @return entries written
     */
    public long exportBatch(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues, CUdeviceptr outScores) {
        if (offset < 0 || count < 0 || offset + count > capacity) {
            throw new IllegalArgumentException("export range [" + offset + ", " + (offset + count)
                    + ") is outside the table's " + capacity + " slots");
        }
        return call(() -> launchExport(offset, count, outKeys, outValues, outScores));
    }

    /**
     * Makes the table's CUDA context current on the calling thread, for callers that allocate
     * device memory or copy data to pass to the device-pointer API.
     */
    public void makeDeviceCurrent() {
        device.makeCurrent();
    }

    /** Removes every entry. */
    public void clear() {
        call(() -> {
            clearLocked();
            return 0L;
        });
    }

    // ------------------------------------------------------------------ host-array API

    /**
     * Looks up a batch; rows of missing keys in {@code out} are left untouched.
     *
     * @return the number of keys found
     */
    public int find(long[] batch, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("find", batch, out, dim);
        BatchChecks.checkFlags("find", "found", batch, found);
        checkKeys("find", batch);
        return (int) call(() -> pipelinedFind(batch, out, found, readTouch()));
    }

    /**
     * {@link #find(long[], float[], boolean[])} that never changes scores, whatever
     * {@link #scoreReads(boolean)} says: for an owner's own reads (checks, write-backs) that
     * should not count as use.
     */
    public int peek(long[] batch, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("peek", batch, out, dim);
        BatchChecks.checkFlags("peek", "found", batch, found);
        checkKeys("peek", batch);
        return (int) call(() -> pipelinedFind(batch, out, found, -1));
    }

    /**
     * Find through the two halves of the staging buffers in turn, so that packing one piece's keys
     * and unpacking another's rows on the CPU overlap the copies and the kernel of the piece in
     * between: keys go in on {@link #copyStream}, the kernel runs on {@link #stream} once they are
     * there, results come back on {@link #copyStream} once it is done. Caller holds the lock.
     */
    private long pipelinedFind(long[] batch, float[] out, boolean[] found, int touch) {
        int piece = Math.max(1, stagingKeys / 2);
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
                hits += staging.unpackFoundRows(h * piece, from, n, dim, out, found);
            }
            if (p >= pieces) {
                continue;
            }
            int h = p & 1;
            int from = p * piece;
            int n = Math.min(piece, batch.length - from);
            long at = (long) h * piece;
            CUevent[] ev = pipeEvents[h];
            staging.hKeys.buffer().asLongBuffer().put((int) at, batch, from, n);
            Cuda.check(cuMemcpyHtoDAsync(staging.dKeys.at(at * 8), staging.hKeys.pointer().withByteOffset(at * 8),
                    n * 8L, copyStream), "cuMemcpyHtoDAsync (keys)");
            Cuda.check(cuEventRecord(ev[0], copyStream), "cuEventRecord");
            Cuda.check(cuStreamWaitEvent(stream, ev[0], 0), "cuStreamWaitEvent");
            launchFind(staging.dKeys.at(at * 8), n, staging.dValuesOut.at(at * rowBytes), staging.dFlags.at(at), null, null,
                    touch);
            Cuda.check(cuEventRecord(ev[1], stream), "cuEventRecord");
            Cuda.check(cuStreamWaitEvent(copyStream, ev[1], 0), "cuStreamWaitEvent");
            Cuda.check(cuMemcpyDtoHAsync(staging.hValuesOut.pointer().withByteOffset(at * rowBytes),
                    staging.dValuesOut.at(at * rowBytes), n * rowBytes, copyStream), "cuMemcpyDtoHAsync (values)");
            Cuda.check(cuMemcpyDtoHAsync(staging.hFlags.pointer().withByteOffset(at), staging.dFlags.at(at), n,
                    copyStream), "cuMemcpyDtoHAsync (flags)");
            Cuda.check(cuEventRecord(ev[2], copyStream), "cuEventRecord");
        }
        return hits;
    }

    /** Writes {@code out[i]} = whether {@code batch[i]} is present; returns the number present. */
    public int containsKeys(long[] batch, boolean[] out) {
        BatchChecks.checkKeys("contains", batch);
        BatchChecks.checkFlags("contains", "out", batch, out);
        checkKeys("contains", batch);
        return (int) call(() -> {
            long present = 0;
            for (int from = 0; from < batch.length; from += stagingKeys) {
                int n = Math.min(stagingKeys, batch.length - from);
                staging.putKeys(batch, from, n, stream);
                kernels.launchPacked("mlkv_contains", TableKernelArgs.CONTAINS, (long) n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(),
                        buckets - 1, staging.dKeys.pointer(), (long) n, staging.dFlags.pointer());
                staging.fetchFlags(n, stream);
                sync("contains (n=" + n + ")");
                present += staging.unpackFlags(from, n, out);
            }
            return present;
        });
    }

    /** Inserts or overwrites; evicted entries are dropped. {@code scoresIn} is required for CUSTOM, else ignored. */
    public void insertOrAssign(long[] batch, float[] rows, long[] scoresIn) {
        hostUpsert("insertOrAssign", MODE_ASSIGN, batch, rows, scoresIn, null, null, null);
    }

    /**
     * Inserts or overwrites, returning every evicted entry in the {@code evicted*} arrays (each
     * with room for {@code batch.length} entries; {@code evictedScores} may be null).
     *
     * @return the number of evicted entries
     */
    public int insertAndEvict(long[] batch, float[] rows, long[] scoresIn, long[] evictedKeys, float[] evictedValues,
            long[] evictedScores) {
        if (evictedKeys == null || evictedKeys.length < batch.length || evictedValues == null
                || (long) evictedValues.length < (long) batch.length * dim
                || (evictedScores != null && evictedScores.length < batch.length)) {
            throw new IllegalArgumentException("insertAndEvict: evicted arrays need room for keys.length = "
                    + (batch == null ? 0 : batch.length) + " entries");
        }
        return (int) hostUpsert("insertAndEvict", MODE_ASSIGN, batch, rows, scoresIn, null,
                null, new Evicted(evictedKeys, evictedValues, evictedScores, null));
    }

    /**
     * Returns every key's value in {@code out}, inserting absent keys with their row of
     * {@code initRows} first; {@code found} (may be null) tells which existed.
     */
    public void findOrInsert(long[] batch, float[] initRows, long[] scoresIn, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("findOrInsert", batch, out, dim);
        hostUpsert("findOrInsert", MODE_FIND_OR_INSERT, batch, initRows, scoresIn, out, found, null);
    }

    /** Overwrites existing keys only; {@code found} (may be null) tells which existed. */
    public void assign(long[] batch, float[] rows, long[] scoresIn, boolean[] found) {
        hostUpsert("assign", MODE_ASSIGN_ONLY, batch, rows, scoresIn, null, found, null);
    }

    /** {@link #assign(long[], float[], long[], boolean[])} that marks every entry it writes dirty. */
    public void assignDirty(long[] batch, float[] rows, boolean[] found) {
        hostUpsert("assignDirty", MODE_ASSIGN_ONLY, batch, rows, null, null, found, null, Marks.DIRTY);
    }

    /**
     * {@link #installAbsent(CUdeviceptr, CUdeviceptr, long, EntryState, Evictions)} of clean rows
     * from host arrays: absent keys are inserted, present ones left as they are; every evicted
     * entry is returned in the {@code evicted*} arrays (room for {@code batch.length} each) with
     * its dirty mark.
     *
     * @return the number of evicted entries
     */
    public int installAbsent(long[] batch, float[] rows, long[] evictedKeys, float[] evictedValues,
            boolean[] evictedDirty) {
        if (evictedKeys == null || evictedKeys.length < batch.length || evictedValues == null
                || (long) evictedValues.length < (long) batch.length * dim || evictedDirty == null
                || evictedDirty.length < batch.length) {
            throw new IllegalArgumentException("installAbsent: evicted arrays need room for keys.length = "
                    + (batch == null ? 0 : batch.length) + " entries");
        }
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("installAbsent scores by the clock; a ScoreMode.CUSTOM table needs scores");
        }
        return (int) hostUpsert("installAbsent", MODE_INSERT_ABSENT, batch, rows, null, null, null,
                new Evicted(evictedKeys, evictedValues, null, evictedDirty), Marks.CLEAN);
    }

    /** Adds deltas in place; absent keys are inserted as their delta. */
    public void accumOrAssign(long[] batch, float[] deltas, long[] scoresIn) {
        hostUpsert("accumOrAssign", MODE_ACCUM, batch, deltas, scoresIn, null, null, null);
    }

    /** Erases keys; returns how many were present. */
    public long erase(long[] batch) {
        BatchChecks.checkKeys("erase", batch);
        checkKeys("erase", batch);
        return call(() -> {
            long erased = 0;
            for (int from = 0; from < batch.length; from += stagingKeys) {
                int n = Math.min(stagingKeys, batch.length - from);
                staging.putKeys(batch, from, n, stream);
                kernels.launch("mlkv_erase", (long) n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(),
                        counters.at(COUNTER_SIZE * 8L), buckets - 1, staging.dKeys.pointer(), (long) n,
                        counters.at(COUNTER_ERASED * 8L));
                erased += readCounters()[COUNTER_ERASED];
            }
            return erased;
        });
    }

    /**
     * Copies the entries of slots {@code [offset, offset + count)}, compacted, into the arrays
     * ({@code count <= stagingKeys()}; {@code outScores} may be null).
     *
     * @return entries copied
     */
    public int exportBatch(long offset, int count, long[] outKeys, float[] outValues, long[] outScores) {
        if (count > stagingKeys) {
            throw new IllegalArgumentException("exportBatch: count " + count + " exceeds stagingKeys " + stagingKeys);
        }
        if (offset < 0 || count < 0 || offset + count > capacity) {
            throw new IllegalArgumentException("export range [" + offset + ", " + (offset + count)
                    + ") is outside the table's " + capacity + " slots");
        }
        return (int) call(() -> {
            long n = launchExport(offset, count, staging.dKeys.pointer(), staging.dValuesOut.pointer(),
                    staging.dScores.pointer());
            staging.fetchExport((int) n, dim, stream);
            sync("exportBatch");
            staging.unpackExport((int) n, dim, outKeys, outValues, outScores);
            return n;
        });
    }

    // ------------------------------------------------------------------ VectorTier

    @Override
    public int multiGet(long[] batch, float[] out, boolean[] found) {
        return find(batch, out, found);
    }

    /** Inserts or overwrites; as a plain tier, entries evicted to make room are dropped. */
    @Override
    public void multiPut(long[] batch, float[] rows) {
        insertOrAssign(batch, rows, null);
    }

    @Override
    public void multiDelete(long[] batch) {
        erase(batch);
    }

    @Override
    public int contains(long[] batch, boolean[] out) {
        return containsKeys(batch, out);
    }

    @Override
    public long size() {
        return call(() -> readCounters()[COUNTER_SIZE]);
    }

    /** Walks the table in pages of {@link #stagingKeys()} slots; not a point-in-time view. */
    @Override
    public void forEach(VectorVisitor visitor) {
        long[] pageKeys = new long[stagingKeys];
        float[] pageValues = new float[stagingKeys * dim];
        float[] row = new float[dim];
        for (long offset = 0; offset < capacity; offset += stagingKeys) {
            int count = (int) Math.min(stagingKeys, capacity - offset);
            int n = exportBatch(offset, count, pageKeys, pageValues, null);
            for (int i = 0; i < n; i++) {
                System.arraycopy(pageValues, i * dim, row, 0, dim);
                visitor.visit(pageKeys[i], row);
            }
        }
    }

    /** Frees the table's device and pinned memory, its stream, module and context reference. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            device.makeCurrent();
            RuntimeException failure = null;
            try {
                Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (close)");
                if (unreadCounts) {
                    takeUnreadCounts();
                }
            } catch (RuntimeException e) {
                failure = e;
            }
            releaseAll(failure);
            if (failure != null) {
                throw failure;
            }
        } finally {
            lock.unlock();
        }
    }

    // ------------------------------------------------------------------ internals

    private interface Call {
        long run();
    }

    private long call(Call body) {
        lock.lock();
        try {
            if (closed.get()) {
                throw new IllegalStateException("GPU table is closed");
            }
            device.makeCurrent();
            return body.run();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Frees everything the table owns, in reverse order of allocation, then its events, streams
     * and device context; every release runs even if one fails. Throws the first failure (later
     * ones suppressed), added to {@code first} when the caller is already failing with it.
     */
    private void releaseAll(RuntimeException first) {
        List<AutoCloseable> releases = new ArrayList<>(owned);
        java.util.Collections.reverse(releases);
        owned.clear();
        for (CUevent[] half : pipeEvents) {
            for (CUevent e : half) {
                if (e != null) {
                    releases.add(() -> Cuda.check(cuEventDestroy(e), "cuEventDestroy (copy pipeline)"));
                }
            }
        }
        releases.add(() -> Cuda.check(cuStreamDestroy(copyStream), "cuStreamDestroy (copies)"));
        releases.add(() -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy"));
        releases.add(device);
        try {
            CloseHelper.closeAll(releases);
        } catch (RuntimeException e) {
            if (first == null) {
                throw e;
            }
            if (e != first) {
                first.addSuppressed(e);
            }
        }
    }

    private void checkKeys(String op, long[] batch) {
        ReservedKeys.check(op, batch);
    }

    private void checkScores(String op, long[] batch, long[] scoresIn) {
        if (scoreMode == ScoreMode.CUSTOM && (scoresIn == null || scoresIn.length < batch.length)) {
            throw new IllegalArgumentException(op + ": ScoreMode.CUSTOM needs one score per key");
        }
    }

    /** Host arrays for what a host-array upsert evicts; {@code scores} and {@code dirty} may be null. */
    private record Evicted(long[] keys, float[] values, long[] scores, boolean[] dirty) {
    }

    /**
     * Where an upsert writes the entries it evicts (device memory, room for the batch); null
     * {@code keys}: dropped and counted. {@code scores} and {@code dirty} (one byte each, the
     * entry's dirty mark) may be null.
     */
    public record Evictions(CUdeviceptr keys, CUdeviceptr values, CUdeviceptr scores, CUdeviceptr dirty) {
        /** Evicted entries are dropped (and counted in {@link GpuHashTable#evictions()}). */
        public static final Evictions DROPPED = new Evictions(null, null, null, null);

        /** Keys, rows and dirty marks of the evicted entries. */
        public static Evictions withMarks(CUdeviceptr keys, CUdeviceptr values, CUdeviceptr dirty) {
            return new Evictions(keys, values, null, dirty);
        }
    }

    /**
     * How an upsert treats dirty marks: whether the entries it writes become dirty, and where
     * {@code mlkv_assign_only} reports the keys it does not find (null: nowhere).
     */
    private record Marks(boolean dirty, CUdeviceptr missedKeys, CUdeviceptr missedIndex) {
        static final Marks CLEAN = new Marks(false, null, null);
        static final Marks DIRTY = new Marks(true, null, null);

        static Marks reportingMisses(boolean dirty, CUdeviceptr missedKeys, CUdeviceptr missedIndex) {
            return new Marks(dirty, missedKeys, missedIndex);
        }
    }

    private long hostUpsert(String op, int mode, long[] batch, float[] rows, long[] scoresIn, float[] out,
            boolean[] found, Evicted evicted) {
        return hostUpsert(op, mode, batch, rows, scoresIn, out, found, evicted, Marks.CLEAN);
    }

    private long hostUpsert(String op, int mode, long[] batch, float[] rows, long[] scoresIn, float[] out,
            boolean[] found, Evicted evicted, Marks marks) {
        BatchChecks.checkRows(op, batch, rows, dim);
        if (found != null) {
            BatchChecks.checkFlags(op, "found", batch, found);
        }
        checkKeys(op, batch);
        checkScores(op, batch, scoresIn);
        return call(() -> {
            long evictedCount = 0;
            for (int from = 0; from < batch.length; from += stagingKeys) {
                int n = Math.min(stagingKeys, batch.length - from);
                staging.putKeys(batch, from, n, stream);
                staging.putRows(rows, from, n, dim, stream);
                boolean custom = scoreMode == ScoreMode.CUSTOM;
                if (custom) {
                    staging.putScores(scoresIn, from, n, stream);
                }
                long e = upsert(mode, staging.dKeys.pointer(), staging.dValuesIn.pointer(),
                        custom ? staging.dScores.pointer() : null, n,
                        out == null ? null : staging.dValuesOut.pointer(),
                        found == null ? null : staging.dFlags.pointer(),
                        evicted == null ? Evictions.DROPPED : new Evictions(staging.dEvictKeys.pointer(),
                                staging.dEvictValues.pointer(), staging.dEvictScores.pointer(),
                                evicted.dirty() == null ? null : staging.dEvictDirty.pointer()),
                        marks, true);
                if (out != null) {
                    staging.fetchValues(n, dim, stream);
                }
                if (found != null) {
                    staging.fetchFlags(n, stream);
                }
                if (evicted != null) {
                    staging.fetchEvicted((int) e, dim, stream);
                }
                sync(op + " (n=" + n + ")");
                if (out != null) {
                    staging.unpackRows(from, n, dim, out);
                }
                if (found != null) {
                    staging.unpackFlags(from, n, found);
                }
                if (evicted != null) {
                    staging.unpackEvicted((int) e, (int) evictedCount, dim, evicted);
                }
                evictedCount += e;
            }
            return evictedCount;
        });
    }

    /**
     * Runs an upsert and (with {@code wait}) waits; returns entries evicted by it, or 0 without
     * {@code wait} (the counts are then added up on the GPU, for {@link #foldUnreadCounts}).
     * Unless callers promised {@link #uniqueKeys unique keys}, assigning modes go in chunks of
     * {@link #dedupChunk} keys, and the last occurrence of a key repeated in a chunk wins:
     * with LRU scores and a waiting call, every occurrence writes, the kernel reports whether a key
     * repeated, and only then are the repeated keys marked and their last rows written again
     * ({@link #repairRepeats}); otherwise each chunk is marked first ({@code mlkv_dedup}) and only
     * last occurrences write. Caller holds the lock.
     */
    private long upsert(int mode, CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n,
            CUdeviceptr out, CUdeviceptr found, Evictions evictions, Marks marks, boolean wait) {
        if (scoreMode == ScoreMode.CUSTOM && scoresIn == null) {
            throw new IllegalArgumentException("ScoreMode.CUSTOM needs one score per key");
        }
        boolean repeats = !uniqueKeys && (mode == MODE_ASSIGN || mode == MODE_ASSIGN_ONLY);
        boolean repair = repeats && wait && scoreMode == ScoreMode.LRU;
        boolean mark = repeats && !repair;
        long step = repeats ? dedupChunk : Math.max(1, n);
        long rowBytes = dim * 4L;
        long evicted = 0;
        for (long from = 0; from < n; from += step) {
            long m = Math.min(step, n - from);
            CUdeviceptr k = offset(keysIn, from * 8);
            CUdeviceptr v = offset(valuesIn, from * rowBytes);
            if (mark) {
                markRepeats(k, m);
            }
            if (repair) {
                repeatSeen.buffer().putLong(0, 0);  // the stream is idle: every call ends waiting
            }
            Evictions at = new Evictions(offset(evictions.keys(), evicted * 8),
                    offset(evictions.values(), evicted * rowBytes), offset(evictions.scores(), evicted * 8),
                    offset(evictions.dirty(), evicted));
            // Misses (assign only) are reported at the chunk's place in the batch.
            Marks chunkMarks = new Marks(marks.dirty(), offset(marks.missedKeys(), evicted * 8),
                    offset(marks.missedIndex(), evicted * 4));
            evicted += upsertLaunch(mode, mark, repair, k, v, offset(scoresIn, from * 8), m, offset(out, from * rowBytes),
                    offset(found, from), at, chunkMarks, from, wait);
            if (mark) {
                kernels.launchPacked("mlkv_dedup_reset", TableKernelArgs.DEDUP, Math.min(dedupMask + 1, 1L << 20), BLOCK, stream,
                        dedupArgs(k, m));
            } else if (repair && repeatSeen.buffer().getLong(0) != 0) {
                repairRepeats(k, v, m);
            }
        }
        return evicted;
    }

    /** Steps 1 and 2 of the kernels' repeated-key handling: the set, and marks if a key repeats. */
    private void markRepeats(CUdeviceptr keysIn, long n) {
        dedupEpoch++;
        kernels.launchPacked("mlkv_dedup", TableKernelArgs.DEDUP, n, BLOCK, stream, dedupArgs(keysIn, n));
        kernels.launchPacked("mlkv_dedup_win", TableKernelArgs.DEDUP, n, BLOCK, stream, dedupArgs(keysIn, n));
    }

    /**
     * After an upsert that reported a repeated key: marks the chunk, writes the row of each
     * repeated key's last occurrence again, empties the set, and waits.
     */
    private void repairRepeats(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n) {
        markRepeats(keysIn, n);
        kernels.launchPacked("mlkv_dedup_rewrite", TableKernelArgs.REWRITE, n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(),
                values.pointer(), buckets - 1, dim, keysIn, valuesIn, n, dedupSlot.pointer(), dedupWin.pointer(),
                dedupRepeated.pointer(), dedupFlag.pointer(), dedupEpoch);
        kernels.launchPacked("mlkv_dedup_reset", TableKernelArgs.DEDUP, Math.min(dedupMask + 1, 1L << 20), BLOCK, stream, dedupArgs(keysIn, n));
        sync("rewrite of repeated keys (n=" + n + ")");
    }

    /**
     * The arguments of the repeated-key kernels ({@code DedupArgs}). After each use,
     * {@code mlkv_dedup_reset} empties the set with streaming writes: cheaper than each winner
     * clearing its own entry with scattered ones.
     */
    private Object[] dedupArgs(CUdeviceptr keysIn, long n) {
        return new Object[] {keysIn, n, dedupKeys.pointer(), dedupWin.pointer(), dedupMask, dedupSlot.pointer(),
            dedupFlag.pointer(), dedupEpoch, dedupRepeated.pointer()};
    }

    /** Empties the repeated-key scratch set (keys ReservedKeys.EMPTY, positions -1, marks 0) and zeroes its flag. */
    private void emptyDedup() {
        long slots = dedupMask + 1;
        kernels.launch("mlkv_fill_u64", Math.min(slots, 1L << 20), BLOCK, stream, dedupKeys.pointer(), ReservedKeys.EMPTY, slots);
        Cuda.check(cuMemsetD8Async(dedupWin.pointer(), (byte) 0xFF, slots * 4, stream), "cuMemsetD8Async (dedup scratch)");
        Cuda.check(cuMemsetD8Async(dedupRepeated.pointer(), (byte) 0, slots, stream), "cuMemsetD8Async (dedup marks)");
        Cuda.check(cuMemsetD8Async(dedupFlag.pointer(), (byte) 0, 8, stream), "cuMemsetD8Async (dedup flag)");
    }

    private static CUdeviceptr offset(CUdeviceptr p, long bytes) {
        return p == null ? null : p.withByteOffset(bytes);
    }

    /**
     * Launches one upsert chunk: with {@code mark}, after {@link #markRepeats}; with
     * {@code detect}, reporting repeated keys in {@link #repeatSeen}. With {@code wait}, waits and
     * returns the entries it evicted; without, returns 0 (counts folded in later).
     */
    private long upsertLaunch(int mode, boolean mark, boolean detect, CUdeviceptr keysIn, CUdeviceptr valuesIn,
            CUdeviceptr scoresIn, long n, CUdeviceptr out, CUdeviceptr found, Evictions evicted, Marks marks,
            long indexBase, boolean wait) {
        CUdeviceptr dedupSlotArg = mark ? dedupSlot.pointer() : null;
        CUdeviceptr dedupWinArg = mark ? dedupWin.pointer() : null;
        CUdeviceptr dedupFlagArg = mark ? dedupFlag.pointer() : null;
        CUdeviceptr repeatsArg = detect ? repeatSeen.devicePointer() : null;
        clock++;
        if (mode == MODE_ASSIGN_ONLY) {
            // Never inserts, evicts or rejects: the only counter to read back is the misses reported.
            kernels.launchPacked("mlkv_assign_only", TableKernelArgs.ASSIGN, n * TILE, BLOCK, stream, keys.pointer(), scores.pointer(),
                    digests.pointer(), values.pointer(), dedupSlotArg, dedupWinArg, dedupFlagArg, dedupEpoch,
                    buckets - 1, dim, scoreMode.code, clock, keysIn, valuesIn, scoresIn, n, found, repeatsArg,
                    marks.dirty() ? dirty.pointer() : null, marks.missedKeys(), marks.missedIndex(),
                    counters.at(COUNTER_MISSED * 8L), indexBase);
            if (marks.missedKeys() != null) {
                return readCounters()[COUNTER_MISSED];
            }
            sync("assign (n=" + n + ")");
            return 0;
        }
        kernels.launchPacked("mlkv_upsert", TableKernelArgs.UPSERT, n * TILE, BLOCK, stream, keys.pointer(), scores.pointer(), digests.pointer(),
                values.pointer(), dedupSlotArg, dedupWinArg, dedupFlagArg, dedupEpoch, bucketLocks.pointer(),
                counters.at(COUNTER_SIZE * 8L), buckets - 1, dim, mode,
                scoreMode.code, clock, keysIn, valuesIn, scoresIn, n, out, found, evicted.keys(), evicted.values(),
                evicted.scores(), counters.at(COUNTER_EVICTED * 8L), counters.at(COUNTER_REJECTED * 8L), repeatsArg,
                dirty.pointer(), marks.dirty() ? 1L : 0L, evicted.dirty());
        if (!wait) {
            // Evicted and rejected, in this order at both places.
            kernels.launch("mlkv_add_u64", 2, BLOCK, stream, counters.at(COUNTER_EVICTED * 8L),
                    counters.at(COUNTER_UNREAD_EVICTED * 8L), 2);
            zeroCallCounters();
            unreadCounts = true;
            return 0;
        }
        long[] c = readCounters();
        evictedTotal += c[COUNTER_EVICTED];
        rejectedTotal += c[COUNTER_REJECTED];
        return c[COUNTER_EVICTED];
    }

    /**
     * The find kernel's {@code touch} argument for one find call: -1 (scores untouched) or the
     * score mode whose hit rule it applies; advances the clock when it touches. Caller holds the lock.
     */
    private int readTouch() {
        if (!scoreReads || scoreMode == ScoreMode.CUSTOM) {
            return -1;
        }
        clock++;
        return scoreMode.code;
    }

    private void launchFind(CUdeviceptr keysIn, long n, CUdeviceptr out, CUdeviceptr found, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex, int touch) {
        kernels.launchPacked("mlkv_find", TableKernelArgs.FIND, n * TILE, BLOCK, stream, keys.pointer(), digests.pointer(), values.pointer(),
                buckets - 1, dim, keysIn, n, out, found, null, scores.pointer(), missedKeys, missedIndex,
                counters.at(COUNTER_MISSED * 8L), touch, clock);
    }

    private long launchExport(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues,
            CUdeviceptr outScores) {
        kernels.launch("mlkv_export", count, BLOCK, stream, keys.pointer(), scores.pointer(), values.pointer(), dim,
                offset, count, outKeys, outValues, outScores, counters.at(COUNTER_EXPORTED * 8L));
        return readCounters()[COUNTER_EXPORTED];
    }

    /**
     * Adds the counts of inserts that returned without waiting to the totals, and zeroes them on
     * the device. Caller holds the lock; waits for the stream if there are any.
     */
    private void foldUnreadCounts() {
        if (!unreadCounts || closed.get()) {
            return;
        }
        device.makeCurrent();
        takeUnreadCounts();
        Cuda.check(cuMemsetD8Async(counters.at(COUNTER_UNREAD_EVICTED * 8L), (byte) 0, 16, stream),
                "cuMemsetD8Async (unread counters)");
    }

    /** Waits for the stream and adds the unread counters to the totals. Caller holds the lock, device current. */
    private void takeUnreadCounts() {
        long[] c = readCounters();
        evictedTotal += c[COUNTER_UNREAD_EVICTED];
        rejectedTotal += c[COUNTER_UNREAD_EVICTED + 1];
        unreadCounts = false;
    }

    private void clearLocked() {
        foldUnreadCounts();
        kernels.launch("mlkv_clear", Math.min(capacity, 1L << 24), BLOCK, stream, keys.pointer(), digests.pointer(),
                scores.pointer(), capacity);
        Cuda.check(cuMemsetD8Async(bucketLocks.pointer(), (byte) 0, buckets * 4, stream), "cuMemsetD8Async (bucket locks)");
        Cuda.check(cuMemsetD8Async(dirty.pointer(), (byte) 0, capacity, stream), "cuMemsetD8Async (dirty marks)");
        Cuda.check(cuMemsetD8Async(counters.pointer(), (byte) 0, COUNTERS * 8, stream), "cuMemsetD8Async (counters)");
        sync("clear");
    }

    /**
     * Zeroes the per-call counters (evicted to erased) on the stream. Every call that can raise
     * them queues this once it has read them (or folded them into the unread ones), so they are
     * zero whenever a call starts, and the zeroing runs while the host is between calls instead
     * of ahead of the next call's kernel.
     */
    private void zeroCallCounters() {
        Cuda.check(cuMemsetD8Async(counters.at(COUNTER_EVICTED * 8L), (byte) 0, CALL_COUNTERS * 8, stream),
                "cuMemsetD8Async (call counters)");
    }

    /** Waits for the stream and returns the device counters, then zeroes the per-call ones. */
    private long[] readCounters() {
        Cuda.check(cuMemcpyDtoHAsync(countersHost.pointer(), counters.pointer(), COUNTERS * 8, stream),
                "cuMemcpyDtoHAsync (counters)");
        sync("read counters");
        long[] c = new long[COUNTERS];
        countersHost.buffer().asLongBuffer().get(c);
        zeroCallCounters();
        return c;
    }

    private void sync(String op) {
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after " + op);
    }

    /** Pinned host buffers and device buffers for one chunk of the host-array API. */
    private static final class Staging implements AutoCloseable {
        private final List<AutoCloseable> parts = new ArrayList<>();
        final PinnedMemory hKeys;
        final PinnedMemory hValuesIn;
        final PinnedMemory hValuesOut;
        final PinnedMemory hFlags;
        final PinnedMemory hScores;
        final PinnedMemory hEvictKeys;
        final PinnedMemory hEvictScores;
        final PinnedMemory hEvictDirty;
        final DeviceMemory dKeys;
        final DeviceMemory dValuesIn;
        final DeviceMemory dValuesOut;
        final DeviceMemory dFlags;
        final DeviceMemory dScores;
        final DeviceMemory dEvictKeys;
        final DeviceMemory dEvictValues;
        final DeviceMemory dEvictScores;
        final DeviceMemory dEvictDirty;

        Staging(int n, int dim) {
            long rows = (long) n * dim * 4;
            try {
                hKeys = add(new PinnedMemory(n * 8L, "staged keys"));
                hValuesIn = add(new PinnedMemory(rows, "staged input values"));
                hValuesOut = add(new PinnedMemory(rows, "staged output values"));
                hFlags = add(new PinnedMemory(n, "staged flags"));
                hScores = add(new PinnedMemory(n * 8L, "staged scores"));
                hEvictKeys = add(new PinnedMemory(n * 8L, "staged evicted keys"));
                hEvictScores = add(new PinnedMemory(n * 8L, "staged evicted scores"));
                hEvictDirty = add(new PinnedMemory(n, "staged evicted dirty marks"));
                dKeys = add(new DeviceMemory(n * 8L, "staged keys"));
                dValuesIn = add(new DeviceMemory(rows, "staged input values"));
                dValuesOut = add(new DeviceMemory(rows, "staged output values"));
                dFlags = add(new DeviceMemory(n, "staged flags"));
                dScores = add(new DeviceMemory(n * 8L, "staged scores"));
                dEvictKeys = add(new DeviceMemory(n * 8L, "staged evicted keys"));
                dEvictValues = add(new DeviceMemory(rows, "staged evicted values"));
                dEvictScores = add(new DeviceMemory(n * 8L, "staged evicted scores"));
                dEvictDirty = add(new DeviceMemory(n, "staged evicted dirty marks"));
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        private <T extends AutoCloseable> T add(T t) {
            parts.add(t);
            return t;
        }

        void putKeys(long[] src, int from, int n, CUstream stream) {
            hKeys.buffer().asLongBuffer().put(src, from, n);
            Cuda.check(cuMemcpyHtoDAsync(dKeys.pointer(), hKeys.pointer(), n * 8L, stream), "cuMemcpyHtoDAsync (keys)");
        }

        void putScores(long[] src, int from, int n, CUstream stream) {
            hScores.buffer().asLongBuffer().put(src, from, n);
            Cuda.check(cuMemcpyHtoDAsync(dScores.pointer(), hScores.pointer(), n * 8L, stream), "cuMemcpyHtoDAsync (scores)");
        }

        void putRows(float[] src, int from, int n, int dim, CUstream stream) {
            hValuesIn.buffer().asFloatBuffer().put(src, from * dim, n * dim);
            Cuda.check(cuMemcpyHtoDAsync(dValuesIn.pointer(), hValuesIn.pointer(), (long) n * dim * 4, stream),
                    "cuMemcpyHtoDAsync (values)");
        }

        void fetchValues(int n, int dim, CUstream stream) {
            Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer(), dValuesOut.pointer(), (long) n * dim * 4, stream),
                    "cuMemcpyDtoHAsync (values)");
        }

        void fetchFlags(int n, CUstream stream) {
            Cuda.check(cuMemcpyDtoHAsync(hFlags.pointer(), dFlags.pointer(), n, stream), "cuMemcpyDtoHAsync (flags)");
        }

        void fetchEvicted(int n, int dim, CUstream stream) {
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

        void fetchExport(int n, int dim, CUstream stream) {
            if (n == 0) {
                return;
            }
            Cuda.check(cuMemcpyDtoHAsync(hKeys.pointer(), dKeys.pointer(), n * 8L, stream), "cuMemcpyDtoHAsync (export keys)");
            Cuda.check(cuMemcpyDtoHAsync(hValuesOut.pointer(), dValuesOut.pointer(), (long) n * dim * 4, stream),
                    "cuMemcpyDtoHAsync (export values)");
            Cuda.check(cuMemcpyDtoHAsync(hScores.pointer(), dScores.pointer(), n * 8L, stream),
                    "cuMemcpyDtoHAsync (export scores)");
        }

        /**
         * Copies found rows only (missing rows of {@code out} stay untouched), in runs of found rows,
         * from staging positions {@code [at, at + n)} to batch positions {@code [from, from + n)}.
         */
        int unpackFoundRows(int at, int from, int n, int dim, float[] out, boolean[] found) {
            ByteBuffer flags = hFlags.buffer();
            flags.position(at);
            flags = flags.slice();
            java.nio.FloatBuffer rows = hValuesOut.buffer().asFloatBuffer();
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

        int unpackFlags(int from, int n, boolean[] out) {
            ByteBuffer flags = hFlags.buffer();
            int set = 0;
            for (int i = 0; i < n; i++) {
                out[from + i] = flags.get(i) != 0;
                set += out[from + i] ? 1 : 0;
            }
            return set;
        }

        void unpackRows(int from, int n, int dim, float[] out) {
            hValuesOut.buffer().asFloatBuffer().get(out, from * dim, n * dim);
        }

        void unpackEvicted(int n, int at, int dim, Evicted to) {
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

        void unpackExport(int n, int dim, long[] keys, float[] vals, long[] scores) {
            hKeys.buffer().asLongBuffer().get(keys, 0, n);
            hValuesOut.buffer().asFloatBuffer().get(vals, 0, n * dim);
            if (scores != null) {
                hScores.buffer().asLongBuffer().get(scores, 0, n);
            }
        }

        @Override
        public void close() {
            List<AutoCloseable> reversed = new ArrayList<>(parts);
            java.util.Collections.reverse(reversed);
            parts.clear();
            CloseHelper.closeAll(reversed);
        }
    }
}
