package io.mlkv.bench.jmh;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import java.util.concurrent.ConcurrentHashMap;
import org.agrona.collections.Long2ObjectHashMap;

/**
 * The on-heap maps a Java user would reach for instead of MLKV, behind the tier interface so a
 * benchmark measures them with the same calls: one {@code float[]} per entry.
 */
final class HeapBaselines {
    private HeapBaselines() {
    }

    /** A baseline tier: the calls the benchmarks do not measure refuse, once for every baseline. */
    interface Measured extends VectorTier {
        @Override
        default void multiDelete(long[] keys) {
            throw new UnsupportedOperationException("not measured");
        }

        @Override
        default int contains(long[] keys, boolean[] out) {
            throw new UnsupportedOperationException("not measured");
        }

        @Override
        default void forEach(VectorVisitor visitor) {
            throw new UnsupportedOperationException("not measured");
        }
    }

    /** The operations the benchmarks need beyond {@link VectorTier}, as a user would write them on a map. */
    interface MapTier extends Measured {
        /** Value every element of a row created by {@link #findOrInsert} starts with. */
        float INITIAL = 0.01f;

        /** Returns every key's row, creating absent ones filled with {@link #INITIAL}. */
        void findOrInsert(long[] keys, float[] out);

        /** Adds each row of {@code deltas} to its key's row, creating absent ones. */
        void accumulate(long[] keys, float[] deltas);
    }

    /** Common code over a map from boxed keys to arrays. */
    abstract static class BoxedMap implements MapTier {
        final int dim;

        BoxedMap(int dim) {
            this.dim = dim;
        }

        abstract float[] get(long key);

        abstract void put(long key, float[] row);

        abstract float[] computeIfAbsent(long key);

        @Override
        public int dim() {
            return dim;
        }

        @Override
        public int multiGet(long[] keys, float[] out, boolean[] found) {
            int hits = 0;
            for (int i = 0; i < keys.length; i++) {
                float[] v = get(keys[i]);
                found[i] = v != null;
                if (v != null) {
                    System.arraycopy(v, 0, out, i * dim, dim);
                    hits++;
                }
            }
            return hits;
        }

        @Override
        public void multiPut(long[] keys, float[] values) {
            for (int i = 0; i < keys.length; i++) {
                float[] v = new float[dim];
                System.arraycopy(values, i * dim, v, 0, dim);
                put(keys[i], v);
            }
        }

        @Override
        public void findOrInsert(long[] keys, float[] out) {
            for (int i = 0; i < keys.length; i++) {
                System.arraycopy(computeIfAbsent(keys[i]), 0, out, i * dim, dim);
            }
        }

        @Override
        public void accumulate(long[] keys, float[] deltas) {
            for (int i = 0; i < keys.length; i++) {
                float[] v = computeIfAbsent(keys[i]);
                // Not atomic against other writers of the key: the price of a plain map.
                for (int d = 0; d < dim; d++) {
                    v[d] += deltas[i * dim + d];
                }
            }
        }

        float[] newRow() {
            float[] v = new float[dim];
            java.util.Arrays.fill(v, INITIAL);
            return v;
        }
    }

    /** {@code ConcurrentHashMap<Long, float[]>}. */
    static class Chm extends BoxedMap {
        final ConcurrentHashMap<Long, float[]> map = new ConcurrentHashMap<>();

        Chm(int dim) {
            super(dim);
        }

        @Override
        float[] get(long key) {
            return map.get(key);
        }

        @Override
        void put(long key, float[] row) {
            map.put(key, row);
        }

        @Override
        float[] computeIfAbsent(long key) {
            return map.computeIfAbsent(key, k -> newRow());
        }

        @Override
        public long size() {
            return map.size();
        }

        @Override
        public void close() {
            map.clear();
        }
    }

    /**
     * {@code ConcurrentHashMap<Long, float[]>} whose accumulate adds under the key's bin lock
     * ({@code compute}), as several threads accumulating into shared keys need; the plain {@link
     * Chm} adds outside it and loses updates when two threads add to one key at once.
     */
    static final class AtomicChm extends Chm {
        AtomicChm(int dim) {
            super(dim);
        }

        @Override
        public void accumulate(long[] keys, float[] deltas) {
            for (int i = 0; i < keys.length; i++) {
                int from = i * dim;
                map.compute(keys[i], (k, v) -> {
                    float[] row = v == null ? newRow() : v;
                    for (int d = 0; d < dim; d++) {
                        row[d] += deltas[from + d];
                    }
                    return row;
                });
            }
        }
    }

    /** A Caffeine cache without a size bound (so nothing is dropped), as a user might configure it. */
    static final class CaffeineMap extends BoxedMap {
        private final Cache<Long, float[]> cache = Caffeine.newBuilder().build();

        CaffeineMap(int dim) {
            super(dim);
        }

        @Override
        float[] get(long key) {
            return cache.getIfPresent(key);
        }

        @Override
        void put(long key, float[] row) {
            cache.put(key, row);
        }

        @Override
        float[] computeIfAbsent(long key) {
            return cache.get(key, k -> newRow());
        }

        @Override
        public long size() {
            return cache.estimatedSize();
        }

        @Override
        public void close() {
            cache.invalidateAll();
        }
    }

    /** Agrona's {@code Long2ObjectHashMap}: primitive keys, not thread-safe (the benchmarks run one thread). */
    static final class AgronaMap extends BoxedMap {
        private final Long2ObjectHashMap<float[]> map = new Long2ObjectHashMap<>();

        AgronaMap(int dim) {
            super(dim);
        }

        @Override
        float[] get(long key) {
            return map.get(key);
        }

        @Override
        void put(long key, float[] row) {
            map.put(key, row);
        }

        @Override
        float[] computeIfAbsent(long key) {
            float[] v = map.get(key);
            if (v == null) {
                v = newRow();
                map.put(key, v);
            }
            return v;
        }

        @Override
        public long size() {
            return map.size();
        }

        @Override
        public void close() {
            map.clear();
        }
    }
}
