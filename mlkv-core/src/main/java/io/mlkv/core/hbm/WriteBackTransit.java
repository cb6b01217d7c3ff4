package io.mlkv.core.hbm;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;
import org.agrona.collections.LongHashSet;

/**
 * What write-back needs to know about entries in transit between HBM and the tiers below.
 *
 * <p><b>Invariant.</b> A key is in {@link #isDirty dirty} exactly while HBM holds a value of it
 * newer than every tier below. A dirty entry leaves HBM only inside an install bracketed by
 * {@link #beginMove()} and {@link #endMove()}, and reaches DRAM (or the write-back buffer) before
 * {@code endMove}, after which its {@link #demotionStamp} has changed. So a reader that missed a
 * key in HBM and then read it below has seen its newest value unless the {@link #moves()} count
 * was odd or changed in between; if it did, the reader waits for {@link #awaitSettled()} and
 * reads again the keys whose stamp changed since its HBM lookup.
 *
 * <p>Lock rule: the dirty set and the brackets are changed under the store's mutation lock; the
 * moves count and stamps are read without it.
 */
final class WriteBackTransit {
    private static final int DEMOTION_STAMPS = 1 << 14;

    /** Guarded by the mutation lock. */
    private final LongHashSet dirty = new LongHashSet();
    /** A sequence count, odd while an install that may evict dirty entries is running. */
    private final AtomicLong moves = new AtomicLong();
    /** Bumped (by key hash) once a dirty entry evicted from HBM has reached the tiers below. */
    private final AtomicLongArray demotionStamps = new AtomicLongArray(DEMOTION_STAMPS);

    void markDirty(long key) {
        dirty.add(key);
    }

    boolean isDirty(long key) {
        return dirty.contains(key);
    }

    boolean hasDirty() {
        return !dirty.isEmpty();
    }

    /** Forgets that {@code key} is dirty; returns whether it was. */
    boolean takeDirty(long key) {
        return dirty.remove(key);
    }

    long[] dirtyKeys() {
        long[] out = new long[dirty.size()];
        LongHashSet.LongIterator it = dirty.iterator();
        for (int i = 0; i < out.length; i++) {
            out[i] = it.nextValue();
        }
        return out;
    }

    /** Starts an install that may evict dirty entries (a no-op while nothing is dirty). */
    void beginMove() {
        if (!dirty.isEmpty()) {
            moves.incrementAndGet();
        }
    }

    /** Ends what {@link #beginMove()} started. */
    void endMove() {
        if ((moves.get() & 1) == 1) {
            moves.incrementAndGet();
        }
    }

    long moves() {
        return moves.get();
    }

    /** Waits until no install that may evict dirty entries is running. */
    void awaitSettled() {
        while ((moves.get() & 1) == 1) {
            LockSupport.parkNanos(20_000);
        }
    }

    long demotionStamp(long key) {
        return demotionStamps.get(stampIndex(key));
    }

    /** Records that dirty {@code key} has been written below after leaving HBM. */
    void markDemoted(long key) {
        demotionStamps.incrementAndGet(stampIndex(key));
    }

    private static int stampIndex(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 50) & (DEMOTION_STAMPS - 1);
    }
}
