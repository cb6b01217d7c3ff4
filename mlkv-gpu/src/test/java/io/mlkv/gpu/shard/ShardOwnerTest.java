package io.mlkv.gpu.shard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.table.ScoreMode;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The owner function of the sharded table, and its builder's checks (no GPU needed). */
class ShardOwnerTest {

    /** Pearson's statistic of {@code counts} against a uniform expectation. */
    private static double chiSquare(long[] counts) {
        long total = 0;
        for (long c : counts) {
            total += c;
        }
        double expected = (double) total / counts.length;
        double x = 0;
        for (long c : counts) {
            x += (c - expected) * (c - expected) / expected;
        }
        return x;
    }

    /** A bound the statistic with {@code dof} degrees of freedom passes by chance with probability below about 1e-6. */
    private static double bound(int dof) {
        return dof + 10 * Math.sqrt(2.0 * dof) + 10;
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4, 7, 8, 32})
    void sequentialAndRandomKeysSpreadEvenlyOverTheShards(int shards) {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        long[] sequential = new long[shards];
        long[] random = new long[shards];
        for (long k = 0; k < 1_000_000; k++) {
            sequential[ShardedGpuTable.ownerOf(k, shards)]++;
            random[ShardedGpuTable.ownerOf(r.nextLong(), shards)]++;
        }
        assertTrue(chiSquare(sequential) < bound(shards - 1), "sequential ids, chi-square " + chiSquare(sequential));
        assertTrue(chiSquare(random) < bound(shards - 1), "random keys, seed " + seed + ", chi-square " + chiSquare(random));
    }

    @Test
    void oneShardsKeysCoverEveryBucketBitAndDigestOfTheTable() {
        // The shard's table takes its bucket from the low bits of mix64(key) and its digest from the top
        // byte; the owner must not fix either, or one shard's keys would crowd part of its table.
        long[] lowByte = new long[256];
        long[] topByte = new long[256];
        for (long k = 0; k < 2_000_000; k++) {
            if (ShardedGpuTable.ownerOf(k, 2) == 0) {
                long h = ShardedGpuTable.mix64(k);
                lowByte[(int) (h & 0xff)]++;
                topByte[(int) (h >>> 56)]++;
            }
        }
        assertTrue(chiSquare(lowByte) < bound(255), "bucket bits, chi-square " + chiSquare(lowByte));
        assertTrue(chiSquare(topByte) < bound(255), "digest byte, chi-square " + chiSquare(topByte));
    }

    @Test
    void theOwnerIsInRangeAndOneShardOwnsEverything() {
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 100_000; i++) {
            long k = r.nextLong();
            assertEquals(0, ShardedGpuTable.ownerOf(k, 1));
            int o = ShardedGpuTable.ownerOf(k, ShardedGpuTable.MAX_SHARDS);
            assertTrue(o >= 0 && o < ShardedGpuTable.MAX_SHARDS, "owner " + o + " of key " + k);
        }
        assertEquals(ShardedGpuTable.ownerOf(Long.MIN_VALUE, 5), ShardedGpuTable.ownerOf(Long.MIN_VALUE, 5));
    }

    @Test
    void theBuilderRefusesBadSettingsNamingThem() {
        ShardedGpuTable.Builder b = ShardedGpuTable.builder(8);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ShardedGpuTable.builder(0)).getMessage().contains("dim"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.devices()).getMessage().contains("devices"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.devices(0, -1)).getMessage().contains("-1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.devices(new int[33])).getMessage().contains("32"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.maxBatch(0)).getMessage().contains("maxBatch"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.capacityPerShard(0)).getMessage().contains("capacityPerShard"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.stagingKeys(0)).getMessage().contains("stagingKeys"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.scoreMode(ScoreMode.CUSTOM)).getMessage().contains("CUSTOM"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.scoreMode(null)).getMessage().contains("scoreMode"));
    }
}
