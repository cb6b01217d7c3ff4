package io.mlkv.core;

/** Small helpers over batches of keys. */
final class Batches {
    private Batches() {
    }

    /** {@code keys[idx[0]], ..., keys[idx[n-1]]}. */
    static long[] gather(long[] keys, int[] idx, int n) {
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = keys[idx[i]];
        }
        return out;
    }
}
