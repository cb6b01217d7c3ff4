package io.mlkv.core;

import io.mlkv.core.hbm.HbmShards;
import io.mlkv.core.tiers.BatchPool;
import io.mlkv.core.tiers.Batches;
import io.mlkv.core.tiers.HostTiers;
import io.mlkv.core.tiers.Lifecycle;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.agrona.collections.Hashing;
import org.agrona.collections.Long2LongHashMap;

/**
 * The store's one write path for host arrays ({@link MlkvStore#multiPut}, {@link
 * MlkvStore#accumulate}, the inserts of {@link MlkvStore#findOrInsert}, and the keys of device
 * writes that HBM does not hold). Lock rule: {@link #apply} takes the store's mutation lock for the
 * whole batch (but see the in-place puts below) and bumps the mutation epoch before releasing it,
 * so such a batch is seen whole or not at all by other writers, and a reader that saw the epoch
 * unchanged knows its misses still stand.
 * The per-key host work of a large batch (existence checks, reads of current values, DRAM writes
 * of its distinct keys) runs in parts on the store's batch threads while the caller holds the lock.
 *
 * <p>A write-through store without HBM and spill log lets go of the mutation lock while RocksDB
 * takes the batch: the batch holds its keys' {@link KeyStripes} from before its first look at them
 * until it is in DRAM, so concurrent writers of other keys log their writes in one of RocksDB's
 * group commits instead of one after another. The epoch is bumped before the lock is let go (a
 * reader that read RocksDB before the write does not promote what it read after it) and again at
 * the end. Deletes, the DRAM-only path of findOrInsert and checkpoints take the stripes too.
 *
 * <p>In a write-back store without HBM tier and spill log ({@link #writesInPlace}), a put or an
 * accumulate first writes the keys DRAM holds in place, without the mutation lock: each key's row
 * is overwritten, or has its delta added, under its DRAM bucket's lock ({@link
 * HostTiers#replaceInDram}, {@link HostTiers#addInDram}), so other writers, like readers, may see
 * some of a batch's keys written before the rest. Only what DRAM lacked takes the locked path: for
 * an accumulate the deltas of the keys it lacked, for a put, in each part of the batch by key, the
 * keys from the first one DRAM lacked on (so a repeated key's last row is written last). Nothing
 * the mutation lock guards changes in place: no key appears or disappears, nothing is evicted, the
 * entry count and the mutation epoch stay. A key enters DRAM only under that lock, so a writer
 * holding it that read a key DRAM lacked (an accumulate's read-modify-write) writes it before an
 * in-place write can, which then follows it (which is why the locked path, too, adds an
 * accumulate's deltas in place to keys DRAM holds by then, and reads, adds and writes back only
 * keys it lacks); bucket versions change as for any write (a promotion
 * read before is not installed), and a flush marks an entry clean only if it still holds the
 * value it wrote below. Keep that invariant if DRAM inserts ever leave the lock.
 */
final class WritePath {
    /** Keys per part of the DRAM writes split over the store's threads: below twice this, the caller does them all. */
    private static final int KEYS_PER_PART = 1024;
    private final int dim;
    private final Durability durability;
    private final HostTiers host;
    /** Null without an HBM tier. */
    private final HbmShards hbm;
    /** Null without a spill log. */
    private final SpillLog spill;
    private final ReentrantLock mutation;
    private final AtomicLong mutationEpoch;
    private final AtomicLong entryCount;
    private final Lifecycle lifecycle;
    /** Splits the per-key host work of a large batch over the store's threads. */
    private final BatchPool pool;
    /** Held by writers whose RocksDB write runs outside the mutation lock; null where none does. */
    private final KeyStripes stripes;
    /** Whether puts settle which of their keys are new, for the entry count ({@link SizeCounting#ON_WRITE}). */
    private final boolean countOnWrite;

    WritePath(int dim, Durability durability, HostTiers host, HbmShards hbm, SpillLog spill, ReentrantLock mutation,
            AtomicLong mutationEpoch, AtomicLong entryCount, Lifecycle lifecycle, BatchPool pool, boolean countOnWrite) {
        this.pool = pool;
        this.countOnWrite = countOnWrite;
        this.dim = dim;
        this.durability = durability;
        this.host = host;
        this.hbm = hbm;
        this.spill = spill;
        this.mutation = mutation;
        this.mutationEpoch = mutationEpoch;
        this.entryCount = entryCount;
        this.lifecycle = lifecycle;
        this.stripes = durability == Durability.WRITE_THROUGH && hbm == null && spill == null ? new KeyStripes() : null;
    }

    /**
     * Locks the stripes a caller must hold, before the mutation lock, to change or settle the
     * existence of {@code keys} itself; null where this store has no stripes.
     */
    KeyStripes.Held lockStripes(long[] keys) {
        return stripes == null ? null : stripes.lock(keys);
    }

    /** Locks every stripe (waits for the writes between their RocksDB write and DRAM); null where none. */
    KeyStripes.Held lockAllStripes() {
        return stripes == null ? null : stripes.lockAll();
    }

