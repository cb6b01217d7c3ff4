package io.mlkv.storage.policy;

/** Least recently used: the score is the logical time of the last access. Admits everything. */
public final class LruPolicy implements EvictionPolicy {

    @Override
    public String name() {
        return "lru";
    }

    @Override
    public long scoreOnInsert(long key, long now) {
        return now;
    }

    @Override
    public long scoreOnHit(long key, long oldScore, long now) {
        return now;
    }

    @Override
    public void recordAccesses(long[] keys, int from, int to) {
        // Recency lives in the scores; nothing else to record.
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
