package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.PartitionInfo;
import io.mlkv.client.proto.ReadResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Capacity, expiry and pins of a partition's blocks, over loopback: evicted and expired blocks are
 * misses, never wrong reads; pins survive eviction pressure; lives survive a restart; the Bloom
 * filter, rebuilt after evictions, still finds every kept block. The clock is the test's own.
 */
class TokenCacheLifetimeTest {
    private static final long SEED = Long.getLong("test.seed", System.nanoTime());

    @TempDir
    Path dir;

    private final AtomicLong clock = new AtomicLong(1_000_000_000_000L);

    private TokenCacheServer start(long capacity) throws Exception {
        return Fixture.server(dir).partitionCapacityBlocks(capacity).clock(clock::get).start();
    }

    /** Blocks of distinct single-block prompts, so that each is the first block of its own prompt. */
    private static List<Chunk> blocks(TokenCacheClient client, SplittableRandom rnd, int n) {
        List<Chunk> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(client.chunksOf(Fixture.prompt(rnd, 128)).get(0));
        }
        return out;
    }

    private static boolean stored(TokenCacheClient client, Chunk c) {
        int[] tokens = c.getTokensList().stream().mapToInt(Integer::intValue).toArray();
        boolean byLookup = client.lookup("l", tokens).getCachedBlocks() == 1;
        ReadResponse r = client.readAsync("default", new io.mlkv.client.Location(io.mlkv.client.BlockHash.partitionId("default"),
                c.getHash()).encode(), tokens).join();
        assertEquals(byLookup, r.getFound(), "Lookup and Read agree on block " + Long.toHexString(c.getHash()));
        if (r.getFound()) {
            assertEquals(c.getTokensList(), r.getChunk().getTokensList(), "a found block holds its own tokens");
        }
        return byLookup;
    }

    private static PartitionInfo info(TokenCacheClient client) {
        return client.health("default").getPartitions(0);
    }

    private static Status.Code codeOf(Runnable call) {
        CompletionException e = assertThrows(CompletionException.class, call::run);
        return ((TokenCacheException) e.getCause()).code();
    }

    @Test
    void pastItsCapacityAPartitionEvictsItsOldestBlocksWhichThenMiss() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        try (TokenCacheServer server = start(4); TokenCacheClient client = Fixture.client(server, "default")) {
            List<Chunk> b = blocks(client, rnd, 7);
            for (Chunk c : b) {
                assertTrue(client.writeAsync(c).join().getCreated());
            }
            for (int i = 0; i < 7; i++) {
                assertEquals(i >= 3, stored(client, b.get(i)), "block " + i + " of 7, capacity 4, seed " + SEED);
            }
            PartitionInfo p = info(client);
            assertEquals(4, p.getBlocks());
            assertEquals(3, p.getEvictions());
            assertEquals(4, p.getCapacityBlocks());
            // An evicted block written again is new again, and pushes out the oldest.
            assertTrue(client.writeAsync(b.get(0)).join().getCreated());
            assertTrue(stored(client, b.get(0)));
            assertFalse(stored(client, b.get(3)), "seed " + SEED);
        }
    }

    @Test
    void aBlockWithATtlIsAMissFromItsExpiryOnAndARewriteSetsItsLifeAnew() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        try (TokenCacheServer server = start(0); TokenCacheClient client = Fixture.client(server, "default")) {
            List<Chunk> b = blocks(client, rnd, 3);
            client.writeAsync(b.get(0).toBuilder().setTtlSeconds(10).build()).join();
            client.writeAsync(b.get(1)).join();
            client.writeAsync(b.get(2).toBuilder().setTtlSeconds(10).build()).join();
            clock.addAndGet(9_999);
            assertTrue(stored(client, b.get(0)));
            // Rewritten without a TTL: it lives on.
            assertFalse(client.writeAsync(b.get(2)).join().getCreated());
            clock.addAndGet(1);
            assertFalse(stored(client, b.get(0)), "expired at 10 s");
            assertTrue(stored(client, b.get(1)), "no TTL");
            assertTrue(stored(client, b.get(2)), "its TTL ended by the rewrite");
            PartitionInfo p = info(client);
            assertEquals(1, p.getExpirations());
            assertEquals(2, p.getBlocks());
            // Written again after expiring: stored again, with a new life.
            assertTrue(client.writeAsync(b.get(0).toBuilder().setTtlSeconds(5).build()).join().getCreated());
            assertTrue(stored(client, b.get(0)));
            clock.addAndGet(5_000);
            assertFalse(stored(client, b.get(0)));
            // Written again after expiring, with no read in between: new again.
            assertFalse(client.writeAsync(b.get(2).toBuilder().setTtlSeconds(1).build()).join().getCreated());
            clock.addAndGet(1_000);
            assertTrue(client.writeAsync(b.get(2)).join().getCreated(), "expired, then written: created");
            assertEquals(2, info(client).getBlocks(), "blocks 1 and 2");
        }
    }

    @Test
    void pinnedBlocksSurviveEvictionPressureUntilUnpinnedOrExpired() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        try (TokenCacheServer server = start(3); TokenCacheClient client = Fixture.client(server, "default")) {
            List<Chunk> b = blocks(client, rnd, 40);
            client.writeAsync(b.get(0).toBuilder().setPinned(true).build()).join();
            client.writeAsync(b.get(1).toBuilder().setPinned(true).setTtlSeconds(60).build()).join();
            for (int i = 2; i < 30; i++) {
                client.writeAsync(b.get(i)).join();
                assertTrue(stored(client, b.get(0)) && stored(client, b.get(1)), "pins kept after write " + i + ", seed " + SEED);
                assertTrue(stored(client, b.get(i)), "the newest block is kept");
            }
            assertEquals(2, info(client).getPinnedBlocks());
            client.writeAsync(b.get(30).toBuilder().setPinned(true).build()).join();
            // Full of pinned blocks: a new block is refused, and nothing is stored.
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, codeOf(() -> client.writeAsync(b.get(31)).join()));
            assertFalse(stored(client, b.get(31)));
            assertEquals(1, client.unpinAsync("default", b.get(0).getHash(), b.get(31).getHash()).join().getUnpinned());
            assertTrue(client.writeAsync(b.get(31)).join().getCreated());
            assertFalse(stored(client, b.get(0)), "unpinned, then the oldest: evicted");
            // The pin with a TTL ends with it.
            clock.addAndGet(60_000);
            client.writeAsync(b.get(32)).join();
            assertFalse(stored(client, b.get(1)), "its pin expired with it");
            assertTrue(stored(client, b.get(30)), "still pinned");
        }
    }

    @Test
    void livesSurviveARestart() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        List<Chunk> b;
        try (TokenCacheServer server = start(3); TokenCacheClient client = Fixture.client(server, "default")) {
            b = blocks(client, rnd, 6);
            client.writeAsync(b.get(0).toBuilder().setPinned(true).build()).join();
            client.writeAsync(b.get(1).toBuilder().setTtlSeconds(30).build()).join();
            client.writeAsync(b.get(2)).join();
        }
        try (TokenCacheServer server = start(3); TokenCacheClient client = Fixture.client(server, "default")) {
            assertEquals(1, info(client).getPinnedBlocks(), "the pin came back");
            for (int i = 3; i < 6; i++) {
                client.writeAsync(b.get(i)).join();
            }
            assertTrue(stored(client, b.get(0)), "pinned across the restart, seed " + SEED);
            clock.addAndGet(30_000);
            assertFalse(stored(client, b.get(1)), "the TTL came back");
            assertEquals(3, info(client).getBlocks());
        }
    }

    @Test
    void afterManyEvictionsTheRebuiltFilterStillFindsEveryKeptBlock() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        int capacity = 1_024;
        try (TokenCacheServer server = start(capacity); TokenCacheClient client = Fixture.client(server, "default")) {
            List<Chunk> b = blocks(client, rnd, 3 * capacity);
            for (int from = 0; from < b.size(); from += 256) {
                client.writeBatchAsync(b.subList(from, from + 256)).join();
            }
            int kept = 0;
            for (int i = 0; i < b.size(); i++) {
                boolean want = i >= b.size() - capacity;
                assertEquals(want, stored(client, b.get(i)), "block " + i + ", seed " + SEED);
                kept += want ? 1 : 0;
            }
            PartitionInfo p = info(client);
            assertEquals(kept, p.getBlocks());
            assertEquals(2L * capacity, p.getEvictions());
            // The filter was rebuilt from the kept blocks: it rules the evicted ones out again
            // (a filter that only grew would let them through to a storage read).
            int ruledOut = 0;
            for (int i = 0; i < b.size() - capacity; i++) {
                int[] tokens = b.get(i).getTokensList().stream().mapToInt(Integer::intValue).toArray();
                ruledOut += client.lookup("l", tokens).getBloomRejections();
            }
            assertTrue(ruledOut >= b.size() - capacity - 5, "evicted blocks ruled out by the filter: " + ruledOut);
        }
    }

    /**
     * Four clients write into one bounded partition at once, one of them pinning its first blocks:
     * the partition ends at its capacity, every pinned block stays, every block kept reads back its
     * own tokens, and the counts add up.
     */
    @Test
    void concurrentWritersKeepTheCapacityAndThePins() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        int capacity = 64;
        int perWriter = 300;
        try (TokenCacheServer server = start(capacity); TokenCacheClient client = Fixture.client(server, "default")) {
            List<List<Chunk>> byWriter = new ArrayList<>();
            for (int w = 0; w < 4; w++) {
                byWriter.add(blocks(client, rnd, perWriter));
            }
            List<Thread> threads = new ArrayList<>();
            List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int w = 0; w < 4; w++) {
                List<Chunk> mine = byWriter.get(w);
                boolean pins = w == 0;
                Thread t = new Thread(() -> {
                    try {
                        for (int i = 0; i < mine.size(); i++) {
                            Chunk c = pins && i < 10 ? mine.get(i).toBuilder().setPinned(true).build() : mine.get(i);
                            client.writeAsync(c).join();
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                });
                threads.add(t);
                t.start();
            }
            for (Thread t : threads) {
                t.join();
            }
            assertTrue(failures.isEmpty(), "seed " + SEED + ": " + failures);
            PartitionInfo p = info(client);
            assertEquals(capacity, p.getBlocks(), "seed " + SEED);
            assertEquals(4L * perWriter - capacity, p.getEvictions());
            assertEquals(10, p.getPinnedBlocks());
            int kept = 0;
            for (List<Chunk> mine : byWriter) {
                for (Chunk c : mine) {
                    kept += stored(client, c) ? 1 : 0; // stored() checks a found block's tokens
                }
            }
            assertEquals(capacity, kept, "seed " + SEED);
            for (int i = 0; i < 10; i++) {
                assertTrue(stored(client, byWriter.get(0).get(i)), "pinned block " + i + ", seed " + SEED);
            }
        }
    }

    @Test
    void aNegativeCapacityIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> TokenCacheServer.builder().partitionCapacityBlocks(-1));
    }
}
