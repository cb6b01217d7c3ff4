package io.mlkv.storage;

/** Receives entries during an export; see {@link VectorTier#forEach(VectorVisitor)}. */
@FunctionalInterface
public interface VectorVisitor {
    /**
     * Called once per entry.
     *
     * @param key    the entry's key
     * @param vector a buffer holding the entry's {@code dim} values at {@code [0, dim)}; it is
     *               reused for the next entry, so copy what must outlive this call
     */
    void visit(long key, float[] vector);
}
