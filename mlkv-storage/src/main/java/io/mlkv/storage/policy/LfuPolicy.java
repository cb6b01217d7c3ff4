package io.mlkv.storage.policy;

/**
 * Least frequently used: the score counts hits while resident, with the logical time in the low
 * bits so that among equally frequent entries the least recent goes first. Admits everything.
 */
public final class LfuPolicy implements EvictionPolicy {
    /** Low bits hold the last-access time; 2^40 batches is far beyond any run. */
    private static final int TIME_BITS = 40;
    private static final long TIME_MASK = (1L << TIME_BITS) - 1;
    private static final long MAX_COUNT = (1L << (63 - TIME_BITS)) - 1;

    @Override
    public String name() {
        return "lfu";
    }

    @Override
    public long scoreOnInsert(long key, long now) {
        return (1L << TIME_BITS) | (now & TIME_MASK);
    }

    @Override
    public long scoreOnHit(long key, long oldScore, long now) {
        long count = Math.min(MAX_COUNT, (oldScore >>> TIME_BITS) + 1);
        return (count << TIME_BITS) | (now & TIME_MASK);
    }

    @Override
    public void recordAccesses(long[] keys, int from, int to) {
        // Frequency while resident lives in the scores.
    }

    @Override
    public void recordAccess(long key) {
        // As recordAccesses.
    }

    @Override
    public boolean admit(long candidate, long victim) {
        return true;
    }
}
