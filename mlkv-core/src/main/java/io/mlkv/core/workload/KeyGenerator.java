package io.mlkv.core.workload;

/**
 * A source of keys following some access distribution. Not thread-safe: give each thread its own.
 * Keys are in {@code [0, keyCount)} unless the generator says otherwise.
 */
public interface KeyGenerator {

    /** The next key. */
    long next();

    /** Fills {@code out} with the next {@code out.length} keys. */
    default void fill(long[] out) {
        for (int i = 0; i < out.length; i++) {
            out[i] = next();
        }
    }

    /**
     * Tells the generator that {@code count} new keys now exist above the previous key count (a
     * workload that inserts); generators that favour recent keys follow it. Default: ignored.
     */
    default void grow(long count) {
    }
}