    static void unlock(KeyStripes.Held held) {
        if (held != null) {
            held.unlock();
        }
    }

    /**
     * The one write path: a put's or an accumulate's keys that DRAM holds in place, where {@link
     * #writesInPlace} (see the class comment); then, under the mutation lock, an accumulate first
     * adds the deltas of the keys DRAM holds by then there in place (without an HBM tier, with
     * write-back durability); then, for the rest, deduplicate the batch, read the current value
     * of each distinct key (skipped when {@code absentSince} equals the mutation epoch: the caller
     * found every key absent and nothing has been written since), compute its final value (running the initializer, if any, before
     * anything is written), write RocksDB first if write-through, then install into DRAM and
     * write back whatever DRAM pushed out.
     */
    void apply(long[] keys, Change change) {
        Change.Kind kind = change.kind();
        if ((kind != Change.Kind.PUT && kind != Change.Kind.ACCUMULATE) || !writesInPlace()
                || mutation.isHeldByCurrentThread()) {
            applyLocked(keys, change);
            return;
        }
        float[] rows = change.rows();
        boolean[] done = new boolean[keys.length];
        int inPlace;
        lifecycle.enter();
        try {
            inPlace = kind == Change.Kind.PUT ? host.replaceInDram(keys, rows, done)
                    : host.addInDram(keys, rows, keys.length, done);
        } finally {
            lifecycle.exit();
        }
        if (inPlace == keys.length) {
            return;
        }
        if (inPlace == 0) {
            applyLocked(keys, change);
            return;
        }
        // The rest, in batch order: a put's key repeated on both sides of where its part stopped is
        // written there last, so it keeps its last row; an accumulate's deltas add in any order.
        int[] rest = new int[keys.length - inPlace];
        for (int i = 0, r = 0; i < keys.length; i++) {
            if (!done[i]) {
                rest[r++] = i;
            }
        }
        float[] restRows = Batches.gatherRows(rows, dim, rest, rest.length);
        applyLocked(Batches.gather(keys, rest, rest.length),
                kind == Change.Kind.PUT ? Change.put(restRows) : Change.accumulate(restRows));
    }

