package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import org.agrona.CloseHelper;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
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

    /** Threads per key in the table's kernels. */
    static final int TILE = 8;
    private final int dim;
    private final long buckets;
    private final long capacity;
    private final ScoreMode scoreMode;
    private final int stagingKeys;
    private final CudaDevice device;
    private final Kernels kernels;
    private final CUstream stream = new CUstream();
    private final OwnedResources owned = new OwnedResources();
    private final TableCore core;
    private final HostStaging staging;
    private final ReservedKeyChecks reservedChecks;
    private final ReentrantLock lock = new ReentrantLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    /**
     * Whether {@link #firstReservedKey} runs on streams of its own, without the table's lock
     * ({@link ReservedKeyChecks}); {@code -Dmlkv.reservedCheckOnOwnStream=false} runs it on the
     * table's stream under the lock, as before.
     */
    private static final boolean RESERVED_CHECK_ON_OWN_STREAM =
            !"false".equals(System.getProperty("mlkv.reservedCheckOnOwnStream"));
    /** Whether finds refresh the scores of the keys they find; see {@link #scoreReads(boolean)}. */
    private volatile boolean scoreReads;
    /** The install {@link #installAbsentDeferred} holds back; guarded by {@link #lock}. */
    private DeferredInstall deferred;
    private final AtomicLong deferredQueued = new AtomicLong();
    private final AtomicLong deferredDropped = new AtomicLong();

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
            this.reservedChecks = owned.add(new ReservedKeyChecks(device, kernels));
            long tableBytes = TableCore.arrayBytes(capacity, buckets, dim);
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
            this.core = owned.add(new TableCore(dim, buckets, scoreMode, this.stagingKeys, kernels, stream));
            this.staging = owned.add(new HostStaging(this.stagingKeys, dim, stream));
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
        return create(dim, capacity, scoreMode, stagingKeys, 0);
    }

    /**
     * Creates a table on device {@code deviceOrdinal}; otherwise as {@link #create(int, long, ScoreMode, int)}.
     *
     * @throws IllegalArgumentException if the ordinal is negative
     * @throws MlkvException naming the ordinal if that device cannot be opened
     */
    public static GpuHashTable create(int dim, long capacity, ScoreMode scoreMode, int stagingKeys, int deviceOrdinal) {
        if (deviceOrdinal < 0) {
            throw new IllegalArgumentException("deviceOrdinal must not be negative, was " + deviceOrdinal);
        }
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
        return new GpuHashTable(dim, capacity, scoreMode, stagingKeys, deviceOrdinal);
    }

    /** {@link #create(int, long, ScoreMode, int)} with 256 Ki keys per staging chunk. */
    public static GpuHashTable create(int dim, long capacity, ScoreMode scoreMode) {
        return create(dim, capacity, scoreMode, 1 << 18);
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

    /** The ordinal of the CUDA device the table lives on. */
    public int deviceOrdinal() {
        return device.ordinal();
    }

    /** The CUDA device the table lives on. */
    public CudaDevice device() {
        return device;
    }

    /** The name of the device the table lives on. */
    public String deviceName() {
        return device.name();
    }

    /** Entries evicted (returned or dropped) since creation. */
    public long evictions() {
        lock.lock();
        try {
            foldUnreadCounts();
            return core.counters().evictedTotal();
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
        core.uniqueKeys(promised);
    }

    /**
     * Whether installs ({@link #installAbsent}, {@link #installAbsentAsync}) that bring on average
     * eight or more keys to each bucket are grouped by bucket: one warp per bucket installs that
     * bucket's newcomers in turn, instead of each newcomer taking the bucket's lock and scanning its
     * scores, which is what half a million installs into a full table of a million entries spend
     * their time on. On by default ({@code -Dmlkv.groupedInstalls=false} turns it off for every
     * table); the entries installed and evicted follow the same rules either way. Installs screened
     * by {@link #admitByFrequency()} are not grouped.
     */
    public void groupInstalls(boolean on) {
        core.groupInstalls(on);
    }

    /**
     * Turns on frequency admission: from now on every find that is not a {@link #peek} records its
     * keys in a count-min sketch of 4-bit counters (about 8 bytes per slot, halved after ten
     * lookups per slot so old popularity fades), and screened installs ({@link #installAbsent}
     * with {@code screened}) of clean rows into a full bucket replace its lowest-scored entry only
     * if the sketch has seen the newcomer more often (TinyLFU's rule). A key read once cannot push
     * out one read often, and keys of equal popularity stop displacing each other.
     */
    public void admitByFrequency() {
        call(() -> {
            core.admitByFrequency();
            return 0L;
        });
    }

    /** The admission sketch's words (see {@link io.mlkv.storage.policy.FrequencySketch#words()}), or null without one. */
    long[] admissionSketchWords() {
        long[][] words = new long[1][];
        call(() -> {
            words[0] = core.admissionSketch();
            return 0L;
        });
        return words[0];
    }

    /** Inserts refused since creation: a custom score below a full bucket's lowest, or frequency admission. */
    public long rejections() {
        lock.lock();
        try {
            foldUnreadCounts();
            return core.counters().rejectedTotal();
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
        return call(() -> core.find(keysIn, n, outValues, found, missedKeys, missedIndex, core.readTouch(scoreReads)));
    }

    /**
     * Looks up {@code n} keys, writing key {@code i}'s value to row {@code outIndex[i]} of
     * {@code outValues} and its 1/0 to byte {@code outIndex[i]} of {@code found} (int32 indices;
     * rows of keys not found untouched). The outputs may be on another device this table's device
     * has peer access to: a sharded table's shards write straight into the caller's batch order.
     */
    public void findInto(CUdeviceptr keysIn, long n, CUdeviceptr outIndex, CUdeviceptr outValues, CUdeviceptr found) {
        call(() -> {
            core.launchFind(keysIn, n, outIndex, outValues, found, null, null, core.readTouch(scoreReads));
            core.sync("find (n=" + n + ")");
            return 0L;
        });
    }

    /** Writes 1/0 to byte {@code i} of {@code found} for each of {@code n} keys. */
    public void contains(CUdeviceptr keysIn, long n, CUdeviceptr found) {
        call(() -> {
            core.launchContains(keysIn, n, found);
            core.sync("contains (n=" + n + ")");
            return 0L;
        });
    }

    /** Inserts or overwrites {@code n} rows; evicted entries are dropped. {@code scoresIn} only for CUSTOM. */
    public void insertOrAssign(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n) {
        call(() -> core.upsert(TableCore.MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null, Evictions.DROPPED, TableCore.Marks.CLEAN, true));
    }

    /**
     * Inserts or overwrites {@code n} rows, writing every entry evicted to make room to the
     * {@code evicted*} arrays (room for {@code n} entries each; {@code evictedScores} may be null).
     *
     * @return the number of evicted entries
     */
    public long insertAndEvict(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n,
            CUdeviceptr evictedKeys, CUdeviceptr evictedValues, CUdeviceptr evictedScores) {
        return call(() -> core.upsert(TableCore.MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null,
                new Evictions(evictedKeys, evictedValues, evictedScores, null), TableCore.Marks.CLEAN, true));
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
            core.upsert(TableCore.MODE_ASSIGN, keysIn, valuesIn, scoresIn, n, null, null, Evictions.DROPPED, TableCore.Marks.CLEAN, false);
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
        call(() -> core.upsert(TableCore.MODE_FIND_OR_INSERT, keysIn, initValues, scoresIn, n, outValues, found, Evictions.DROPPED, TableCore.Marks.CLEAN, true));
    }

    /** Overwrites the values of keys that exist; byte {@code i} of {@code found} (may be null) tells which. */
    public void assign(CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n, CUdeviceptr found) {
        call(() -> core.upsert(TableCore.MODE_ASSIGN_ONLY, keysIn, valuesIn, scoresIn, n, null, found, Evictions.DROPPED, TableCore.Marks.CLEAN, true));
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
        call(() -> core.accumulateExisting(keysIn, deltas, scoresIn, n, found, false, null, null));
    }

    // ------------------------------------------------------------------ dirty marks (a tier above others)

    /**
     * The lowest position of a reserved key ({@link ReservedKeys}) among {@code n} device keys, or
     * -1 if there is none: a device batch checked without copying it to the host. It does not
     * wait for the table's other calls, nor they for it: the check runs on a stream of its own.
     */
    public long firstReservedKey(CUdeviceptr keysIn, long n) {
        if (RESERVED_CHECK_ON_OWN_STREAM) {
            return n <= 0 ? -1 : reservedChecks.first(keysIn, n);
        }
        return call(() -> core.firstReservedKey(keysIn, n));
    }

    /**
     * {@link #assign} of the keys the table holds, which leaves each entry it writes in
     * {@code state} ({@link EntryState#CLEAN} leaves the marks as they are), and writes the keys it
     * does not find, with their batch positions (int32), compacted in no particular order, to
     * {@code missedKeys}/{@code missedIndex} (room for {@code n} each). Every occurrence of a
     * missed key is reported. Unless keys were promised unique, a key repeated in the batch is
     * marked before the write, whatever the score mode, so that only its last occurrence writes:
     * training batches carry hot keys, which the detection and repair of {@link #assign} would
     * have every occurrence write.
     *
     * @return the number of positions whose key was missed
     */
    public long assignHeld(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n, EntryState state, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex) {
        return call(() -> core.upsert(TableCore.MODE_ASSIGN_ONLY, keysIn, valuesIn, null, n, null, null, Evictions.DROPPED,
                TableCore.Marks.reportingMisses(state, missedKeys, missedIndex), true));
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
        return call(() -> core.accumulateExisting(keysIn, deltas, null, n, null, state == EntryState.DIRTY, missedKeys,
                missedIndex));
    }

    /** The most keys {@link #lastOccurrences} takes in one call. */
    public int maxDistinctBatch() {
        return core.maxDistinctBatch();
    }

    /**
     * The position of the last occurrence of each distinct key among {@code n} device keys
     * ({@code n <= }{@link #maxDistinctBatch()}), compacted in no particular order, to
     * {@code outIndex} (int32, room for {@code n}).
     *
     * @return the number of distinct keys
     */
    public long lastOccurrences(CUdeviceptr keysIn, long n, CUdeviceptr outIndex) {
        if (n < 0 || n > core.maxDistinctBatch()) {
            throw new IllegalArgumentException("lastOccurrences: n must be 0 to " + core.maxDistinctBatch() + ", was " + n);
        }
        if (n == 0) {
            return 0;
        }
        return call(() -> core.lastOccurrences(keysIn, n, outIndex));
    }

    /**
     * The distinct keys among {@code n} device keys that come with their positions in a batch
     * ({@code positions}, int32, each position once; {@code n <= }{@link #maxDistinctBatch()}),
     * as the misses {@link #assignHeld} reports: each distinct key once, with its highest
     * position, compacted in no particular order to {@code outKeys} and {@code outPositions}
     * (room for {@code n} each).
     *
     * @return the number of distinct keys
     */
    public long lastOccurrencesAt(CUdeviceptr keysIn, CUdeviceptr positions, long n, CUdeviceptr outKeys,
            CUdeviceptr outPositions) {
        if (n < 0 || n > core.maxDistinctBatch()) {
            throw new IllegalArgumentException("lastOccurrencesAt: n must be 0 to " + core.maxDistinctBatch() + ", was " + n);
        }
        if (n == 0) {
            return 0;
        }
        return call(() -> core.lastOccurrencesAt(keysIn, positions, n, outKeys, outPositions));
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
        return installAbsent(keysIn, rowsIn, n, state, evicted, false);
    }

    /**
     * {@link #installAbsent(CUdeviceptr, CUdeviceptr, long, EntryState, Evictions)} where, with
     * {@code screened} and {@link #admitByFrequency()} on, a clean row that would evict a full
     * bucket's entry is installed only if the admission sketch has seen its key more often than
     * that entry's; a refused row is not installed and is counted in {@link #rejections()}.
     */
    public long installAbsent(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, EntryState state, Evictions evicted,
            boolean screened) {
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("installAbsent scores by the clock; a ScoreMode.CUSTOM table needs scores");
        }
        return call(() -> core.upsert(TableCore.MODE_INSERT_ABSENT, keysIn, rowsIn, null, n, null, null, evicted,
                installMarks(state, screened), true));
    }

    private static TableCore.Marks installMarks(EntryState state, boolean screened) {
        return state == EntryState.CLEAN && screened ? TableCore.Marks.SCREENED : TableCore.Marks.of(state);
    }

    /**
     * {@link #installAbsent} of clean rows (screened as there with {@code screened}) that returns
     * without waiting, as {@link #insertOrAssignAsync} does; what it evicts is dropped and
     * counted, so call it only when no entry is dirty.
     */
    public void installAbsentAsync(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, CUevent done, boolean screened) {
        call(() -> {
            queueCleanInstall(keysIn, rowsIn, n, done, screened);
            return 0L;
        });
    }

    /** Queues a clean install that drops what it evicts, then records {@code done} behind it. Caller holds the lock. */
    private void queueCleanInstall(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, CUevent done, boolean screened) {
        core.upsert(TableCore.MODE_INSERT_ABSENT, keysIn, rowsIn, null, n, null, null, Evictions.DROPPED,
                installMarks(EntryState.CLEAN, screened), false);
        Cuda.check(cuEventRecord(done, stream), "cuEventRecord (install queued without waiting)");
    }

    /**
     * Whether an install of {@code n} keys brings enough to each bucket to be grouped by bucket
     * ({@link #groupInstalls}): one that takes GPU time worth overlapping with other work.
     */
    public boolean isLargeInstall(long n) {
        return core.isLargeInstall(n);
    }

    /**
     * {@link #installAbsentAsync} held back until the table's next call: a {@link #findThenDeferred}
     * queues it behind its own lookup, so that the install's kernels run while the caller works on
     * what that lookup missed (on a stream of its own) instead of ahead of the lookup; any other
     * call queues it first, before its own work. At that moment it is queued only if
     * {@code stillValid} says so, and dropped otherwise: it installs clean copies, which the
     * table may always lack, so dropping one loses nothing ({@link #deferredDropped()} counts them).
     * A later call of this method settles an earlier one first, so one is held at a time.
     *
     * <p>The caller keeps {@code keysIn} and {@code rowsIn} unchanged until the install is settled
     * ({@link DeferredInstall#settled()}, or {@link #settle} to force it) and, if it was queued,
     * until {@code done} has completed. {@code stillValid} is asked under the table's lock by
     * whichever thread makes that next call; it must say whether the rows are still the values of
     * their keys (for example, that the tier they were read from has not changed since).
     */
    public DeferredInstall installAbsentDeferred(CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, CUevent done,
            boolean screened, BooleanSupplier stillValid) {
        DeferredInstall d = new DeferredInstall(keysIn, rowsIn, n, done, screened, stillValid);
        call(() -> {
            deferred = d;
            return 0L;
        });
        return d;
    }

    /**
     * {@link #find} with misses compacted, after which the install {@link #installAbsentDeferred}
     * holds back (if any) is queued or dropped; returns the missed count without waiting for it.
     */
    public long findThenDeferred(CUdeviceptr keysIn, long n, CUdeviceptr outValues, CUdeviceptr found,
            CUdeviceptr missedKeys, CUdeviceptr missedIndex) {
        lock.lock();
        try {
            checkOpen();
            device.makeCurrent();
            return core.findThen(keysIn, n, outValues, found, missedKeys, missedIndex, core.readTouch(scoreReads),
                    this::settleDeferred);
        } finally {
            lock.unlock();
        }
    }

    /** Queues or drops {@code d} now if this table still holds it back (a no-op once it is settled). */
    public void settle(DeferredInstall d) {
        if (d.settled) {
            return;
        }
        call(() -> 0L);
    }

    /** Deferred installs queued when they were due ({@link #installAbsentDeferred}). */
    public long deferredQueued() {
        return deferredQueued.get();
    }

    /** Deferred installs dropped because their rows were no longer valid when they were due. */
    public long deferredDropped() {
        return deferredDropped.get();
    }

    /** Queues (or drops, see {@link #installAbsentDeferred}) the install held back. Caller holds the lock. */
    private void settleDeferred() {
        DeferredInstall d = deferred;
        if (d == null) {
            return;
        }
        deferred = null;
        try {
            if (d.stillValid.getAsBoolean()) {
                queueCleanInstall(d.keys, d.rows, d.n, d.done, d.screened);
                deferredQueued.incrementAndGet();
            } else {
                deferredDropped.incrementAndGet();
            }
        } finally {
            d.settled = true;
        }
    }

    /** An install held back by {@link #installAbsentDeferred}. */
    public static final class DeferredInstall {
        private final CUdeviceptr keys;
        private final CUdeviceptr rows;
        private final long n;
        private final CUevent done;
        private final boolean screened;
        private final BooleanSupplier stillValid;
        private volatile boolean settled;

        private DeferredInstall(CUdeviceptr keys, CUdeviceptr rows, long n, CUevent done, boolean screened,
                BooleanSupplier stillValid) {
            this.keys = keys;
            this.rows = rows;
            this.n = n;
            this.done = done;
            this.screened = screened;
            this.stillValid = stillValid;
        }

        /** Whether the install was queued (then its event follows it) or dropped: its buffers are the caller's again. */
        public boolean settled() {
            return settled;
        }
    }

    /**
     * Copies the dirty entries of slots {@code [offset, offset + count)} to the outputs (device
     * memory, room for {@code count}), compacted. Their marks stay until {@link #markClean}.
     *
     * @return entries written
     */
    public long exportDirty(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues) {
        checkRange("exportDirty", offset, count);
        return call(() -> core.exportDirty(offset, count, outKeys, outValues));
    }

    /** Clears the dirty marks of slots {@code [offset, offset + count)}, once their entries are safe below. */
    public void markClean(long offset, long count) {
        checkRange("markClean", offset, count);
        call(() -> {
            core.markClean(offset, count);
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
        call(() -> core.upsert(TableCore.MODE_ACCUM, keysIn, deltas, scoresIn, n, null, null, Evictions.DROPPED, TableCore.Marks.CLEAN, true));
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
        call(() -> {
            core.insertStrided(keysIn, valuesIn, n, stagingKeys);
            return 0L;
        });
    }

    /**
     * Writes row {@code j} of {@code rows} to row {@code index[j]} of {@code out} and sets byte
     * {@code index[j]} of {@code found} to 1, for {@code j < n} (int32 indices, all on this table's
     * device). The store uses it to merge rows read from the tiers below into a device output.
     */
    public void scatterRows(CUdeviceptr rows, CUdeviceptr index, long n, CUdeviceptr out, CUdeviceptr found) {
        call(() -> {
            core.scatterRows(rows, index, n, out, found);
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
            core.gatherRows(rows, index, n, out);
            return 0L;
        });
    }

    /** Erases {@code n} keys; returns how many were present. */
    public long erase(CUdeviceptr keysIn, long n) {
        return call(() -> core.erase(keysIn, n));
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
        return call(() -> core.export(offset, count, outKeys, outValues, outScores));
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
        return (int) call(() -> pipelinedFind(batch, out, found, core.readTouch(scoreReads)));
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
        return (int) call(() -> pipelinedFind(batch, out, found, TableCore.PEEK));
    }

    /** {@link HostStaging#find} with the find kernel. Caller holds the lock. */
    private long pipelinedFind(long[] batch, float[] out, boolean[] found, int touch) {
        return staging.find(batch, out, found, (k, n, rows, flags) -> core.launchFind(k, n, rows, flags, null, null, touch));
    }

    /** Writes {@code out[i]} = whether {@code batch[i]} is present; returns the number present. */
    public int containsKeys(long[] batch, boolean[] out) {
        BatchChecks.checkKeys("contains", batch);
        BatchChecks.checkFlags("contains", "out", batch, out);
        checkKeys("contains", batch);
        return (int) call(() -> staging.flags("contains", batch, out, core::launchContains));
    }

    /** Inserts or overwrites; evicted entries are dropped. {@code scoresIn} is required for CUSTOM, else ignored. */
    public void insertOrAssign(long[] batch, float[] rows, long[] scoresIn) {
        hostUpsert("insertOrAssign", TableCore.MODE_ASSIGN, batch, rows, scoresIn, null, null, null);
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
        return (int) hostUpsert("insertAndEvict", TableCore.MODE_ASSIGN, batch, rows, scoresIn, null,
                null, new HostStaging.Evicted(evictedKeys, evictedValues, evictedScores, null));
    }

    /**
     * Returns every key's value in {@code out}, inserting absent keys with their row of
     * {@code initRows} first; {@code found} (may be null) tells which existed.
     */
    public void findOrInsert(long[] batch, float[] initRows, long[] scoresIn, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("findOrInsert", batch, out, dim);
        hostUpsert("findOrInsert", TableCore.MODE_FIND_OR_INSERT, batch, initRows, scoresIn, out, found, null);
    }

    /** Overwrites existing keys only; {@code found} (may be null) tells which existed. */
    public void assign(long[] batch, float[] rows, long[] scoresIn, boolean[] found) {
        hostUpsert("assign", TableCore.MODE_ASSIGN_ONLY, batch, rows, scoresIn, null, found, null);
    }

    /** {@link #assign(long[], float[], long[], boolean[])} that marks every entry it writes dirty. */
    public void assignDirty(long[] batch, float[] rows, boolean[] found) {
        hostUpsert("assignDirty", TableCore.MODE_ASSIGN_ONLY, batch, rows, null, null, found, null, TableCore.Marks.DIRTY);
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
        return installAbsent(batch, rows, evictedKeys, evictedValues, evictedDirty, false);
    }

    /** {@link #installAbsent(long[], float[], long[], float[], boolean[])}, screened as the device form says. */
    public int installAbsent(long[] batch, float[] rows, long[] evictedKeys, float[] evictedValues,
            boolean[] evictedDirty, boolean screened) {
        if (evictedKeys == null || evictedKeys.length < batch.length || evictedValues == null
                || (long) evictedValues.length < (long) batch.length * dim || evictedDirty == null
                || evictedDirty.length < batch.length) {
            throw new IllegalArgumentException("installAbsent: evicted arrays need room for keys.length = "
                    + (batch == null ? 0 : batch.length) + " entries");
        }
        if (scoreMode == ScoreMode.CUSTOM) {
            throw new IllegalArgumentException("installAbsent scores by the clock; a ScoreMode.CUSTOM table needs scores");
        }
        return (int) hostUpsert("installAbsent", TableCore.MODE_INSERT_ABSENT, batch, rows, null, null, null,
                new HostStaging.Evicted(evictedKeys, evictedValues, null, evictedDirty), installMarks(EntryState.CLEAN, screened));
    }

    /** Adds deltas in place; absent keys are inserted as their delta. */
    public void accumOrAssign(long[] batch, float[] deltas, long[] scoresIn) {
        hostUpsert("accumOrAssign", TableCore.MODE_ACCUM, batch, deltas, scoresIn, null, null, null);
    }

    /** Erases keys; returns how many were present. */
    public long erase(long[] batch) {
        BatchChecks.checkKeys("erase", batch);
        checkKeys("erase", batch);
        return call(() -> staging.eachKeyChunk(batch, core::erase));
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
            long n = core.export(offset, count, staging.exportKeys(), staging.exportValues(), staging.exportScores());
            staging.export((int) n, outKeys, outValues, outScores);
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
        return call(() -> core.counters().read(TableCounters.SIZE));
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
            DeferredInstall d = deferred;
            if (d != null) {
                // Its rows are clean copies: closing drops it rather than installing into a table about to go.
                deferred = null;
                d.settled = true;
            }
            try {
                Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize (close)");
                core.counters().takeUnread();
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

    /** Runs {@code body} under the lock on the table's device, after settling a deferred install. */
    private long call(Call body) {
        lock.lock();
        try {
            checkOpen();
            device.makeCurrent();
            settleDeferred();
            return body.run();
        } finally {
            lock.unlock();
        }
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("GPU table is closed");
        }
    }

    /**
     * Frees everything the table owns, in reverse order of allocation, then its events, streams
     * and device context; every release runs even if one fails. Throws the first failure (later
     * ones suppressed), added to {@code first} when the caller is already failing with it.
     */
    private void releaseAll(RuntimeException first) {
        try {
            CloseHelper.closeAll(owned, () -> Cuda.check(cuStreamDestroy(stream), "cuStreamDestroy"), device);
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

    private long hostUpsert(String op, int mode, long[] batch, float[] rows, long[] scoresIn, float[] out,
            boolean[] found, HostStaging.Evicted evicted) {
        return hostUpsert(op, mode, batch, rows, scoresIn, out, found, evicted, TableCore.Marks.CLEAN);
    }

    private long hostUpsert(String op, int mode, long[] batch, float[] rows, long[] scoresIn, float[] out,
            boolean[] found, HostStaging.Evicted evicted, TableCore.Marks marks) {
        BatchChecks.checkRows(op, batch, rows, dim);
        if (found != null) {
            BatchChecks.checkFlags(op, "found", batch, found);
        }
        checkKeys(op, batch);
        checkScores(op, batch, scoresIn);
        long[] staged = scoreMode == ScoreMode.CUSTOM ? scoresIn : null;
        return call(() -> staging.upsert(op, batch, rows, staged, out, found, evicted,
                (k, v, sc, n, o, f, e) -> core.upsert(mode, k, v, sc, n, o, f, e, marks, true)));
    }

    /** Adds the counts of inserts that returned without waiting to the totals. Caller holds the lock. */
    private void foldUnreadCounts() {
        if (closed.get()) {
            return;
        }
        device.makeCurrent();
        core.counters().foldUnread();
    }

    private void clearLocked() {
        foldUnreadCounts();
        core.clear();
    }
}
