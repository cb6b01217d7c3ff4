package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.core.util.BinaryData;
import com.azure.storage.blob.BlobServiceClientBuilder;
import io.grpc.Status;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.BlockHash;
import io.mlkv.client.Location;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.Chunk;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The blob backend against Azurite, the official storage emulator, on a loopback port. */
class AzureBackendTest {
    private static final long SEED = Long.getLong("test.seed", System.nanoTime());
    @TempDir
    static Path azuriteDir;
    private static Azurite azurite;

    @TempDir
    Path dir;

    @BeforeAll
    static void startAzurite() throws Exception {
        azurite = Azurite.start(azuriteDir);
    }

    @AfterAll
    static void stopAzurite() throws Exception {
        if (azurite != null) {
            azurite.close();
        }
    }

    private TokenCacheServer server(String local, String container, WriteMode mode) throws Exception {
        return Fixture.server(dir.resolve(local)).azure(azurite.connectionString(), container)
                .writeMode(mode, 2, 16).start();
    }

    @Test
    void writeThroughBlocksAreFoundByAServerWithAnEmptyLocalCache() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(SEED), 6 * 128);
        try (TokenCacheServer s = server("one", "through", WriteMode.THROUGH); TokenCacheClient c = Fixture.client(s, "default")) {
            c.writeBatchAsync(c.chunksOf(prompt)).join();
        }
        try (TokenCacheServer s = server("two", "through", WriteMode.THROUGH); TokenCacheClient c = Fixture.client(s, "default")) {
            assertEquals(0, c.health("default").getPartitions(0).getBlocks(), "nothing local in the new directory");
            assertEquals(6, c.lookup("x", prompt).getCachedBlocks(), "seed " + SEED + ": Bloom filter from the blob list");
            Chunk first = c.chunksOf(prompt).get(0);
            assertEquals(first, c.readAsync(Location.of("default", first.getHash()).encode()).join().getChunk());
            assertEquals(6, c.health("default").getPartitions(0).getBlocks(), "blocks read from blobs are cached locally");
        }
    }

    @Test
    void writeBehindUploadsEveryQueuedBlockBeforeCloseReturns() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(SEED + 1), 100 * 128);
        try (TokenCacheServer s = server("one", "behind", WriteMode.BEHIND); TokenCacheClient c = Fixture.client(s, "default")) {
            for (Chunk chunk : c.chunksOf(prompt)) {
                c.writeAsync(chunk).join();
            }
        }
        try (TokenCacheServer s = server("two", "behind", WriteMode.BEHIND); TokenCacheClient c = Fixture.client(s, "default")) {
            assertEquals(100, c.lookup("x", prompt).getCachedBlocks(), "seed " + SEED);
        }
    }

    @Test
    void aDamagedBlobIsAMissNotAnError() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(SEED + 2), 2 * 128);
        long[] hashes = BlockHash.ofPrompt(prompt, 128);
        try (TokenCacheServer s = server("one", "damaged", WriteMode.THROUGH); TokenCacheClient c = Fixture.client(s, "default")) {
            c.writeBatchAsync(c.chunksOf(prompt)).join();
        }
        var container = new BlobServiceClientBuilder().connectionString(azurite.connectionString()).buildClient()
                .getBlobContainerClient("damaged");
        var blob = container.getBlobClient("default/" + java.util.HexFormat.of().toHexDigits(hashes[1]));
        byte[] bytes = blob.downloadContent().toBytes();
        bytes[100] ^= 0x40;
        blob.upload(BinaryData.fromBytes(bytes), true);
        try (TokenCacheServer s = server("two", "damaged", WriteMode.THROUGH); TokenCacheClient c = Fixture.client(s, "default")) {
            assertEquals(1, c.lookup("x", prompt).getCachedBlocks(), "the damaged second block ends the prefix");
            assertFalse(c.readAsync(Location.of("default", hashes[1]).encode()).join().getFound());
        }
    }

    /**
     * With a capacity, a blob-backed server evicts only local copies: an evicted block is read back
     * from its blob. TTLs and pins are refused there (blob copies carry no lifetime).
     */
    @Test
    void withABackendEvictionDropsLocalCopiesOnlyAndLifetimesAreRefused() throws Exception {
        SplittableRandom rnd = new SplittableRandom(SEED + 5);
        try (TokenCacheServer s = Fixture.server(dir.resolve("bounded")).azure(azurite.connectionString(), "bounded")
                .writeMode(WriteMode.THROUGH, 1, 1).partitionCapacityBlocks(2).start();
             TokenCacheClient c = Fixture.client(s, "default")) {
            List<Chunk> blocks = new java.util.ArrayList<>();
            for (int i = 0; i < 4; i++) {
                blocks.add(c.chunksOf(Fixture.prompt(rnd, 128)).get(0));
                c.writeAsync(blocks.get(i)).join();
            }
            assertEquals(2, c.health("default").getPartitions(0).getBlocks(), "two kept locally");
            assertEquals(2, c.health("default").getPartitions(0).getEvictions());
            Chunk first = blocks.get(0);
            assertEquals(first, c.readAsync(Location.of("default", first.getHash()).encode()).join().getChunk(),
                    "an evicted block comes back from its blob, seed " + SEED);
            for (Chunk.Builder life : List.of(blocks.get(1).toBuilder().setTtlSeconds(5), blocks.get(1).toBuilder().setPinned(true))) {
                CompletionException e = assertThrows(CompletionException.class, () -> c.writeAsync(life.build()).join());
                TokenCacheException status = (TokenCacheException) e.getCause();
                assertEquals(Status.Code.INVALID_ARGUMENT, status.code(), status.getMessage());
            }
        }
    }

    @Test
    void whenTheBackendIsDownWriteThroughFailsUnavailableAndStoresNothing() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(SEED + 3), 128);
        Azurite other = Azurite.start(dir.resolve("other-azurite"));
        try {
            TokenCacheServer s = Fixture.server(dir.resolve("one")).azure(other.connectionString(), "down")
                    .writeMode(WriteMode.THROUGH, 1, 1).start();
            try (s; TokenCacheClient c = Fixture.client(s, "default")) {
                other.close();
                CompletionException e = assertThrows(CompletionException.class,
                        () -> c.writeAsync(c.chunksOf(prompt).get(0)).join());
                TokenCacheException status = (TokenCacheException) e.getCause();
                assertEquals(Status.Code.UNAVAILABLE, status.code(), status.getMessage());
                assertTrue(status.status().getDescription().contains("upload default/"), status.getMessage());
                assertEquals(0, c.health("default").getPartitions(0).getBlocks());
            }
        } finally {
            other.close();
        }
    }

    @Test
    void badContainerNamesAreRefusedAtOnce() {
        var b = TokenCacheServer.builder();
        assertThrows(IllegalArgumentException.class, () -> b.azure(azurite.connectionString(), "Bad_Name"));
        assertThrows(IllegalArgumentException.class, () -> b.azure(" ", "fine"));
    }
}
