package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.mlkv.client.HashScheme;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.HealthResponse;
import io.mlkv.client.proto.PartitionInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Partitions with their own block hash schemes, salts as namespaces, and schemes fixed at creation. */
class HashSchemeServerTest {
    private static final long SEED = Long.getLong("test.seed", System.nanoTime());
    private static final HashScheme CHAINED = HashScheme.chainedXxh3(1337);

    @TempDir
    Path dir;

    private TokenCacheClient client(TokenCacheServer server, HashScheme scheme) {
        return TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port()).container("default")
                .hashScheme(scheme).build();
    }

    private static Status.Code codeOf(Throwable t) {
        Throwable c = t instanceof CompletionException ? t.getCause() : t;
        return ((TokenCacheException) c).status().getCode();
    }

    @Test
    void aChainedPartitionTakesItsSchemesChunksAndSaltsSeparatePrompts() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED);
        int[] prompt = Fixture.prompt(rnd, 4 * 128);
        try (TokenCacheServer server = Fixture.server(dir, "default", "routed").partitionHashScheme("routed", CHAINED)
                .start();
             TokenCacheClient chained = client(server, CHAINED);
             TokenCacheClient v1 = client(server, HashScheme.MLKV_V1)) {
            HealthResponse h = chained.health("routed");
            for (PartitionInfo p : h.getPartitionsList()) {
                assertEquals(p.getPartitionKey().equals("routed") ? "chained-xxh3:1337" : "mlkv-v1", p.getHashScheme());
            }
            List<Chunk> modelA = chained.chunksOf("routed", "model-a", prompt);
            assertEquals(CHAINED.prompt(prompt, 128, "model-a")[3], modelA.get(3).getHash());
            chained.writeBatchAsync(modelA).join();
            assertEquals(4, chained.lookupAsync("routed", "c", "model-a", prompt).join().getCachedBlocks(), "seed " + SEED);
            assertEquals(0, chained.lookupAsync("routed", "c", "model-b", prompt).join().getCachedBlocks(),
                    "another salt shares no block");
            assertEquals(0, chained.lookupAsync("routed", "c", prompt).join().getCachedBlocks(), "nor does no salt");
            assertEquals(4, chained.lookupHashesAsync("routed", "c", CHAINED.prompt(prompt, 128, "model-a")).join()
                    .getCachedBlocks(), "a router's own chained hashes find the blocks");

            // A chunk hashed under mlkv-v1 is refused by the chained partition, and the other way round.
            Throwable wrong = assertThrows(CompletionException.class,
                    () -> v1.writeAsync(v1.chunksOf("routed", prompt).get(0)).join());
            assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(wrong));
            assertTrue(wrong.getCause().getMessage().contains("chained-xxh3:1337"), wrong.getCause().getMessage());
            assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(assertThrows(CompletionException.class,
                    () -> chained.writeAsync(chained.chunksOf("default", prompt).get(1)).join())));
            // The mlkv-v1 partition takes salts too.
            v1.writeBatchAsync(v1.chunksOf("default", "tenant", prompt)).join();
            assertEquals(4, v1.lookupAsync("default", "c", "tenant", prompt).join().getCachedBlocks());
            assertEquals(0, v1.lookupAsync("default", "c", prompt).join().getCachedBlocks());
            assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(assertThrows(CompletionException.class,
                    () -> v1.lookupAsync("default", "c", "s".repeat(300), prompt).join())));
        }
    }

    @Test
    void aPartitionKeepsTheSchemeItWasCreatedWith() throws Exception {
        try (TokenCacheServer server = Fixture.server(dir, "a", "b").hashScheme(CHAINED).start();
             TokenCacheClient c = client(server, CHAINED)) {
            for (PartitionInfo p : c.health("a").getPartitionsList()) {
                assertEquals("chained-xxh3:1337", p.getHashScheme(), p.getPartitionKey());
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Fixture.server(dir, "a", "b").partitionHashScheme("a", CHAINED).start().close());
        assertTrue(e.getMessage().contains("'b'") && e.getMessage().contains("chained-xxh3:1337")
                && e.getMessage().contains("mlkv-v1"), e.getMessage());
        // The same schemes, and a new partition with another one, are fine.
        try (TokenCacheServer server = Fixture.server(dir, "a", "b", "c").hashScheme(CHAINED)
                .partitionHashScheme("c", HashScheme.MLKV_V1).start();
             TokenCacheClient c = client(server, CHAINED)) {
            assertEquals("mlkv-v1", c.health("c").getPartitionsList().stream()
                    .filter(p -> p.getPartitionKey().equals("c")).findFirst().orElseThrow().getHashScheme());
        }
    }

    @Test
    void aDataDirectoryFromBeforeSchemesHoldsMlkvV1Partitions() throws Exception {
        try (TokenCacheServer server = Fixture.start(dir, "old"); TokenCacheClient c = Fixture.client(server, "old")) {
            c.writeBatchAsync(c.chunksOf(Fixture.prompt(new SplittableRandom(SEED), 2 * 128))).join();
        }
        Files.delete(dir.resolve(PartitionSchemes.FILE));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Fixture.server(dir, "old").hashScheme(CHAINED).start().close());
        assertTrue(e.getMessage().contains("'old' was created with hash scheme mlkv-v1"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Fixture.server(dir, "old").partitionHashScheme("other", CHAINED).start().close(),
                "a scheme for a partition not served is a mistake");
    }
}
