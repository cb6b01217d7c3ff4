package io.mlkv.core.tiers;

/** Small helpers over batches of keys. */
public final class Batches {
    private Batches() {
    }

    /** Rows {@code idx[0], ..., idx[n-1]} of {@code rows} ({@code dim} floats each), in that order. */
    public static float[] gatherRows(float[] rows, int dim, int[] idx, int n) {
        float[] out = new float[n * dim];
        for (int i = 0; i < n; i++) {
            System.arraycopy(rows, idx[i] * dim, out, i * dim, dim);
        }
        return out;
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
