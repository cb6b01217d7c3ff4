package io.mlkv.core.hbm;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * What write-back needs to know about entries in transit between HBM and the tiers below. Which
 * entries are dirty lives on the GPU, a mark beside each entry (see
 * {@link io.mlkv.gpu.table.EntryState}); this class keeps what readers on the host need.
 *
 * <p><b>Invariant.</b> An entry is dirty exactly while HBM holds a value of its key newer than
 * every tier below. A dirty entry leaves HBM only inside an install bracketed by
 * {@link #beginMove()} and {@link #endMove()}, which returns it with its mark, and reaches DRAM
 * (or the write-back buffer) before {@code endMove}, after which its demotion stamp (one per
 * group of keys by hash) holds that move's count. A key missed in HBM can be stale below only if
 * its dirty entry was in transit while the lookup ran, that is if the {@link #moves()} count was
 * odd or changed between just before and just after the lookup (a move that starts later evicts
 * only entries the lookup found). Then the reader waits for {@link #awaitSettled()} and reads
 * again the keys {@link #demotedSince} the count it read before its lookup (a superset of those
 * in transit: nothing per key is read at lookup time).
 *
 * <p>Lock rule: {@link #noteDirtyWrites}, {@link #allClean} and the brackets run under the
 * store's mutation lock; the moves count and stamps are read without it.
 */
final class WriteBackTransit {
    static final int DEMOTION_STAMPS = 1 << 14;

    /** False only while no entry can be dirty (none written since the last full write-back). Guarded by the mutation lock. */
    private boolean mayHaveDirty;
    /** A sequence count, odd while an install that may evict dirty entries is running. */
    private final AtomicLong moves = new AtomicLong();
    /**
     * By key hash: the {@link #moves} count (odd) of the last move that wrote a dirty entry evicted
     * from HBM below. Moves run one at a time under the mutation lock, so each stamp only grows.
     */
    private final AtomicLongArray demotionStamps = new AtomicLongArray(DEMOTION_STAMPS);
    /**
     * The {@link #moves} count (odd) of the last move that set every stamp at once
     * ({@link #markAllDemoted}): one store instead of {@value #DEMOTION_STAMPS}. A key's stamp is the
     * higher of this and its own.
     */
    private volatile long allDemoted;

    /** Records that a write is about to mark entries dirty. */
    void noteDirtyWrites() {
        mayHaveDirty = true;
    }

    /** Records that a write-back of every dirty entry has finished. */
    void allClean() {
        mayHaveDirty = false;
    }

    boolean mayHaveDirty() {
        return mayHaveDirty;
    }

    /** Starts an install that may evict dirty entries (a no-op while none can be dirty). */
    void beginMove() {
        if (mayHaveDirty) {
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

    /**
     * Whether a dirty entry of {@code key} (or of a key sharing its stamp) may have reached the
     * tiers below during a move that was running when {@link #moves()} read {@code movesBefore},
     * or started later.
     */
    boolean demotedSince(long key, long movesBefore) {
        return Math.max(allDemoted, demotionStamps.get(stampIndex(key))) >= (movesBefore | 1);
    }

    /**
     * Records that dirty {@code key} has been written below after leaving HBM, in the running move.
     * A release store is enough: readers ask {@link #demotedSince} only after
     * {@link #awaitSettled()} saw this move end, and {@link #endMove()}'s increment follows it.
     */
    void markDemoted(long key) {
        demotionStamps.setRelease(stampIndex(key), moves.get() | 1);
    }

    /**
     * {@link #markDemoted(long)} of the {@code count} keys {@code keys[e]} with {@code which[e]}.
     * When they are at least as many as the stamps, every stamp is set instead: a reader then
     * reads all of its misses again, as it would have (nearly every stamp would change).
     */
    void markDemoted(long[] keys, boolean[] which, int count) {
        if (count >= DEMOTION_STAMPS) {
            markAllDemoted();
            return;
        }
        for (int e = 0; e < which.length; e++) {
            if (which[e]) {
                markDemoted(keys[e]);
            }
        }
    }

    /** Sets every stamp to the running move: as if a key of each had been demoted. */
    void markAllDemoted() {
        allDemoted = moves.get() | 1;
    }

    private static int stampIndex(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 50) & (DEMOTION_STAMPS - 1);
    }
}
