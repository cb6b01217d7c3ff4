package io.mlkv.gpu.shard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * How a store with several HBM shards splits a host batch: every key to its owner, each shard's keys
 * and rows in batch order (repeats kept), and results scattered back so that rows of keys a shard did
 * not find stay as the caller left them. Seeds are printed on failure.
 */
class OwnerSplitTest {
    private static final int DIM = 3;

    @ParameterizedTest(name = "{0} shards")
    @ValueSource(ints = {1, 2, 3, 8})
    void eachShardGetsItsOwnKeysInBatchOrderAndResultsComeBackToTheirPositions(int shards) {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        SplittableRandom r = new SplittableRandom(seed);
        String where = shards + " shards, seed " + seed + " (replay with -Dmlkv.seed=" + seed + ")";
        int n = 5000;
        int count = n - 7;  // the keys past count are not part of the batch
        long[] keys = new long[n];
        float[] rows = new float[n * DIM];
        for (int i = 0; i < n; i++) {
            keys[i] = r.nextInt(2000) - 1000L;  // repeats and negative keys
            for (int x = 0; x < DIM; x++) {
                rows[i * DIM + x] = i + x / 10f;
            }
        }
        OwnerSplit split = new OwnerSplit(keys, count, shards, DIM);
        float[] out = new float[count * DIM];
        Arrays.fill(out, -1f);
        boolean[] found = new boolean[count];
        boolean[] flags = new boolean[count];
        int total = 0;
        for (int s = 0; s < shards; s++) {
            long[] k = split.keys(s);
            float[] rs = split.rows(s, rows);
            assertEquals(split.size(s), k.length, where);
            assertEquals(k.length * DIM, rs.length, where);
            List<Integer> expected = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                if (ShardedGpuTable.ownerOf(keys[i], shards) == s) {
                    expected.add(i);
                }
            }
            assertEquals(expected.size(), k.length, "shard " + s + "'s share, " + where);
            for (int j = 0; j < k.length; j++) {
                int i = expected.get(j);
                assertEquals(keys[i], k[j], "shard " + s + " key " + j + ", " + where);
                assertArrayEquals(Arrays.copyOfRange(rows, i * DIM, (i + 1) * DIM), Arrays.copyOfRange(rs, j * DIM, (j + 1) * DIM),
                        "shard " + s + " row " + j + ", " + where);
            }
            // The shard "finds" the keys at even positions of its part and returns them negated.
            float[] partOut = new float[rs.length];
            boolean[] partFound = new boolean[k.length];
            for (int j = 0; j < k.length; j++) {
                partFound[j] = j % 2 == 0;
                for (int x = 0; x < DIM; x++) {
                    partOut[j * DIM + x] = partFound[j] ? -rs[j * DIM + x] : 99f;
                }
            }
            split.scatterFound(s, partOut, partFound, out, found);
            split.scatterFlags(s, partFound, flags);
            total += k.length;
        }
        assertEquals(count, total, "every key in exactly one shard, " + where);
        assertArrayEquals(found, flags, where);
        for (int i = 0; i < count; i++) {
            for (int x = 0; x < DIM; x++) {
                float want = found[i] ? -rows[i * DIM + x] : -1f;
                assertEquals(want, out[i * DIM + x], "position " + i + (found[i] ? " found" : " not found: untouched") + ", " + where);
            }
        }
        if (shards > 1) {
            assertTrue(split.size(0) > 0 && split.size(shards - 1) > 0, "keys reach the first and last shard, " + where);
        }
    }
}
