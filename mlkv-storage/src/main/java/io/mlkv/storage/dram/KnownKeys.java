package io.mlkv.storage.dram;

import static io.mlkv.storage.dram.OffHeapMemory.UNSAFE;

import io.mlkv.storage.ReservedKeys;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Keys known to be in a store below its DRAM tier: the keys DRAM evicted, and keys an existence
 * check found in RocksDB, that were not deleted since. A put of a key DRAM lacks asks here before
 * it asks RocksDB whether the key exists (a store counting its entries on every write), so a store
 * whose DRAM holds part of the table settles most of those checks without a RocksDB lookup: the keys
 * it writes are mostly keys it evicted before.
 *
 * <p>Lossy, never wrong. A two-way set-associative table of keys in native memory (8 bytes a
 * slot, outside the Java heap, like the DRAM tier; in chunks of 1 MiB allocated when first
 * written, so a large table costs no long pause at its first key and little memory while few keys
 * are known): a key added to a full set takes the place of
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

    /** Slots in a chunk of native memory: chunks are allocated (zeroed) when first written. */
    private static final int CHUNK_SHIFT = 17;
    private static final long CHUNK_MASK = (1L << CHUNK_SHIFT) - 1;

    /** The chunks, null until a key is first added to one. */
    private final AtomicReferenceArray<OffHeapMemory> chunks;
    /** Sets - 1; set {@code s} is slots {@code 2s} and {@code 2s + 1}, always in one chunk. */
    private final long setMask;
    private final long slots;

    /**
     * Room for about {@code slots} keys: the power of two nearest to it (from three quarters to
     * one and a half times as many), at least 1,024, at most 2^32.
     */
    public KnownKeys(long slots) {
        long n = Math.max(MIN_SLOTS, Math.min(MAX_SLOTS, Long.highestOneBit(Math.max(1, slots + slots / 3))));
        this.chunks = new AtomicReferenceArray<>((int) ((n + CHUNK_MASK) >>> CHUNK_SHIFT));
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
        OffHeapMemory chunk = chunks.get((int) (s >>> CHUNK_SHIFT));
        if (chunk == null) {
            return;
        }
        long stored = key ^ EMPTY;
        long at = chunk.address() + (s & CHUNK_MASK) * 8;
        UNSAFE.compareAndSwapLong(null, at, stored, 0);
        UNSAFE.compareAndSwapLong(null, at + 8, stored, 0);
    }

    private long get(long slot) {
        OffHeapMemory chunk = chunks.get((int) (slot >>> CHUNK_SHIFT));
        return chunk == null ? 0 : UNSAFE.getLongVolatile(null, chunk.address() + (slot & CHUNK_MASK) * 8);
    }

    private void put(long slot, long stored) {
        int c = (int) (slot >>> CHUNK_SHIFT);
        OffHeapMemory chunk = chunks.get(c);
        if (chunk == null) {
            synchronized (chunks) {
                chunk = chunks.get(c);
                if (chunk == null) {
                    chunk = new OffHeapMemory(Math.min(slots, CHUNK_MASK + 1) * 8, "known keys", true);
                    chunks.set(c, chunk);
                }
            }
        }
        UNSAFE.putOrderedLong(null, chunk.address() + (slot & CHUNK_MASK) * 8, stored);
    }

    /** Bytes of native memory held (chunks written so far). */
    public long bytes() {
        long b = 0;
        for (int c = 0; c < chunks.length(); c++) {
            OffHeapMemory chunk = chunks.get(c);
            b += chunk == null ? 0 : chunk.bytes();
        }
        return b;
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
        for (int c = 0; c < chunks.length(); c++) {
            OffHeapMemory chunk = chunks.getAndSet(c, null);
            if (chunk != null) {
                chunk.close();
            }
        }
    }
}
