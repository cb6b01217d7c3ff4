package io.mlkv.core;

import java.util.Arrays;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Locks by key for writers that do part of their work outside the store's mutation lock: a
 * write-through store without HBM and spill log writes RocksDB before it takes that lock (see
 * {@link WritePath}), so that concurrent writers of different keys meet in RocksDB's group commit
 * instead of queueing one log write at a time. A writer holds the stripes of its keys from before
 * it first looks at them until its write is in every tier; two writers of one key therefore never
 * interleave, and the mutation lock keeps what it guards (which keys DRAM holds, the entry count,
 * the mutation epoch).
 *
 * <p>Lock order: stripes (ascending, all a batch needs at once), then the mutation lock; never a
 * stripe while holding the mutation lock. Reentrant, like the locks it is made of.
 */
final class KeyStripes {
    private static final int STRIPE_BITS = 14;
    /**
     * Enough stripes that two concurrent batches of 64 keys share one about a fifth of the time
     * (1 - e^(-64 * 64 / 16384)); a large batch takes them all.
     */
    private static final int STRIPES = 1 << STRIPE_BITS;
    /** Batches of more keys than this lock every stripe rather than sort theirs. */
    private static final int SORT_LIMIT = 1024;

    private final ReentrantLock[] locks = new ReentrantLock[STRIPES];

    KeyStripes() {
        for (int i = 0; i < STRIPES; i++) {
            locks[i] = new ReentrantLock();
        }
    }

    /** The stripes held by one {@link #lock} call, released by {@link #unlock}. */
    static final class Held {
        private final KeyStripes owner;
        private final int[] ids;
        private final int count;

        private Held(KeyStripes owner, int[] ids, int count) {
            this.owner = owner;
            this.ids = ids;
            this.count = count;
        }

        /** Releases the stripes, in reverse order of locking. */
        void unlock() {
            for (int i = count - 1; i >= 0; i--) {
                owner.locks[ids[i]].unlock();
            }
        }
    }

    /** Locks the stripes of {@code keys}, each once, in ascending order. */
    Held lock(long[] keys) {
        if (keys.length > SORT_LIMIT) {
            return lockAll();
        }
        int[] ids = new int[keys.length];
        for (int i = 0; i < keys.length; i++) {
            ids[i] = stripeOf(keys[i]);
        }
        Arrays.sort(ids);
        int count = 0;
        for (int id : ids) {
            if (count == 0 || ids[count - 1] != id) {
                ids[count++] = id;
            }
        }
        return lock(ids, count);
    }

    /** Locks every stripe: waits for every writer between its stripes and its last tier, and holds off new ones. */
    Held lockAll() {
        int[] ids = new int[STRIPES];
        for (int i = 0; i < STRIPES; i++) {
            ids[i] = i;
        }
        return lock(ids, STRIPES);
    }

    private Held lock(int[] ids, int count) {
        for (int i = 0; i < count; i++) {
            locks[ids[i]].lock();
        }
        return new Held(this, ids, count);
    }

    /** A key's stripe: a multiplicative mix, so that neighbouring ids spread over stripes. */
    static int stripeOf(long key) {
        return (int) ((key * 0x9E3779B97F4A7C15L) >>> (64 - STRIPE_BITS));
    }
}