    private void applyLocked(long[] keys, Change change) {
        Change.Kind kind = change.kind();
        float[] arg = change.rows();
        float[] out = change.out();
        VectorInitializer init = change.initializer();
        long absentSince = change.absentSince();
        lifecycle.enter();
        // A caller already holding the mutation lock holds the stripes of its keys (lock order).
        KeyStripes.Held held = mutation.isHeldByCurrentThread() ? null : lockStripes(keys);
        mutation.lock();
        boolean locked = true;
        try {
            writePending();
            if (kind == Change.Kind.ACCUMULATE && writesInPlace()) {
                // Keys DRAM holds take their deltas there, in place; the rest go the whole way below.
                // Not redundant after apply's pass before the lock: a key another writer brought into
                // DRAM since must not be read, added to and written back here, or an in-place add
                // running meanwhile without the lock would be lost. What is left below is absent
                // from DRAM, and only the lock held here can bring it in.
                boolean[] added = new boolean[keys.length];
                int inPlace = host.addInDram(keys, arg, keys.length, added);
                if (inPlace == keys.length) {
                    return;
                }
                if (inPlace > 0) {
                    int[] rest = new int[keys.length - inPlace];
                    for (int i = 0, r = 0; i < keys.length; i++) {
                        if (!added[i]) {
                            rest[r++] = i;
                        }
                    }
                    keys = Batches.gather(keys, rest, rest.length);
                    arg = Batches.gatherRows(arg, dim, rest, rest.length);
                }
            }
            int n = keys.length;
            // Sized for the batch up front: growing it by rehashing cost a few per cent of a call.
            Long2LongHashMap uniqueIndex = new Long2LongHashMap((int) Math.min(1 << 30, 2L * n + 8),
                    Hashing.DEFAULT_LOAD_FACTOR, -1);
            int[] rowOf = new int[n];
            long[] unique = new long[n];
            int u = 0;
            for (int i = 0; i < n; i++) {
                long idx = uniqueIndex.get(keys[i]);
                if (idx < 0) {
                    idx = u;
                    uniqueIndex.put(keys[i], u);
                    unique[u++] = keys[i];
                }
                rowOf[i] = (int) idx;
            }
            float[] finals = new float[u * dim];
            boolean[] existed = new boolean[u];
            if (kind == Change.Kind.PUT) {
                if (countOnWrite) {
                    host.existing(unique, u, existed, true);
                }
            } else if (absentSince == Change.NO_EPOCH || mutationEpoch.get() != absentSince) {
                readCurrent(unique, u, finals, existed);
            }

            boolean[] write = new boolean[u];
            switch (kind) {
                case PUT:
                    for (int i = 0; i < n; i++) {
                        System.arraycopy(arg, i * dim, finals, rowOf[i] * dim, dim);
                        write[rowOf[i]] = true;
                    }
                    break;
                case ACCUMULATE:
                    for (int r = 0; r < u; r++) {
                        if (!existed[r]) {
                            Arrays.fill(finals, r * dim, (r + 1) * dim, 0f);
                        }
                    }
                    for (int i = 0; i < n; i++) {
                        int base = rowOf[i] * dim;
                        for (int d = 0; d < dim; d++) {
                            finals[base + d] += arg[i * dim + d];
                        }
                        write[rowOf[i]] = true;
                    }
                    break;
                case INSERT_ABSENT:
                    for (int r = 0; r < u; r++) {
                        if (!existed[r]) {
                            runInitializer(init, unique[r], finals, r);
                            write[r] = true;
                        }
                    }
                    for (int i = 0; i < n; i++) {
                        System.arraycopy(finals, rowOf[i] * dim, out, i * dim, dim);
                    }
                    break;
                default:
                    throw new AssertionError(kind);
            }
            int w = 0;
            long added = 0;
            for (int r = 0; r < u; r++) {
                if (write[r]) {
                    w++;
                    added += existed[r] ? 0 : 1;
                }
            }
            // Every distinct key written (puts and accumulates always): its rows are written as they are.
            long[] writeKeys = unique;
            float[] writeValues = finals;
            if (w < u) {
                writeKeys = new long[w];
                writeValues = new float[w * dim];
                for (int r = 0, at = 0; r < u; r++) {
                    if (write[r]) {
                        writeKeys[at] = unique[r];
                        System.arraycopy(finals, r * dim, writeValues, at * dim, dim);
                        at++;
                    }
                }
            }
            if (spill != null) {
                spill.invalidate(writeKeys, w);
            }
            if (durability == Durability.WRITE_THROUGH && held != null && w > 0) {
                mutationEpoch.incrementAndGet();
                mutation.unlock();
                locked = false;
                host.rocks().putAll(writeKeys, writeValues, w);
                mutation.lock();
                locked = true;
            } else if (durability == Durability.WRITE_THROUGH) {
                host.rocks().putAll(writeKeys, writeValues, w);
            }
            boolean dirty = durability == Durability.WRITE_BACK;
            // With write-back, keys HBM holds are written there only; the rest go to DRAM.
            boolean[] inHbm = new boolean[w];
            if (hbm != null && hbm.writeBack()) {
                hbm.writeHeld(writeKeys, writeValues, w, inHbm);
            }
            writeRows(writeKeys, writeValues, w, dirty, inHbm);
            if (hbm != null && !hbm.writeBack()) {
                hbm.update(writeKeys, writeValues, w);
            }
            entryCount.addAndGet(added);
            writePending();
        } finally {
            if (locked) {
                mutationEpoch.incrementAndGet();
                mutation.unlock();
            }
            unlock(held);
            lifecycle.exit();
        }
    }

    /**
     * Whether puts and accumulates write the keys DRAM holds there in place, without the mutation
     * lock ({@link #apply}; an accumulate under the lock too): no HBM tier (whose copy could be
     * newer), no spill log, and write-back durability (write-through needs the final values in
     * RocksDB first).
     */
    private boolean writesInPlace() {
        return hbm == null && spill == null && durability == Durability.WRITE_BACK;
    }

    /**
     * Writes what DRAM evicted (the write-back buffer) to RocksDB: where {@link #writesInPlace}, on
     * the buffer's own thread while the caller goes on ({@link HostTiers#writePendingInBackground});
     * elsewhere (an HBM tier or a spill log, whose moves expect RocksDB current) here.
     */
    private void writePending() {
        if (writesInPlace()) {
            host.writePendingInBackground();
        } else {
            host.writePending();
        }
    }

    private void runInitializer(VectorInitializer init, long key, float[] dst, int row) {
        try {
            init.initialize(key, dst, row * dim, dim);
        } catch (RuntimeException | Error e) {
            throw new MlkvException(StatusCode.CALLBACK_FAILED, "findOrInsert initializer for key " + key,
                    null, "the initializer threw " + e + "; nothing from this batch was inserted", e);
        }
    }

    /**
     * Reads the current values of {@code keys[0, n)}: from HBM first with write-back (where it may
     * be newer than below), then below. Caller holds the mutation lock.
     */
    private void readCurrent(long[] keys, int n, float[] out, boolean[] found) {
        if (hbm != null && hbm.writeBack() && n > 0) {
            hbm.peek(Arrays.copyOf(keys, n), out, found);
        }
        host.readCurrent(keys, n, out, found);
    }


    /** {@link HostTiers#writeRows} of rows {@code [0, count)} of distinct keys, in parts on the store's threads. */
    private void writeRows(long[] keys, float[] values, int count, boolean dirty, boolean[] skip) {
        pool.runRanges(count, KEYS_PER_PART, (from, to) -> host.writeRows(keys, values, from, to, dirty, skip));
    }
}
