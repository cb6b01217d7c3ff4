package io.mlkv.core.tiers;

import io.mlkv.storage.ReservedKeys;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Keys known to be in the store below DRAM: keys DRAM evicted, and keys an existence check found
 * in RocksDB under the store's mutation lock, that were not deleted since. A put of a key DRAM
 * lacks asks here before it asks RocksDB whether the key exists ({@code SizeCounting.ON_WRITE}),
 * so a store whose DRAM holds part of the table settles most of its existence checks without a
 * RocksDB lookup: the keys it writes are mostly keys it evicted before.
 *
 * <p>Lossy, never wrong. A two-way set-associative table of keys: a key added to a full set takes
 * the place of one of the two (the key may be forgotten later, and RocksDB is asked again), but a
 * key found here is in the store, because only keys in the store are added and every delete removes
 * its keys here ({@link HostTiers#remove}). Adds and removes run under the store's mutation lock
 * (DRAM evicts only while a key enters it, which holds that lock), so a delete never interleaves
 * with an add of the same key; lookups may run without it. Each slot is one atomic long, so a
 * lookup sees a whole key or none.
 */
final class KnownKeys {
    private static final long EMPTY = ReservedKeys.EMPTY;
    private static final int MIN_SLOTS = 1024;
    private static final int MAX_SLOTS = 1 << 30;

    private final AtomicLongArray slots;
    /** Sets - 1; set {@code s} is slots {@code 2s} and {@code 2s + 1}. */
    private final int setMask;

    /**
     * Room for about {@code slots} keys: the power of two nearest to it (from three quarters to
     * one and a half times as many), at least 1,024, at most 2^30.
     */
    KnownKeys(long slots) {
        long n = Math.max(MIN_SLOTS, Math.min(MAX_SLOTS, Long.highestOneBit(Math.max(1, slots + slots / 3))));
        this.slots = new AtomicLongArray((int) n);
        for (int i = 0; i < n; i++) {
            this.slots.setPlain(i, EMPTY);
        }
        this.setMask = (int) (n / 2 - 1);
    }

    /**
     * Slots for a DRAM tier of {@code entries} rows of {@code dim} floats: about an eighth of its
     * bytes, 8 bytes a key (four keys a DRAM entry at dim 64).
     */
    static long slotsFor(long entries, int dim) {
        return entries * (dim * 4L + 16) / 64;
    }

    int slots() {
        return slots.length();
    }

    /** Records that {@code key} is in the store. Caller holds the mutation lock. */
    void add(long key) {
        int s = first(key);
        long a = slots.getAcquire(s);
        long b = slots.getAcquire(s + 1);
        if (a == key || b == key) {
            return;
        }
        if (a == EMPTY) {
            slots.setRelease(s, key);
        } else if (b == EMPTY) {
            slots.setRelease(s + 1, key);
        } else {
            // Both taken: replace the one a second hash bit of the newcomer names.
            slots.setRelease(s + (int) (mix(key) >>> 63), key);
        }
    }

    /** Whether {@code key} is known to be in the store (false: unknown, not absent). */
    boolean contains(long key) {
        if (key == EMPTY) {
            return false;
        }
        int s = first(key);
        return slots.getAcquire(s) == key || slots.getAcquire(s + 1) == key;
    }

    /** Forgets {@code key}, which is being deleted. Caller holds the mutation lock. */
    void remove(long key) {
        int s = first(key);
        slots.compareAndSet(s, key, EMPTY);
        slots.compareAndSet(s + 1, key, EMPTY);
    }

    private int first(long key) {
        return ((int) mix(key) & setMask) << 1;
    }

    private static long mix(long k) {
        k ^= k >>> 31;
        k *= 0x7fb5d329728ea185L;
        k ^= k >>> 27;
        k *= 0x81dadef4bc2dd44dL;
        return k ^ (k >>> 33);
    }
}
