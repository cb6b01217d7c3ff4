package io.mlkv.gpu.shard;

/**
 * A host batch's first {@code count} keys split by owner shard ({@link ShardedGpuTable#ownerOf}):
 * each shard's batch positions in batch order, so a key repeated in the batch keeps its order within
 * its shard; with the gathers of a shard's keys and rows and the scatters of its results back. The
 * host-array calls of {@link ShardedGpuTable} and of a store whose HBM tier has several shards use it.
 */
public final class OwnerSplit {
    private final long[] keys;
    private final int dim;
    private final int[][] positions;

    public OwnerSplit(long[] keys, int count, int shards, int dim) {
        this.keys = keys;
        this.dim = dim;
        int[] owner = new int[count];
        int[] sizes = new int[shards];
        for (int i = 0; i < count; i++) {
            owner[i] = ShardedGpuTable.ownerOf(keys[i], shards);
            sizes[owner[i]]++;
        }
        positions = new int[shards][];
        for (int s = 0; s < shards; s++) {
            positions[s] = new int[sizes[s]];
        }
        int[] filled = new int[shards];
        for (int i = 0; i < count; i++) {
            positions[owner[i]][filled[owner[i]]++] = i;
        }
    }

    /** How many of the keys shard {@code s} owns. */
    public int size(int s) {
        return positions[s].length;
    }

    /** Shard {@code s}'s keys, in batch order. */
    public long[] keys(int s) {
        int[] at = positions[s];
        long[] k = new long[at.length];
        for (int j = 0; j < at.length; j++) {
            k[j] = keys[at[j]];
        }
        return k;
    }

    /** Shard {@code s}'s rows of {@code rows} ({@code dim} floats per key), in batch order. */
    public float[] rows(int s, float[] rows) {
        int[] at = positions[s];
        float[] r = new float[at.length * dim];
        for (int j = 0; j < at.length; j++) {
            System.arraycopy(rows, at[j] * dim, r, j * dim, dim);
        }
        return r;
    }

    /** Copies shard {@code s}'s flags, and the rows of the keys found, back to their batch positions; other rows stay. */
    public void scatterFound(int s, float[] partOut, boolean[] partFound, float[] out, boolean[] found) {
        int[] at = positions[s];
        for (int j = 0; j < at.length; j++) {
            found[at[j]] = partFound[j];
            if (partFound[j]) {
                System.arraycopy(partOut, j * dim, out, at[j] * dim, dim);
            }
        }
    }

    /** Copies shard {@code s}'s flags back to their batch positions. */
    public void scatterFlags(int s, boolean[] part, boolean[] flags) {
        int[] at = positions[s];
        for (int j = 0; j < at.length; j++) {
            flags[at[j]] = part[j];
        }
    }
}
