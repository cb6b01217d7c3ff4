package io.mlkv.storage.policy;

/**
 * LRU ordering with frequency-sketch admission (TinyLFU): a newcomer replaces the least recent
 * entry of a full bucket only if the sketch has seen the newcomer more often than that victim,
 * so a key seen once cannot push out a hot one.
 */
public final class TinyLfuPolicy implements EvictionPolicy {
    private final FrequencySketch sketch;

    /** @param capacity entries held by the tier this policy serves */
    public TinyLfuPolicy(long capacity) {
        this.sketch = new FrequencySketch(capacity);
    }

    @Override
    public String name() {
        return "tinylfu";
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
        sketch.incrementAll(keys, from, to);
    }

    @Override
    public void recordAccess(long key) {
        sketch.incrementOne(key);
    }

    @Override
    public boolean admit(long candidate, long victim) {
        return sketch.frequency(candidate) > sketch.frequency(victim);
    }
}
