package io.mlkv.core.tiers;

/** Small helpers over batches of keys. */
public final class Batches {
    private Batches() {
    }

    /** {@code keys[idx[0]], ..., keys[idx[n-1]]}. */
    public static long[] gather(long[] keys, int[] idx, int n) {
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = keys[idx[i]];
        }
        return out;
    }
}
