package io.mlkv.core;

/**
 * The filter behind {@link HbmAdmission#SECOND_MISS}: one bit per hash of a key, set on a key's
 * first miss; a key whose bit is already set is admitted. Cleared when a quarter of its bits have
 * been set since the last clear, so it remembers only recent misses and its false positives stay
 * below about a quarter. Not thread-safe: the store calls it under its mutation lock.
 */
final class MissFilter {
    private final long[] bits;
    private final int shift;
    private final long clearAfter;
    private long setSinceClear;

    /** @param entries the HBM tier's capacity; the filter takes about one byte per entry */
    MissFilter(long entries) {
        long wanted = Math.max(1 << 12, Math.min(1L << 33, entries * 8));
        int log2 = 64 - Long.numberOfLeadingZeros(wanted - 1);
        this.bits = new long[(int) ((1L << log2) >>> 6)];
        this.shift = 64 - log2;
        this.clearAfter = (1L << log2) / 4;
    }

    /** Whether {@code key} missed recently; if not, remembers that it missed now. */
    boolean missedBefore(long key) {
        long bit = (key * 0x9E3779B97F4A7C15L) >>> shift;
        int word = (int) (bit >>> 6);
        long mask = 1L << (bit & 63);
        if ((bits[word] & mask) != 0) {
            return true;
        }
        if (++setSinceClear > clearAfter) {
            java.util.Arrays.fill(bits, 0L);
            setSinceClear = 1;
        }
        bits[word] |= mask;
        return false;
    }

    /** Bits of the filter. */
    long size() {
        return (long) bits.length << 6;
    }
}
