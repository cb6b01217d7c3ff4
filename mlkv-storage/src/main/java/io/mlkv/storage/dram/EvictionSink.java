package io.mlkv.storage.dram;

/** Receives the entries a {@link DramTier} pushes out to make room. */
@FunctionalInterface
public interface EvictionSink {
    /** Discards evicted entries; for a tier used as a plain cache. */
    EvictionSink DISCARD = (key, value, dirty) -> { };

    /**
     * Called under the evicting bucket's lock, before the entry leaves the tier, so a reader that
     * misses the tier afterwards can already find the entry wherever the sink put it.
     *
     * @param value the entry's {@code dim} values, valid only during this call
     * @param dirty whether the entry holds a write not yet in the tier below
     */
    void evicted(long key, float[] value, boolean dirty);
}
