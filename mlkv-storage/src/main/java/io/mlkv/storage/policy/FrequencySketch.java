package io.mlkv.storage.policy;

/**
 * A count-min sketch of 4-bit counters estimating how often each key was accessed recently.
 * After {@code 10 x capacity} recorded accesses every counter is halved, so old popularity fades.
 * Thread-safe: all methods synchronize on the sketch (callers record whole batches at once).
 */
public final class FrequencySketch {
    private static final long[] SEEDS = {
        0x9E3779B97F4A7C15L, 0xC2B2AE3D27D4EB4FL, 0x165667B19E3779F9L, 0xD6E8FEB86659FD93L};
    private static final long RESET_MASK = 0x7777777777777777L;

    private final long[] table;
    private final int tableMask;
    private final long sampleSize;
    private long additions;

    /** @param capacity number of entries the owning tier holds; sizes the sketch */
    public FrequencySketch(long capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive, was " + capacity);
        }
        table = new long[words(capacity)];
        tableMask = table.length - 1;
        sampleSize = sampleSize(capacity);
    }

    /**
     * The 64-bit words of a sketch for a tier of {@code capacity} entries: a power of two, 64 to
     * 2^26 (only the low 2^24 are used: a row's word index has 24 bits). The GPU table's twin
     * ({@code mlkv_sketch_add}) has the same layout and hashing.
     */
    public static int words(long capacity) {
        return (int) (Long.highestOneBit(Math.max(64, Math.min(1L << 26, capacity)) - 1) << 1);
    }

    /** Recorded accesses after which every counter of a sketch for {@code capacity} entries is halved. */
    public static long sampleSize(long capacity) {
        return 10 * Math.max(16, capacity);
    }

    /** A copy of the sketch's words (for comparing with its GPU twin). */
    public synchronized long[] words() {
        return table.clone();
    }

    /** Counts one access to {@code key}. */
    public synchronized void incrementOne(long key) {
        increment(key);
    }

    /** Counts one access to each of {@code keys[from, to)}. */
    public synchronized void incrementAll(long[] keys, int from, int to) {
        for (int i = from; i < to; i++) {
            increment(keys[i]);
        }
    }

    /** The estimated recent access count of {@code key}, 0 to 15. */
    public synchronized int frequency(long key) {
        long h = spread(key);
        int min = 15;
        for (int row = 0; row < 4; row++) {
            min = Math.min(min, counter(h, row));
        }
        return min;
    }

    private void increment(long key) {
        long h = spread(key);
        boolean added = false;
        for (int row = 0; row < 4; row++) {
            int index = index(h, row);
            int shift = counterShift(h, row);
            long word = table[index];
            if (((word >>> shift) & 0xF) != 0xF) {
                table[index] = word + (1L << shift);
                added = true;
            }
        }
        if (added && ++additions >= sampleSize) {
            halve();
        }
    }

    private int counter(long h, int row) {
        return (int) ((table[index(h, row)] >>> counterShift(h, row)) & 0xF);
    }

    private int index(long h, int row) {
        long x = (h ^ SEEDS[row]) * SEEDS[(row + 1) & 3];
        return (int) (x >>> 40) & tableMask;
    }

    /** Each row uses a different 4-bit counter of its word. */
    private static int counterShift(long h, int row) {
        return (((int) (h >>> (row * 4)) & 3) + (row << 2)) << 2;
    }

    private void halve() {
        for (int i = 0; i < table.length; i++) {
            table[i] = (table[i] >>> 1) & RESET_MASK;
        }
        additions /= 2;
    }

    private static long spread(long key) {
        long x = key * 0x9E3779B97F4A7C15L;
        return x ^ (x >>> 29);
    }
}
