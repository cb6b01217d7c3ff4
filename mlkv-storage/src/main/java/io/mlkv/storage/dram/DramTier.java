package io.mlkv.storage.dram;

import static io.mlkv.storage.dram.OffHeapMemory.FLOAT_ARRAY_BASE;
import static io.mlkv.storage.dram.OffHeapMemory.UNSAFE;

import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import io.mlkv.storage.policy.EvictionPolicy;
import io.mlkv.storage.policy.Policies;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * A fixed-capacity cache of vectors in native memory, organised as a set-associative table:
 * each key hashes to one bucket of {@value #BUCKET_SLOTS} slots, and a full bucket evicts its
 * lowest-scored entry as the {@link EvictionPolicy} scores them (the same design as the GPU
 * table, so both tiers evict alike). Keys, scores, flags and values live in separate native
 * arrays (structure of arrays); there is no per-entry Java object, so the heap does not grow
 * with the tier.
 *
 * <p>Every bucket carries a version that changes whenever a write may have changed what any of
 * its keys maps to: an unconditional {@link #put}, a removal, a refused admission. The tiered
 * store uses it to install a value read from below only if nothing wrote that key in the
 * meantime. Conditional installs (a {@link #put} with an expected version) copy a value the tier
 * below already holds, so they change no key's value and leave the version alone; otherwise
 * promoting two keys of one bucket in a batch would make the second look stale.
 *
 * <p>Thread-safe: per-key operations lock one of a fixed set of lock stripes. {@link #close()}
 * must not race other calls; the owning store guarantees that.
 *
 * <h2>Reading the tier in place from a GPU</h2>
 * {@link #nativeLayout()} tells where the arrays live, so that the memory can be pinned and
 * mapped and a GPU kernel can look keys up without the CPU: key {@code k} lives in bucket
 * {@code ((h >>> 32) * buckets) >>> 32} with {@code h = k * 0x9E3779B97F4A7C15L; h ^= h >>> 29},
 * in one of its {@value #BUCKET_SLOTS} slots {@code s} where {@code keys[s] == k}; its row is
 * {@code values[s * dim .. (s + 1) * dim)}. A slot that holds no entry holds the key
 * {@link ReservedKeys#EMPTY}, so a reader in place needs no other slot state (the rule holds for every
 * key but {@code ReservedKeys.EMPTY} itself, which the GPU tier reserves anyway). Every change of
 * a bucket's slots is bracketed by its sequence count ({@code counts[2 * bucket]}, int64), odd while
 * the change runs: a reader that saw the same even count before and after reading a row read
 * a whole, current row. The bucket's version is the int64 beside it ({@code counts[2 * bucket + 1]}),
 * so a GPU writer reads both in one PCIe request.
 */
public final class DramTier implements VectorTier {
    /** Slots per bucket. */
    public static final int BUCKET_SLOTS = 16;
    /** The expected version of a {@link #put} that writes whatever the bucket's version is. */
    public static final long ANY_VERSION = -1;
    /** Returned by {@link #getOrVersion} on a hit. */
    public static final long HIT = -1;

    private static final long SLOT_META_BYTES = 8 + 8 + 1;
    /** A bucket's sequence count and version, side by side. */
    private static final long COUNTS_BYTES = 16;
    private static final byte OCCUPIED = 1;
    private static final byte DIRTY = 2;
    private static final int MAX_LOCK_STRIPES = 1 << 14;

    /** Outcome of {@link #put}. */
    public enum PutResult {
        /** The key was new and now occupies a slot (possibly after an eviction). */
        INSERTED,
        /** The key was present and its value was overwritten. */
        UPDATED,
        /** The bucket was full and the policy refused to evict for this key. */
        REJECTED,
        /** The bucket changed since the caller's version snapshot; nothing was written. */
        STALE
    }

    private final int dim;
    private final long rowBytes;
    private final long numBuckets;
    private final EvictionPolicy policy;
    private final OffHeapMemory keys;
    private final OffHeapMemory scores;
    private final OffHeapMemory flags;
    private final OffHeapMemory values;
    /** Per bucket, two int64s side by side: its sequence count, then its version. */
    private final OffHeapMemory counts;
    private final Object[] locks;
    private final int lockMask;
    private final AtomicLong clock = new AtomicLong();
    private final AtomicLong size = new AtomicLong();
    private final AtomicLong evictions = new AtomicLong();
    /** Bucket changes begun; each cell only grows (see {@link #changes()}). */
    private final LongAdder changes = new LongAdder();
    /** Bucket changes ended; never more than {@link #changes} (see {@link #changesIfQuiet()}). */
    private final LongAdder changesEnded = new LongAdder();
    /** Counted bucket changes that change a slot's key (see {@link #keyChanges()}). */
    private final LongAdder keyChanges = new LongAdder();
    /** Whether changes are counted: from the first {@link #nativeLayout()} on (see {@link #changes()}). */
    private volatile boolean countingChanges;
    /** Set once every change under way when counting started has ended. */
    private volatile boolean changesCounted;
    private final Object countingStart = new Object();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final ThreadLocal<float[]> scratch;

    /**
     * @param dim           values per vector, at least 1
     * @param capacityBytes native memory the tier may use, metadata included
     * @param policyName    eviction policy, see {@link Policies#NAMES}
     */
    public DramTier(int dim, long capacityBytes, String policyName) {
        if (dim <= 0) {
            throw new IllegalArgumentException("dim must be positive, was " + dim);
        }
        long bucketBytes = bucketBytes(dim);
        if (capacityBytes < bucketBytes) {
            throw new IllegalArgumentException("DRAM capacity " + capacityBytes
                    + " bytes is less than one bucket of " + BUCKET_SLOTS + " vectors of dim " + dim
                    + " (" + bucketBytes + " bytes)");
        }
        this.dim = dim;
        this.rowBytes = dim * 4L;
        this.numBuckets = Math.min(capacityBytes / bucketBytes, Integer.MAX_VALUE);
        long slots = numBuckets * BUCKET_SLOTS;
        this.policy = Policies.create(policyName, slots);
        OffHeapMemory k = null;
        OffHeapMemory s = null;
        OffHeapMemory f = null;
        OffHeapMemory v = null;
        OffHeapMemory q = null;
        try {
            // Flags, keys (for readers in place) and versions are read before written; the rest
            // is committed lazily.
            k = new OffHeapMemory(slots * 8, "DRAM tier keys", false);
            for (long slot = 0; slot < slots; slot++) {
                UNSAFE.putLong(k.address() + slot * 8, ReservedKeys.EMPTY);
            }
            s = new OffHeapMemory(slots * 8, "DRAM tier scores", false);
            f = new OffHeapMemory(slots, "DRAM tier flags", true);
            v = new OffHeapMemory(slots * rowBytes, "DRAM tier values", false);
            q = new OffHeapMemory(numBuckets * COUNTS_BYTES, "DRAM tier bucket sequence counts and versions", true);
        } catch (RuntimeException e) {
            closeQuietly(q, v, f, s, k);
            throw e;
        }
        this.counts = q;
        this.keys = k;
        this.scores = s;
        this.flags = f;
        this.values = v;
        int stripes = (int) Math.min(MAX_LOCK_STRIPES, Long.highestOneBit(numBuckets));
        this.locks = new Object[stripes];
        for (int i = 0; i < stripes; i++) {
            locks[i] = new Object();
        }
        this.lockMask = stripes - 1;
        this.scratch = ThreadLocal.withInitial(() -> new float[dim]);
    }

    private long seqAddress(long bucket) {
        return seqAddress(counts.address(), bucket);
    }

    private long versionAddress(long bucket) {
        return versionAddress(counts.address(), bucket);
    }

    /** Where {@code bucket}'s sequence count lies in the counts array at {@code countsAddress}. */
    private static long seqAddress(long countsAddress, long bucket) {
        return countsAddress + bucket * COUNTS_BYTES;
    }

    /** Where {@code bucket}'s version lies: the int64 after its sequence count. */
    private static long versionAddress(long countsAddress, long bucket) {
        return seqAddress(countsAddress, bucket) + 8;
    }

    /** Native bytes one bucket takes, metadata included. */
    public static long bucketBytes(int dim) {
        return BUCKET_SLOTS * (dim * 4L + SLOT_META_BYTES) + COUNTS_BYTES;
    }

    @Override
    public int dim() {
        return dim;
    }

    /** Number of slots (the most entries the tier can hold). */
    public long capacity() {
        return numBuckets * BUCKET_SLOTS;
    }

    /** The policy scoring this tier's entries. */
    public EvictionPolicy policy() {
        return policy;
    }

    /** Number of entries evicted so far to make room. */
    public long evictions() {
        return evictions.get();
    }

    /**
     * How many bucket changes have begun so far. A caller that reads the same value before and
     * after reading rows in place (from a GPU, see {@link #nativeLayout()}) knows that no slot of
     * any bucket changed in between, without re-reading each bucket's sequence count. The count
     * grows before a change makes its bucket's sequence count odd. Changes are counted from the
     * first {@link #nativeLayout()} on (only readers in place use the count, so a tier nobody maps
     * does not pay for it); device changes ({@link #beginDeviceChanges}) always.
     */
    public long changes() {
        return changes.sum();
    }

    /**
     * {@link #changes()} if no bucket change was under way when it was read, else -1. A caller
     * that gets a count here, reads rows in place (from a GPU) without checking each bucket's
     * sequence count, and then reads the same {@link #changes()} knows that no row changed while
     * it read: none was being changed at the start and none began until the end.
     *
     * <p>Why the two sums suffice although neither is atomic: each cell only grows and a change
     * counts its end only after its begin; reading the ended count first, a sum of ended changes
     * that equals the sum of begun ones read after it means that every change begun by the start
     * of the second read had ended by then; one that began during that read either makes the
     * begun sum larger than the ended one, or is missed by it and then moves the caller's later
     * {@link #changes()}.
     */
    public long changesIfQuiet() {
        if (!changesCounted) {
            return -1;
        }
        long ended = changesEnded.sum();
        long begun = changes.sum();
        return ended == begun ? begun : -1;
    }

    /**
     * How many counted bucket changes wrote a slot's key (inserts and removals; writes of a held
     * key's row do not). A copy of the tier's keys taken while {@link #changesIfQuiet()} answers,
     * after reading this count, holds every slot's key for as long as this count stays the same.
     * Counted from the first {@link #nativeLayout()} on, as {@link #changes()}; device writes
     * never change keys.
     */
    public long keyChanges() {
        return keyChanges.sum();
    }

    /** Advances the logical clock that recency scores use; call once per batch. */
    public long tick() {
        return clock.incrementAndGet();
    }

    /**
     * The clock as it is, without advancing it: for single-key reads, whose scores then tie with
     * those of the other reads since the last {@link #tick()}, instead of every reader's thread
     * taking the clock's cache line for itself. Recency stays ordered where eviction looks at it:
     * an eviction needs an insert, and the batches that insert tick first.
     */
    public long clock() {
        return clock.get();
    }

    /**
     * Copies the vector of {@code key} to {@code out[row * dim ..]} and refreshes its score.
     *
     * @return {@link #HIT} if found, otherwise the current version of the key's bucket, to pass
     *         to {@link #put} when installing a value read from a lower tier
     */
    public long getOrVersion(long key, float[] out, int row, long now) {
        checkOpen();
        long bucket = bucketOf(key);
        long seqAddr = seqAddress(bucket);
        // Optimistic, without the bucket's lock: every change of a slot (CPU writers under the
        // lock, device writers) makes the count odd while it runs, so a lookup and copy made at one
        // even, unchanged count saw the bucket as it was at some moment.
        while (true) {
            long before = UNSAFE.getLongVolatile(null, seqAddr);
            if ((before & 1) == 0) {
                long slot = findSlot(bucket, key);
                long version = slot < 0 ? UNSAFE.getLongVolatile(null, versionAddress(bucket)) : 0;
                if (slot >= 0) {
                    UNSAFE.copyMemory(null, values.address() + slot * rowBytes, out,
                            FLOAT_ARRAY_BASE + (long) row * rowBytes, rowBytes);
                }
                UNSAFE.loadFence();
                if (UNSAFE.getLongVolatile(null, seqAddr) == before) {
                    if (slot < 0) {
                        return version;
                    }
                    // The score is a hint for eviction: refreshed without the lock, a race with a
                    // writer that just reused the slot costs at most one eviction choice. Written
                    // only when it changes: readers of a hot key between two clock ticks then share
                    // its score's cache line instead of taking it from each other on every read.
                    long scoreAddr = scores.address() + slot * 8;
                    long score = UNSAFE.getLong(scoreAddr);
                    long refreshed = policy.scoreOnHit(key, score, now);
                    if (refreshed != score) {
                        UNSAFE.putLong(scoreAddr, refreshed);
                    }
                    return HIT;
                }
            }
            Thread.onSpinWait();
        }
    }

    /**
     * The current version of {@code key}'s bucket. Every write that may change the value of any key
     * of the bucket (unconditional put, removal, refused admission) changes it, so a caller that
     * reads it before reading {@code key}'s value from any tier, and finds it unchanged later, knows
     * no such write happened in between.
     */
    public long version(long key) {
        checkOpen();
        return UNSAFE.getLongVolatile(null, versionAddress(bucketOf(key)));
    }

    /**
     * The sequence count of {@code key}'s bucket: it changes (by two) whenever any slot of the
     * bucket changes, so an unchanged count means the bucket's rows are as they were.
     */
    public long sequence(long key) {
        checkOpen();
        return UNSAFE.getLongVolatile(null, seqAddress(bucketOf(key)));
    }

    /** Whether {@code key} is present; does not change its score. */
    public boolean contains(long key) {
        checkOpen();
        long bucket = bucketOf(key);
        synchronized (lockFor(bucket)) {
            return findSlot(bucket, key) >= 0;
        }
    }

    /**
     * Writes the vector at {@code src[row * dim ..]} for {@code key}.
     *
     * @param dirty           whether the value is newer than the tier below
     * @param expectedVersion a version from {@link #getOrVersion}, or {@link #ANY_VERSION} to write
     *                        unconditionally
     * @param sink            receives an entry evicted to make room
     */
    public PutResult put(long key, float[] src, int row, boolean dirty, long expectedVersion,
            long now, EvictionSink sink) {
        checkOpen();
        long bucket = bucketOf(key);
        long versionAddr = versionAddress(bucket);
        synchronized (lockFor(bucket)) {
            long version = UNSAFE.getLong(versionAddr);
            if (expectedVersion >= 0 && version != expectedVersion) {
                return PutResult.STALE;
            }
            long slot = findSlot(bucket, key);
            PutResult result = PutResult.UPDATED;
            long score;
            if (slot >= 0) {
                score = policy.scoreOnHit(key, UNSAFE.getLong(scores.address() + slot * 8), now);
            } else {
                slot = freeSlot(bucket);
                if (slot < 0) {
                    slot = lowestScoreSlot(bucket);
                    long victim = UNSAFE.getLong(keys.address() + slot * 8);
                    if (!policy.admit(key, victim)) {
                        UNSAFE.putLongVolatile(null, versionAddr, version + 1);
                        return PutResult.REJECTED;
                    }
                    float[] buf = scratch.get();
                    UNSAFE.copyMemory(null, values.address() + slot * rowBytes, buf, FLOAT_ARRAY_BASE,
                            rowBytes);
                    sink.evicted(victim, buf, (UNSAFE.getByte(flags.address() + slot) & DIRTY) != 0);
                    evictions.incrementAndGet();
                } else {
                    size.incrementAndGet();
                }
                score = policy.scoreOnInsert(key, now);
                result = PutResult.INSERTED;
            }
            boolean counted = beginChange(bucket, result == PutResult.INSERTED);
            UNSAFE.copyMemory(src, FLOAT_ARRAY_BASE + (long) row * rowBytes, null,
                    values.address() + slot * rowBytes, rowBytes);
            UNSAFE.putLong(keys.address() + slot * 8, key);
            UNSAFE.putLong(scores.address() + slot * 8, score);
            UNSAFE.putByte(flags.address() + slot, (byte) (OCCUPIED | (dirty ? DIRTY : 0)));
            endChange(bucket, counted);
            if (expectedVersion < 0) {
                UNSAFE.putLongVolatile(null, versionAddr, version + 1);
            }
            return result;
        }
    }

    /**
     * Adds the vector at {@code src[row * dim ..]} to the value of {@code key} in place, if the
     * tier holds the key, marking it dirty, refreshing its score and changing its bucket's version
     * (as {@link #put} does); readers see the bucket's sequence count odd meanwhile.
     *
     * @return whether the tier holds the key (false: nothing was changed)
     */
    public boolean addTo(long key, float[] src, int row, long now) {
        return changeHeld(key, src, row, now, true);
    }

    /**
     * Overwrites the value of {@code key} with the vector at {@code src[row * dim ..]}, if the tier
     * holds the key, marking it dirty, refreshing its score and changing its bucket's version (as
     * an unconditional {@link #put} does); never inserts or evicts. Readers see the bucket's
     * sequence count odd meanwhile.
     *
     * @return whether the tier holds the key (false: nothing was changed)
     */
    public boolean replace(long key, float[] src, int row, long now) {
        return changeHeld(key, src, row, now, false);
    }

    /** {@link #addTo} ({@code add}) or {@link #replace}. */
    private boolean changeHeld(long key, float[] src, int row, long now, boolean add) {
        checkOpen();
        long bucket = bucketOf(key);
        long versionAddr = versionAddress(bucket);
        synchronized (lockFor(bucket)) {
            long slot = findSlot(bucket, key);
            if (slot < 0) {
                return false;
            }
            long scoreAddr = scores.address() + slot * 8;
            UNSAFE.putLong(scoreAddr, policy.scoreOnHit(key, UNSAFE.getLong(scoreAddr), now));
            boolean counted = beginChange(bucket, false);
            long at = values.address() + slot * rowBytes;
            if (add) {
                int from = row * dim;
                for (int d = 0; d < dim; d++, at += 4) {
                    UNSAFE.putFloat(at, UNSAFE.getFloat(at) + src[from + d]);
                }
            } else {
                UNSAFE.copyMemory(src, FLOAT_ARRAY_BASE + (long) row * rowBytes, null, at, rowBytes);
            }
            UNSAFE.putByte(flags.address() + slot, (byte) (OCCUPIED | DIRTY));
            endChange(bucket, counted);
            UNSAFE.putOrderedLong(null, versionAddr, UNSAFE.getLong(versionAddr) + 1);
            return true;
        }
    }

    /**
     * Removes {@code key} if present. The bucket's version changes even when the key is absent,
     * so a value of this key read from below before the removal can no longer be installed.
     *
     * @return whether the key was present
     */
    public boolean remove(long key) {
        checkOpen();
        long bucket = bucketOf(key);
        long versionAddr = versionAddress(bucket);
        synchronized (lockFor(bucket)) {
            UNSAFE.putLongVolatile(null, versionAddr, UNSAFE.getLong(versionAddr) + 1);
            long slot = findSlot(bucket, key);
            if (slot < 0) {
                return false;
            }
            boolean counted = beginChange(bucket, true);
            UNSAFE.putByte(flags.address() + slot, (byte) 0);
            UNSAFE.putLong(keys.address() + slot * 8, ReservedKeys.EMPTY);
            endChange(bucket, counted);
            size.decrementAndGet();
            return true;
        }
    }

    /** Number of buckets; {@link #forEachDirty} works on bucket ranges. */
    public long buckets() {
        return numBuckets;
    }

    /** Visits the dirty entries of buckets {@code [fromBucket, toBucket)}. */
    public void forEachDirty(long fromBucket, long toBucket, VectorVisitor visitor) {
        visitRange(fromBucket, toBucket, true, visitor);
    }

    /**
     * Marks {@code key} clean if it is present, dirty and still holds the vector at
     * {@code written[row * dim ..]} (bit for bit): call after that vector reached the tier below.
     * A value written in between stays dirty, so a writer that does not wait for the flush
     * ({@link #replace}) never has its value marked clean unwritten.
     *
     * @return whether the entry was marked clean
     */
    public boolean markCleanIfUnchanged(long key, float[] written, int row) {
        checkOpen();
        long bucket = bucketOf(key);
        synchronized (lockFor(bucket)) {
            long slot = findSlot(bucket, key);
            if (slot < 0) {
                return false;
            }
            long at = values.address() + slot * rowBytes;
            int from = row * dim;
            for (int d = 0; d < dim; d++, at += 4) {
                if (UNSAFE.getInt(at) != Float.floatToRawIntBits(written[from + d])) {
                    return false;
                }
            }
            UNSAFE.putByte(flags.address() + slot, OCCUPIED);
            return true;
        }
    }

    // ---- VectorTier: the tier used alone, as a plain cache (rejected and evicted entries are dropped)

    @Override
    public int multiGet(long[] batch, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("multiGet", batch, out, dim);
        BatchChecks.checkFlags("multiGet", "found", batch, found);
        long now = tick();
        policy.recordAccesses(batch, 0, batch.length);
        int hits = 0;
        for (int i = 0; i < batch.length; i++) {
            found[i] = getOrVersion(batch[i], out, i, now) == HIT;
            hits += found[i] ? 1 : 0;
        }
        return hits;
    }

    @Override
    public void multiPut(long[] batch, float[] src) {
        BatchChecks.checkRows("multiPut", batch, src, dim);
        long now = tick();
        policy.recordAccesses(batch, 0, batch.length);
        for (int i = 0; i < batch.length; i++) {
            put(batch[i], src, i, false, -1, now, EvictionSink.DISCARD);
        }
    }

    @Override
    public void multiDelete(long[] batch) {
        BatchChecks.checkKeys("multiDelete", batch);
        for (long key : batch) {
            remove(key);
        }
    }

    @Override
    public int contains(long[] batch, boolean[] out) {
        BatchChecks.checkKeys("contains", batch);
        BatchChecks.checkFlags("contains", "out", batch, out);
        int present = 0;
        for (int i = 0; i < batch.length; i++) {
            out[i] = contains(batch[i]);
            present += out[i] ? 1 : 0;
        }
        return present;
    }

    @Override
    public long size() {
        checkOpen();
        return size.get();
    }

    /** Visits every entry; each bucket is read under its lock, buckets one after another. */
    @Override
    public void forEach(VectorVisitor visitor) {
        visitRange(0, numBuckets, false, visitor);
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            closeQuietly(counts, values, flags, scores, keys);
        }
    }

    /**
     * Where the tier's arrays live in native memory (see "Reading the tier in place from a GPU"
     * above). Each array starts on a page boundary and owns the whole pages it spans, so each can
     * be pinned on its own. The addresses stay valid until {@link #close()}; whoever pins or maps
     * them must undo that before.
     *
     * @param keysAddress   {@code buckets * BUCKET_SLOTS} int64 keys, {@link ReservedKeys#EMPTY} in
     *                      slots without an entry
     * @param valuesAddress {@code dim} float32 per slot
     * @param countsAddress two int64s per bucket: its sequence count, then its version
     *                      ({@link #seqAddress}, {@link #versionAddress})
     * @param flagsAddress  one byte per slot: 1 occupied, 2 dirty
     */
    public record NativeLayout(long keysAddress, long valuesAddress, long countsAddress, long flagsAddress,
            long buckets, int dim) {
        /** Bytes of the counts array: two int64s per bucket. */
        public long countsBytes() {
            return buckets * COUNTS_BYTES;
        }

        /** Address of {@code bucket}'s sequence count. */
        public long seqAddress(long bucket) {
            return DramTier.seqAddress(countsAddress, bucket);
        }

        /** Address of {@code bucket}'s version, the int64 after its sequence count. */
        public long versionAddress(long bucket) {
            return DramTier.versionAddress(countsAddress, bucket);
        }

        /** Slots of the tier. */
        public long slots() {
            return buckets * BUCKET_SLOTS;
        }

        /** Bytes of the whole pages an array of {@code bytes} spans from its (page-aligned) address. */
        public static long pageSpan(long bytes) {
            return OffHeapMemory.roundToPage(bytes);
        }
    }

    /** The native layout of this tier, for in-place reads from a GPU. */
    public NativeLayout nativeLayout() {
        checkOpen();
        startCountingChanges();
        return new NativeLayout(keys.address(), values.address(), counts.address(), flags.address(), numBuckets, dim);
    }

    /**
     * Copies the row of {@code slot} (in {@code bucket}) to the array at {@code offset}. Caller
     * holds the bucket's stripe lock, so no CPU writer changes it; a device writer
     * ({@link #beginDeviceChanges}) may, and is seen by the bucket's sequence count, odd while it
     * writes: the copy is retried until it was made at one even count.
     */
    private void copyRow(long bucket, long slot, float[] to, long offset) {
        long seqAddr = seqAddress(bucket);
        while (true) {
            long before = UNSAFE.getLongVolatile(null, seqAddr);
            if ((before & 1) == 0) {
                UNSAFE.copyMemory(null, values.address() + slot * rowBytes, to, offset, rowBytes);
                UNSAFE.loadFence();
                if (UNSAFE.getLongVolatile(null, seqAddr) == before) {
                    return;
                }
            }
            Thread.onSpinWait();
        }
    }

    /**
     * Announces that a device (a GPU writing the pinned, mapped tier in place) is about to change
     * {@code buckets} buckets: counted in {@link #changes()} before they begin. A device writes
     * only while no CPU writer can run (the store's mutation lock), rows of keys the tier holds,
     * as a seqlock writer: each bucket's sequence count odd while it writes, then even; it sets
     * the slot's dirty flag and changes the bucket's version. CPU readers copy rows at an even,
     * unchanged count.
     */
    public void beginDeviceChanges(long buckets) {
        changes.add(buckets);
    }

    /**
     * Announces that the device changes {@link #beginDeviceChanges} announced have all ended (every
     * bucket's sequence count even again). A device write that failed part-way never calls it,
     * so {@link #changesIfQuiet()} answers -1 from then on and readers in place check every row.
     */
    public void endDeviceChanges(long buckets) {
        changesEnded.add(buckets);
    }

    /**
     * Makes the bucket's count odd; returns whether the change is counted (see {@link #changes()}).
     * {@code keyChange}: the change writes a slot's key (an insert or a removal), counted in
     * {@link #keyChanges()} after {@link #changes()}.
     */
    private boolean beginChange(long bucket, boolean keyChange) {
        boolean counted = countingChanges;
        if (counted) {
            changes.increment();
            if (keyChange) {
                keyChanges.increment();
            }
        }
        long a = seqAddress(bucket);
        // Release stores suffice for a count's writer, who holds the bucket's lock: it needs its
        // own stores ordered (the odd count, then the slots, then the even count), not a full fence.
        UNSAFE.putOrderedLong(null, a, UNSAFE.getLong(a) + 1);
        // The slot writes that follow must not become visible before the odd count.
        UNSAFE.storeFence();
        return counted;
    }

    /** Makes the bucket's count even again; {@code counted} as {@link #beginChange} returned it. */
    private void endChange(long bucket, boolean counted) {
        long a = seqAddress(bucket);
        UNSAFE.putOrderedLong(null, a, UNSAFE.getLong(a) + 1);
        if (counted) {
            changesEnded.increment();
        }
    }

    /**
     * Counts bucket changes from now on (idempotent). A change that began before is not counted,
     * so this waits until every such change has ended (each runs under its stripe's lock) before
     * {@link #changesIfQuiet()} answers.
     */
    private void startCountingChanges() {
        synchronized (countingStart) {
            if (changesCounted) {
                return;
            }
            countingChanges = true;
            for (Object lock : locks) {
                synchronized (lock) {
                    // Only waits for the lock's holder: the change it may be making has ended when we get it.
                }
            }
            changesCounted = true;
        }
    }

    private void visitRange(long fromBucket, long toBucket, boolean dirtyOnly, VectorVisitor visitor) {
        checkOpen();
        if (fromBucket < 0 || toBucket > numBuckets || fromBucket > toBucket) {
            throw new IllegalArgumentException("bucket range [" + fromBucket + ", " + toBucket
                    + ") is outside [0, " + numBuckets + ")");
        }
        float[] buf = new float[dim];
        for (long bucket = fromBucket; bucket < toBucket; bucket++) {
            synchronized (lockFor(bucket)) {
                long base = bucket * BUCKET_SLOTS;
                for (long slot = base; slot < base + BUCKET_SLOTS; slot++) {
                    byte f = UNSAFE.getByte(flags.address() + slot);
                    if ((f & OCCUPIED) != 0 && (!dirtyOnly || (f & DIRTY) != 0)) {
                        copyRow(bucket, slot, buf, FLOAT_ARRAY_BASE);
                        visitor.visit(UNSAFE.getLong(keys.address() + slot * 8), buf);
                    }
                }
            }
        }
    }

    private long bucketOf(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        h ^= h >>> 29;
        return ((h >>> 32) * numBuckets) >>> 32;
    }

    private Object lockFor(long bucket) {
        return locks[(int) bucket & lockMask];
    }

    private long findSlot(long bucket, long key) {
        if (key == ReservedKeys.EMPTY) {
            return -1;
        }
        // An unused slot holds EMPTY (see the class comment), so the keys alone tell: a hit touches
        // no flags line.
        long base = bucket * BUCKET_SLOTS;
        long keysBase = keys.address();
        for (long slot = base; slot < base + BUCKET_SLOTS; slot++) {
            if (UNSAFE.getLong(keysBase + slot * 8) == key) {
                return slot;
            }
        }
        return -1;
    }

    private long freeSlot(long bucket) {
        long base = bucket * BUCKET_SLOTS;
        for (long slot = base; slot < base + BUCKET_SLOTS; slot++) {
            if (UNSAFE.getLong(keys.address() + slot * 8) == ReservedKeys.EMPTY) {
                return slot;
            }
        }
        return -1;
    }

    private long lowestScoreSlot(long bucket) {
        long base = bucket * BUCKET_SLOTS;
        long best = base;
        long bestScore = UNSAFE.getLong(scores.address() + base * 8);
        for (long slot = base + 1; slot < base + BUCKET_SLOTS; slot++) {
            long score = UNSAFE.getLong(scores.address() + slot * 8);
            if (score < bestScore) {
                best = slot;
                bestScore = score;
            }
        }
        return best;
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("DRAM tier is closed");
        }
    }

    private static void closeQuietly(OffHeapMemory... blocks) {
        for (OffHeapMemory b : blocks) {
            if (b != null) {
                b.close();
            }
        }
    }
}
