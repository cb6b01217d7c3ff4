package io.mlkv.gpu.table;

import java.util.ArrayList;
import java.util.List;

/**
 * A plain-Java reference of the GPU table's placement and eviction rules, for calls that insert
 * at most one new key per bucket (where the GPU's choices are deterministic): a key goes to
 * bucket {@code mix64(key) & (buckets - 1)}, takes the bucket's first empty slot, and a full
 * bucket evicts its lowest score, lowest slot index on ties.
 */
final class BucketModel {
    private final long[][] keys;
    private final long[][] scores;
    private final boolean[][] used;
    private final ScoreMode mode;
    private long clock;

    BucketModel(long buckets, ScoreMode mode) {
        this.keys = new long[(int) buckets][GpuHashTable.BUCKET_SLOTS];
        this.scores = new long[(int) buckets][GpuHashTable.BUCKET_SLOTS];
        this.used = new boolean[(int) buckets][GpuHashTable.BUCKET_SLOTS];
        this.mode = mode;
    }

    static long mix64(long k) {
        k ^= k >>> 33;
        k *= 0xff51afd7ed558ccdL;
        k ^= k >>> 33;
        k *= 0xc4ceb9fe1a85ec53L;
        k ^= k >>> 33;
        return k;
    }

    int bucketOf(long key) {
        return (int) (mix64(key) & (keys.length - 1));
    }

    /** One insert-or-assign call; returns the keys it evicts (or, for CUSTOM, refuses, as negative markers are not used). */
    List<Long> insert(long[] batch, long[] customScores) {
        clock++;
        List<Long> evicted = new ArrayList<>();
        for (int i = 0; i < batch.length; i++) {
            long key = batch[i];
            int b = bucketOf(key);
            int slot = find(b, key);
            if (slot >= 0) {
                scores[b][slot] = mode == ScoreMode.LRU ? clock : mode == ScoreMode.LFU ? scores[b][slot] + 1 : customScores[i];
                continue;
            }
            long score = mode == ScoreMode.LRU ? clock : mode == ScoreMode.LFU ? 1 : customScores[i];
            for (int s = 0; s < GpuHashTable.BUCKET_SLOTS && slot < 0; s++) {
                if (!used[b][s]) {
                    slot = s;
                }
            }
            if (slot < 0) {
                slot = 0;
                for (int s = 1; s < GpuHashTable.BUCKET_SLOTS; s++) {
                    if (scores[b][s] < scores[b][slot]) {
                        slot = s;
                    }
                }
                if (mode == ScoreMode.CUSTOM && score < scores[b][slot]) {
                    continue;
                }
                evicted.add(keys[b][slot]);
            }
            used[b][slot] = true;
            keys[b][slot] = key;
            scores[b][slot] = score;
        }
        return evicted;
    }

    /**
     * One find call on a table that scores reads: every occurrence of a present key refreshes its
     * score as a write would (LRU: the call's clock; LFU: plus one per occurrence); CUSTOM scores
     * stay. A table that does not score reads leaves the model untouched: do not call this.
     */
    void read(long[] batch) {
        if (mode == ScoreMode.CUSTOM) {
            return;
        }
        clock++;
        for (long key : batch) {
            int b = bucketOf(key);
            int slot = find(b, key);
            if (slot >= 0) {
                scores[b][slot] = mode == ScoreMode.LRU ? clock : scores[b][slot] + 1;
            }
        }
    }

    boolean contains(long key) {
        return find(bucketOf(key), key) >= 0;
    }

    private int find(int b, long key) {
        for (int s = 0; s < GpuHashTable.BUCKET_SLOTS; s++) {
            if (used[b][s] && keys[b][s] == key) {
                return s;
            }
        }
        return -1;
    }
}
