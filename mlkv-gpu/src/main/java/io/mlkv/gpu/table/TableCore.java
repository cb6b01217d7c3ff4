package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * The table's device arrays (keys, scores, digests, values, dirty marks, bucket locks), its
 * counters and repeated-key scratch, and one method per kernel sequence over them, all queued on
 * the table's stream. {@link GpuHashTable} is the public face: argument checks, the lock, the
 * host-array staging; this class is what runs on the GPU.
 *
 * <p>Lock rule: every method runs under the table's lock with the table's device current.
 */
final class TableCore implements AutoCloseable {
    private static final int BLOCK = 256;
    /**
     * Installs that bring at least this many keys to each bucket on average are grouped by bucket
     * ({@link #installGrouped}); below it, few tiles meet at a bucket's lock and the per-key
     * kernel needs no grouping passes.
     */
    static final long GROUPED_KEYS_PER_BUCKET = 8;
    static final int MODE_ASSIGN = 0;
    static final int MODE_FIND_OR_INSERT = 1;
    static final int MODE_ACCUM = 2;
    /** Launches mlkv_assign_only; not a mode of the upsert kernel. */
    static final int MODE_ASSIGN_ONLY = 3;
    static final int MODE_INSERT_ABSENT = 4;
    /** The find kernel's {@code touch} for an owner's own look: scores untouched, nothing recorded in the admission sketch. */
    static final int PEEK = -2;

    private final int dim;
    private final long buckets;
    private final long capacity;
    private final ScoreMode scoreMode;
    private final Kernels kernels;
    private final CUstream stream;
    private final OwnedResources parts = new OwnedResources();
    private final DeviceMemory keys;
    private final DeviceMemory scores;
    private final DeviceMemory digests;
    private final DeviceMemory values;
    /** One byte per slot: whether its entry is dirty ({@link EntryState}). */
    private final DeviceMemory dirty;
    private final DeviceMemory bucketLocks;
    private final TableCounters counters;
    private final RepeatedKeys repeats;
    /** Null unless installs are admitted by frequency ({@link #admitByFrequency()}). */
    private AdmissionSketch sketch;
    /** Null until the first install grouped by bucket ({@link #groupsInstall}). */
    private InstallGroups groups;
    /** Whether large installs are grouped by bucket; see {@link GpuHashTable#groupInstalls(boolean)}. */
    private volatile boolean groupInstalls = !"false".equals(System.getProperty("mlkv.groupedInstalls"));
    private long clock;
    /** Whether callers promise batches without repeated keys; see {@link GpuHashTable#uniqueKeys(boolean)}. */
    private volatile boolean uniqueKeys;

    /**
     * How an upsert treats dirty marks: whether the entries it writes become dirty, and where
     * {@code mlkv_assign_only} reports the keys it does not find (null: nowhere); and whether a
     * clean install is screened by the admission sketch, where the table has one
     * ({@link #admitByFrequency()}): a dirty row is never refused, it has no copy below.
     */
    record Marks(boolean dirty, CUdeviceptr missedKeys, CUdeviceptr missedIndex, boolean screened) {
        static final Marks CLEAN = new Marks(false, null, null, false);
        static final Marks DIRTY = new Marks(true, null, null, false);
        static final Marks SCREENED = new Marks(false, null, null, true);

        static Marks of(EntryState state) {
            return state == EntryState.DIRTY ? DIRTY : CLEAN;
        }

        static Marks reportingMisses(EntryState state, CUdeviceptr missedKeys, CUdeviceptr missedIndex) {
            return new Marks(state == EntryState.DIRTY, missedKeys, missedIndex, false);
        }
    }

