package io.mlkv.core;

import java.util.SplittableRandom;

/**
 * Produces the first vector of a key that {@link MlkvStore#findOrInsert} did not find. Called
 * under the store's write lock, one key at a time; it need not be thread-safe.
 */
@FunctionalInterface
public interface VectorInitializer {

    /** Writes {@code dim} values for {@code key} to {@code out[offset, offset + dim)}. */
    void initialize(long key, float[] out, int offset, int dim);

    /** All zeros. */
    static VectorInitializer zeros() {
        return (key, out, offset, dim) -> java.util.Arrays.fill(out, offset, offset + dim, 0f);
    }

    /**
     * Uniform in {@code [-scale, scale)}, a pure function of {@code (seed, key)}, so the same key
     * gets the same initial vector in every run.
     */
    static VectorInitializer uniform(long seed, float scale) {
        if (!(scale > 0) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException("scale must be positive and finite, was " + scale);
        }
        return (key, out, offset, dim) -> {
            SplittableRandom r = new SplittableRandom(seed ^ (key * 0x9E3779B97F4A7C15L));
            for (int i = 0; i < dim; i++) {
                out[offset + i] = (float) ((r.nextDouble() * 2 - 1) * scale);
            }
        };
    }
}
