package io.mlkv.storage;

/**
 * What every tier of the store promises, and what the composed store promises too: a map from
 * 64-bit keys to fixed-dimension {@code float32} vectors with batched operations on primitive
 * arrays.
 *
 * <p>Vectors are laid out row-major: the values of {@code keys[i]} are
 * {@code values[i * dim() .. (i + 1) * dim())}. When a key appears more than once in one
 * {@link #multiPut} batch, its last occurrence wins. Implementations are thread-safe unless they
 * say otherwise; a concurrent reader sees either the old or the new vector of a key, never a mix.
 */
public interface VectorTier extends AutoCloseable {

    /** Number of {@code float} values per vector. */
    int dim();

    /**
     * Looks up a batch of keys.
     *
     * @param keys  keys to look up
     * @param out   receives {@code dim()} values per key; rows of missing keys are left untouched
     * @param found receives {@code true} where the key is present
     * @return the number of keys found
     */
    int multiGet(long[] keys, float[] out, boolean[] found);

    /** Inserts or overwrites a batch of vectors; {@code values.length == keys.length * dim()}. */
    void multiPut(long[] keys, float[] values);

    /** Removes a batch of keys; absent keys are ignored. */
    void multiDelete(long[] keys);

    /**
     * Tests which keys are present.
     *
     * @return the number of keys present
     */
    int contains(long[] keys, boolean[] out);

    /** The exact number of keys held. */
    long size();

    /**
     * Visits every entry present when the call starts and not changed during it exactly once,
     * in an unspecified order. Implementations say whether the view is point-in-time.
     */
    void forEach(VectorVisitor visitor);

    /** Releases what this tier owns. Idempotent. */
    @Override
    void close();
}