    TableCore(int dim, long buckets, ScoreMode scoreMode, int stagingKeys, Kernels kernels, CUstream stream) {
        this.dim = dim;
        this.buckets = buckets;
        this.capacity = buckets * GpuHashTable.BUCKET_SLOTS;
        this.scoreMode = scoreMode;
        this.kernels = kernels;
        this.stream = stream;
        try {
            this.keys = parts.add(new DeviceMemory(capacity * 8, "table keys"));
            this.scores = parts.add(new DeviceMemory(capacity * 8, "table scores"));
            this.digests = parts.add(new DeviceMemory(capacity, "table digests"));
            this.values = parts.add(new DeviceMemory(capacity * dim * 4L, "table values"));
            this.dirty = parts.add(new DeviceMemory(capacity, "table dirty marks"));
            this.bucketLocks = parts.add(new DeviceMemory(buckets * 4, "bucket locks"));
            this.counters = parts.add(new TableCounters(stream));
            this.repeats = parts.add(new RepeatedKeys(stagingKeys, kernels, stream));
            clear();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Device bytes a table of this shape needs for its arrays. */
    static long arrayBytes(long capacity, long buckets, int dim) {
        return capacity * (8 + 8 + 1 + 1 + dim * 4L) + buckets * 4;
    }

    /**
     * From now on, every lookup but a peek ({@link #PEEK}) records its keys in a frequency sketch, and
     * a screened clean install ({@link Marks#SCREENED}) replaces a full bucket's victim only if
     * the sketch has seen the newcomer more often than the victim (TinyLFU's rule).
     */
    void admitByFrequency() {
        if (sketch == null) {
            sketch = parts.add(new AdmissionSketch(capacity, kernels, stream));
        }
    }

    /** The admission sketch's words (tests), or null without one. */
    long[] admissionSketch() {
        return sketch == null ? null : sketch.toHost();
    }

    void groupInstalls(boolean on) {
        groupInstalls = on;
    }

    void uniqueKeys(boolean promised) {
        uniqueKeys = promised;
    }

    TableCounters counters() {
        return counters;
    }

    /** The most keys {@link #lastOccurrences} takes in one call. */
    int maxDistinctBatch() {
        return repeats.chunk();
    }

    /**
     * The find kernel's {@code touch} argument for one find call: -1 (scores untouched) or the
     * score mode whose hit rule it applies; advances the clock when it touches.
     */
    int readTouch(boolean scoreReads) {
        if (!scoreReads || scoreMode == ScoreMode.CUSTOM) {
            return -1;
        }
        clock++;
        return scoreMode.code;
    }

    /** Queues a find; misses are compacted to {@code missedKeys}/{@code missedIndex} when given. */
    void launchFind(CUdeviceptr keysIn, long n, CUdeviceptr out, CUdeviceptr found, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex, int touch) {
        launchFind(keysIn, n, null, out, found, missedKeys, missedIndex, touch);
    }

    /** As above, key {@code i}'s row and flag going to {@code outIndex[i]} (int32) when it is not null. */
    void launchFind(CUdeviceptr keysIn, long n, CUdeviceptr outIndex, CUdeviceptr out, CUdeviceptr found,
            CUdeviceptr missedKeys, CUdeviceptr missedIndex, int touch) {
        kernels.launchPacked("mlkv_find", TableKernelArgs.FIND, n * GpuHashTable.TILE, BLOCK, stream, keys.pointer(),
                digests.pointer(), values.pointer(), buckets - 1, dim, keysIn, n, out, found, null, scores.pointer(),
                missedKeys, missedIndex, counters.at(TableCounters.MISSED), touch, clock, outIndex);
        if (sketch != null && touch != PEEK) {
            sketch.record(keysIn, n);
        }
    }

    /** A find that waits; returns the keys missed when {@code missedKeys} is given, else 0. */
    long find(CUdeviceptr keysIn, long n, CUdeviceptr out, CUdeviceptr found, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex, int touch) {
        launchFind(keysIn, n, out, found, missedKeys, missedIndex, touch);
        if (missedKeys == null) {
            sync("find (n=" + n + ")");
            return 0;
        }
        return counters.read(TableCounters.MISSED);
    }

    /**
     * {@link #find} with misses compacted, which then queues {@code queueAfter}'s work on the
     * stream and returns the missed count without waiting for that work.
     */
    long findThen(CUdeviceptr keysIn, long n, CUdeviceptr out, CUdeviceptr found, CUdeviceptr missedKeys,
            CUdeviceptr missedIndex, int touch, Runnable queueAfter) {
        launchFind(keysIn, n, out, found, missedKeys, missedIndex, touch);
        return counters.readBefore(TableCounters.MISSED, queueAfter);
    }

    /** Queues a presence check: one flag byte per key. */
    void launchContains(CUdeviceptr keysIn, long n, CUdeviceptr found) {
        kernels.launchPacked("mlkv_contains", TableKernelArgs.CONTAINS, n * GpuHashTable.TILE, BLOCK, stream,
                keys.pointer(), digests.pointer(), buckets - 1, keysIn, n, found);
    }

    /** Erases {@code n} keys and returns how many were present. */
    long erase(CUdeviceptr keysIn, long n) {
        kernels.launch("mlkv_erase", n * GpuHashTable.TILE, BLOCK, stream, keys.pointer(), digests.pointer(),
                counters.at(TableCounters.SIZE), buckets - 1, keysIn, n, counters.at(TableCounters.ERASED));
        return counters.read(TableCounters.ERASED);
    }

    /**
     * Adds each delta row to its key's value where the key exists ({@code mlkv_accum_existing});
     * a null {@code scoresIn} keeps CUSTOM scores. With {@code markDirty} the entries written
     * become dirty; with {@code missedKeys}, misses are compacted there and their count returned;
     * without, it waits and returns 0.
     */
    long accumulateExisting(CUdeviceptr keysIn, CUdeviceptr deltas, CUdeviceptr scoresIn, long n, CUdeviceptr found,
            boolean markDirty, CUdeviceptr missedKeys, CUdeviceptr missedIndex) {
        clock++;
        kernels.launch("mlkv_accum_existing", n * GpuHashTable.TILE, BLOCK, stream, keys.pointer(), scores.pointer(),
                digests.pointer(), values.pointer(), buckets - 1, dim, scoreMode.code, clock, keysIn, deltas, scoresIn,
                n, found, markDirty ? dirty.pointer() : null, missedKeys, missedIndex,
                missedKeys == null ? null : counters.at(TableCounters.MISSED));
        if (missedKeys == null) {
            sync("accumExisting (n=" + n + ")");
            return 0;
        }
        return counters.read(TableCounters.MISSED);
    }

    /** The lowest position of a reserved key among {@code n} keys, or -1. */
    long firstReservedKey(CUdeviceptr keysIn, long n) {
        counters.resetReserved();
        kernels.launch("mlkv_first_reserved", n, BLOCK, stream, keysIn, n, counters.at(TableCounters.RESERVED));
        return counters.read(TableCounters.RESERVED); // still all ones, -1, when none was found
    }

    /** Positions of the last occurrence of each distinct key, compacted to {@code outIndex}; returns their count. */
    long lastOccurrences(CUdeviceptr keysIn, long n, CUdeviceptr outIndex) {
        repeats.lastOccurrences(keysIn, n, outIndex, counters.at(TableCounters.EXPORTED));
        return counters.read(TableCounters.EXPORTED);
    }

    long lastOccurrencesAt(CUdeviceptr keysIn, CUdeviceptr positions, long n, CUdeviceptr outKeys, CUdeviceptr outPositions) {
        repeats.lastOccurrencesAt(keysIn, positions, n, outKeys, outPositions, counters.at(TableCounters.EXPORTED));
        return counters.read(TableCounters.EXPORTED);
    }

    /**
     * Runs an upsert and (with {@code wait}) waits; returns entries evicted by it (misses reported,
     * for assign only), or 0 without {@code wait} (the counts are then added up on the GPU, for
     * {@link TableCounters#foldUnread}). Unless callers promised unique keys, assigning modes go in
     * chunks of {@link RepeatedKeys#chunk()} keys, and the last occurrence of a key repeated in a
     * chunk wins: with LRU scores and a waiting call, every occurrence writes, the kernel reports
     * whether a key repeated, and only then are the repeated keys marked and their last rows
     * written again ({@link RepeatedKeys#rewrite}), so a batch of distinct keys pays no marking
     * pass; otherwise, and for assigns that report misses (the tiered store's device writes, whose
     * batches carry hot keys: there every occurrence writing the same row costs more than the
     * pass), each chunk is marked first ({@code mlkv_dedup}) and only last occurrences write.
     */
    long upsert(int mode, CUdeviceptr keysIn, CUdeviceptr valuesIn, CUdeviceptr scoresIn, long n,
            CUdeviceptr out, CUdeviceptr found, Evictions evictions, Marks marks, boolean wait) {
        if (scoreMode == ScoreMode.CUSTOM && scoresIn == null) {
            throw new IllegalArgumentException("ScoreMode.CUSTOM needs one score per key");
        }
        boolean repeating = !uniqueKeys && (mode == MODE_ASSIGN || mode == MODE_ASSIGN_ONLY);
        boolean repair = repeating && wait && scoreMode == ScoreMode.LRU && marks.missedKeys() == null;
        boolean mark = repeating && !repair;
        long step = repeating ? repeats.chunk() : Math.max(1, n);
        long rowBytes = dim * 4L;
        long evicted = 0;
        for (long from = 0; from < n; from += step) {
            long m = Math.min(step, n - from);
            CUdeviceptr k = offset(keysIn, from * 8);
            CUdeviceptr v = offset(valuesIn, from * rowBytes);
            if (mark) {
                repeats.mark(k, m);
            }
            if (repair) {
                repeats.clearSeen();  // the stream is idle: every call ends waiting
            }
            Evictions at = new Evictions(offset(evictions.keys(), evicted * 8),
                    offset(evictions.values(), evicted * rowBytes), offset(evictions.scores(), evicted * 8),
                    offset(evictions.dirty(), evicted));
            // Misses (assign only) are reported at the chunk's place in the batch.
            Marks chunkMarks = new Marks(marks.dirty(), offset(marks.missedKeys(), evicted * 8),
                    offset(marks.missedIndex(), evicted * 4), marks.screened());
            evicted += upsertLaunch(mode, mark, repair, k, v, offset(scoresIn, from * 8), m, offset(out, from * rowBytes),
                    offset(found, from), at, chunkMarks, from, wait);
            if (mark) {
                repeats.reset(k, m);
            } else if (repair && repeats.wasSeen()) {
                repeats.rewrite(keys.pointer(), digests.pointer(), values.pointer(), buckets - 1, dim, k, v, m);
                sync("rewrite of repeated keys (n=" + m + ")");
            }
        }
        return evicted;
    }

    private static CUdeviceptr offset(CUdeviceptr p, long bytes) {
        return p == null ? null : p.withByteOffset(bytes);
    }

    /**
     * Launches one upsert chunk: with {@code mark}, after {@link RepeatedKeys#mark}; with
     * {@code detect}, reporting repeated keys to {@link RepeatedKeys#wasSeen}. With {@code wait},
     * waits and returns the entries it evicted; without, returns 0 (counts folded in later).
     */
    private long upsertLaunch(int mode, boolean mark, boolean detect, CUdeviceptr keysIn, CUdeviceptr valuesIn,
            CUdeviceptr scoresIn, long n, CUdeviceptr out, CUdeviceptr found, Evictions evicted, Marks marks,
            long indexBase, boolean wait) {
        CUdeviceptr[] set = repeats.upsertArgs(mark);
        CUdeviceptr repeatsArg = repeats.seenFlag(detect);
        long epoch = repeats.epoch();
        clock++;
        if (mode == MODE_ASSIGN_ONLY) {
            // Never inserts, evicts or rejects: the only counter to read back is the misses reported.
            kernels.launchPacked("mlkv_assign_only", TableKernelArgs.ASSIGN, n * GpuHashTable.TILE, BLOCK, stream,
                    keys.pointer(), scores.pointer(), digests.pointer(), values.pointer(), set[0], set[1], set[2], epoch,
                    buckets - 1, dim, scoreMode.code, clock, keysIn, valuesIn, scoresIn, n, found, repeatsArg,
                    marks.dirty() ? dirty.pointer() : null, marks.missedKeys(), marks.missedIndex(),
                    counters.at(TableCounters.MISSED), indexBase);
            if (marks.missedKeys() != null) {
                return counters.read(TableCounters.MISSED);
            }
            sync("assign (n=" + n + ")");
            return 0;
        }
        boolean screen = sketch != null && marks.screened() && !marks.dirty() && mode == MODE_INSERT_ABSENT;
        if (groupsInstall(mode, screen, n)) {
            installGrouped(keysIn, valuesIn, n, found, evicted, marks.dirty());
        } else {
            kernels.launchPacked("mlkv_upsert", TableKernelArgs.UPSERT, n * GpuHashTable.TILE, BLOCK, stream, keys.pointer(),
                    scores.pointer(), digests.pointer(), values.pointer(), set[0], set[1], set[2], epoch,
                    bucketLocks.pointer(), counters.at(TableCounters.SIZE), buckets - 1, dim, mode, scoreMode.code, clock,
                    keysIn, valuesIn, scoresIn, n, out, found, evicted.keys(), evicted.values(), evicted.scores(),
                    counters.at(TableCounters.EVICTED), counters.at(TableCounters.REJECTED), repeatsArg, dirty.pointer(),
                    marks.dirty() ? 1L : 0L, evicted.dirty(), screen ? sketch.pointer() : null, screen ? sketch.mask() : 0L);
        }
        if (!wait) {
            counters.keepUnread((from, to, count) -> kernels.launch("mlkv_add_u64", count, BLOCK, stream, from, to, count));
            return 0;
        }
        return counters.readInsert();
    }

    /**
     * Whether an upsert of {@code n} keys goes to {@link #installGrouped}: an install neither
     * screened by frequency nor scored by the caller, bringing on average at least
     * {@link #GROUPED_KEYS_PER_BUCKET} keys to each bucket, and grouping not switched off.
     */
    private boolean groupsInstall(int mode, boolean screened, long n) {
        return groupInstalls && mode == MODE_INSERT_ABSENT && !screened && scoreMode != ScoreMode.CUSTOM
                && isLargeInstall(n);
    }

    /** Whether an install of {@code n} keys brings at least {@link #GROUPED_KEYS_PER_BUCKET} keys to each bucket on average. */
    boolean isLargeInstall(long n) {
        return n >= GROUPED_KEYS_PER_BUCKET * buckets;
    }

    /**
     * An install of {@code n} keys grouped by bucket (see {@link InstallGroups}): the same outcome
     * as {@code mlkv_upsert}'s install, without bucket locks. Counts as {@code mlkv_upsert} does.
     */
    private void installGrouped(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n, CUdeviceptr found, Evictions evicted,
            boolean dirtyMark) {
        if (groups == null) {
            groups = parts.add(new InstallGroups(buckets, kernels, stream));
        }
        groups.group(keysIn, n);
        kernels.launchPacked("mlkv_install_grouped", TableKernelArgs.GROUPED_INSTALL, buckets * 32, BLOCK, stream,
                keys.pointer(), scores.pointer(), digests.pointer(), values.pointer(), dirty.pointer(),
                counters.at(TableCounters.SIZE), buckets, (long) dim, (long) scoreMode.code, clock, keysIn, valuesIn,
                groups.order(), groups.starts(), groups.total(), dirtyMark ? 1L : 0L, found, evicted.keys(),
                evicted.values(), evicted.scores(), evicted.dirty(), counters.at(TableCounters.EVICTED));
    }

    /**
     * Inserts or overwrites {@code n} rows with distinct keys taken in a strided order (each once),
     * {@code chunk} at a time through scratch buffers, so that rows grouped by bucket (an export)
     * spread over the table in every launch instead of queueing on one bucket's lock.
     */
    void insertStrided(CUdeviceptr keysIn, CUdeviceptr valuesIn, long n, long chunkKeys) {
        long step = 1_000_003L; // a prime; made coprime to n below
        while (n % step == 0 || gcd(n, step) != 1) {
            step += 2;
        }
        long chunk = Math.min(n, chunkKeys);
        try (DeviceMemory k = new DeviceMemory(chunk * 8, "restore staging keys");
             DeviceMemory v = new DeviceMemory(chunk * dim * 4L, "restore staging values")) {
            for (long start = 0; start < n; start += chunk) {
                long m = Math.min(chunk, n - start);
                kernels.launch("mlkv_gather_stride", m * dim, BLOCK, stream, keysIn, valuesIn, n, dim, step, start, m,
                        k.pointer(), v.pointer());
                upsert(MODE_ASSIGN, k.pointer(), v.pointer(), null, m, null, null, Evictions.DROPPED, Marks.CLEAN, true);
            }
        }
    }

    private static long gcd(long a, long b) {
        while (b != 0) {
            long t = a % b;
            a = b;
            b = t;
        }
        return a;
    }

    /** Copies the entries of slots {@code [offset, offset + count)}, compacted; returns how many. */
    long export(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues, CUdeviceptr outScores) {
        kernels.launch("mlkv_export", count, BLOCK, stream, keys.pointer(), scores.pointer(), values.pointer(), dim,
                offset, count, outKeys, outValues, outScores, counters.at(TableCounters.EXPORTED));
        return counters.read(TableCounters.EXPORTED);
    }

    /** Copies the dirty entries of slots {@code [offset, offset + count)}, compacted; returns how many. */
    long exportDirty(long offset, long count, CUdeviceptr outKeys, CUdeviceptr outValues) {
        kernels.launch("mlkv_export_dirty", count, BLOCK, stream, keys.pointer(), dirty.pointer(), values.pointer(),
                dim, offset, count, outKeys, outValues, counters.at(TableCounters.EXPORTED));
        return counters.read(TableCounters.EXPORTED);
    }

    /** Clears the dirty marks of slots {@code [offset, offset + count)} and waits. */
    void markClean(long offset, long count) {
        Cuda.check(cuMemsetD8Async(dirty.at(offset), (byte) 0, count, stream), "cuMemsetD8Async (dirty marks)");
        sync("markClean");
    }

    /** Row {@code j} of {@code rows} to row {@code index[j]} of {@code out}, flags set; waits. */
    void scatterRows(CUdeviceptr rows, CUdeviceptr index, long n, CUdeviceptr out, CUdeviceptr found) {
        kernels.launch("mlkv_scatter_rows", n * dim, BLOCK, stream, rows, index, n, dim, out);
        kernels.launch("mlkv_set_flags", n, BLOCK, stream, index, n, found);
        sync("scatter rows (n=" + n + ")");
    }

    /** Row {@code index[j]} of {@code rows} to row {@code j} of {@code out}; waits. */
    void gatherRows(CUdeviceptr rows, CUdeviceptr index, long n, CUdeviceptr out) {
        kernels.launch("mlkv_gather_rows", n * dim, BLOCK, stream, rows, index, n, dim, out);
        sync("gather rows (n=" + n + ")");
    }

    /** Empties every slot, mark, lock and counter, and waits (fold unread counts first). */
    void clear() {
        kernels.launch("mlkv_clear", Math.min(capacity, 1L << 24), BLOCK, stream, keys.pointer(), digests.pointer(),
                scores.pointer(), capacity);
        Cuda.check(cuMemsetD8Async(bucketLocks.pointer(), (byte) 0, buckets * 4, stream), "cuMemsetD8Async (bucket locks)");
        Cuda.check(cuMemsetD8Async(dirty.pointer(), (byte) 0, capacity, stream), "cuMemsetD8Async (dirty marks)");
        counters.zeroAll();
        sync("clear");
    }

    void sync(String op) {
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after " + op);
    }

    @Override
    public void close() {
        parts.close();
    }
}
