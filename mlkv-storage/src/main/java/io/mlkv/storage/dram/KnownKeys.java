package io.mlkv.storage.dram;

import static io.mlkv.storage.dram.OffHeapMemory.UNSAFE;

import io.mlkv.storage.ReservedKeys;

/**
 * Keys known to be in a store below its DRAM tier: the keys DRAM evicted, and keys an existence
 * check found in RocksDB, that were not deleted since. A put of a key DRAM lacks asks here before
 * it asks RocksDB whether the key exists (a store counting its entries on every write), so a store
 * whose DRAM holds part of the table settles most of those checks without a RocksDB lookup: the keys
 * it writes are mostly keys it evicted before.
 *
 * <p>Lossy, never wrong. A two-way set-associative table of keys in native memory (8 bytes a
 * slot, outside the Java heap, like the DRAM tier): a key added to a full set takes the place of
 * one of the two, so a key may be forgotten (and RocksDB is asked again), but a key found here is in
 * the store, as long as the owner adds only keys that are in it and removes every key it deletes.
 * The owner serialises adds with removes (the store's mutation lock); lookups may run at any time.
 * Each slot is read and written whole, as one atomic long. A slot holds {@code key ^ EMPTY}, so that
 * zeroed memory is empty. {@link #close()} frees the memory; no call may run during or after it.
 */
public final class KnownKeys implements AutoCloseable {
    private static final long EMPTY = ReservedKeys.EMPTY;
    private static final int MIN_SLOTS = 1024;
    private static final long MAX_SLOTS = 1L << 32;

    private final OffHeapMemory memory;
    private final long base;
    /** Sets - 1; set {@code s} is slots {@code 2s} and {@code 2s + 1}. */
    private final long setMask;
    private final long slots;

    /**
     * Room for about {@code slots} keys: the power of two nearest to it (from three quarters to
     * one and a half times as many), at least 1,024, at most 2^32.
     */
    public KnownKeys(long slots) {
        long n = Math.max(MIN_SLOTS, Math.min(MAX_SLOTS, Long.highestOneBit(Math.max(1, slots + slots / 3))));
        this.memory = new OffHeapMemory(n * 8, "known keys", true);
        this.base = memory.address();
        this.slots = n;
        this.setMask = n / 2 - 1;
    }

    /**
     * Slots for a DRAM tier of {@code entries} rows of {@code dim} floats: about an eighth of its
     * bytes, 8 bytes a key (four keys a DRAM entry at dim 64).
     */
    public static long slotsFor(long entries, int dim) {
        return entries * (dim * 4L + 16) / 64;
    }

    public long slots() {
        return slots;
    }

    /** Records that {@code key} is in the store. Not concurrently with {@link #remove}. */
    public void add(long key) {
        if (key == EMPTY) {
            return;
        }
        long s = first(key);
        long stored = key ^ EMPTY;
        long a = get(s);
        long b = get(s + 1);
        if (a == stored || b == stored) {
            return;
        }
        if (a == 0) {
            put(s, stored);
        } else if (b == 0) {
            put(s + 1, stored);
        } else {
            // Both taken: replace the one a second hash bit of the newcomer names.
            put(s + (mix(key) >>> 63), stored);
        }
    }

    /** Whether {@code key} is known to be in the store (false: unknown, not absent). */
    public boolean contains(long key) {
        if (key == EMPTY) {
            return false;
        }
        long s = first(key);
        long stored = key ^ EMPTY;
        return get(s) == stored || get(s + 1) == stored;
    }

    /** Forgets {@code key}, which is being deleted. Not concurrently with {@link #add}. */
    public void remove(long key) {
        long s = first(key);
        long stored = key ^ EMPTY;
        UNSAFE.compareAndSwapLong(null, base + s * 8, stored, 0);
        UNSAFE.compareAndSwapLong(null, base + (s + 1) * 8, stored, 0);
    }

    private long get(long slot) {
        return UNSAFE.getLongVolatile(null, base + slot * 8);
    }

    private void put(long slot, long stored) {
        UNSAFE.putOrderedLong(null, base + slot * 8, stored);
    }

    private long first(long key) {
        return (mix(key) & setMask) << 1;
    }

    private static long mix(long k) {
        k ^= k >>> 31;
        k *= 0x7fb5d329728ea185L;
        k ^= k >>> 27;
        k *= 0x81dadef4bc2dd44dL;
        return k ^ (k >>> 33);
    }

    @Override
    public void close() {
        memory.close();
    }
}
