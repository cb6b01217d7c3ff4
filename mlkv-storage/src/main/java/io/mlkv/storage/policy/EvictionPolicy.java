package io.mlkv.storage.policy;

/**
 * Decides which entries a fixed-capacity tier keeps. A tier stores one {@code long} score per
 * entry; when a bucket is full, the entry with the lowest score is the eviction victim, and the
 * policy may refuse to admit a newcomer that is worth less than that victim.
 *
 * <p>{@code now} is the tier's logical clock, advanced once per batch (or once per access in the
 * simulator). Implementations must be thread-safe; scores are read and written by the tier under
 * its own locks.
 */
public interface EvictionPolicy {

    /** The name this policy is chosen by, for example {@code "lru"}. */
    String name();

    /** Score of an entry entering the tier. */
    long scoreOnInsert(long key, long now);

    /** Score of an entry after a hit or an overwrite. */
    long scoreOnHit(long key, long oldScore, long now);

    /** Records that {@code keys[from, to)} were asked for, whether they hit or not. */
    void recordAccesses(long[] keys, int from, int to);

    /** {@link #recordAccesses} of one key. */
    void recordAccess(long key);

    /** Whether {@code candidate} may take the place of {@code victim} in a full bucket. */
    boolean admit(long candidate, long victim);
}
