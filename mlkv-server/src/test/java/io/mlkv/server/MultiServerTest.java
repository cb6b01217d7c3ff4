package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.HealthResponse;
import io.mlkv.client.proto.PartitionInfo;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Several server processes' worth of servers: the client sends each partition to its one owner. */
class MultiServerTest {
    @TempDir
    Path dir;

    @Test
    void eachPartitionLivesOnTheServerTheRingChooses() throws Exception {
        String[] partitions = new String[12];
        for (int i = 0; i < partitions.length; i++) {
            partitions[i] = "tenant-" + i;
        }
        try (TokenCacheServer s1 = Fixture.start(dir.resolve("s1"), partitions);
             TokenCacheServer s2 = Fixture.start(dir.resolve("s2"), partitions);
             TokenCacheServer s3 = Fixture.start(dir.resolve("s3"), partitions)) {
            String list = "127.0.0.1:" + s1.port() + ",127.0.0.1:" + s2.port() + ",127.0.0.1:" + s3.port();
            SplittableRandom rnd = new SplittableRandom(21);
            try (TokenCacheClient client = TokenCacheClient.builder().endpoints(list).build()) {
                for (String p : partitions) {
                    int[] prompt = Fixture.prompt(rnd, 2 * 128);
                    client.writeBatchAsync(client.chunksOf(p, prompt)).join();
                    assertEquals(2, client.lookupAsync(p, "x", prompt).join().getCachedBlocks());
                }
                Map<String, Integer> serversUsed = new HashMap<>();
                for (TokenCacheServer s : List.of(s1, s2, s3)) {
                    String endpoint = "127.0.0.1:" + s.port();
                    try (TokenCacheClient direct = TokenCacheClient.builder().endpoints(endpoint).build()) {
                        HealthResponse h = direct.health("tenant-0");
                        for (PartitionInfo info : h.getPartitionsList()) {
                            boolean owner = client.serverFor(info.getPartitionKey()).equals(endpoint);
                            assertEquals(owner ? 2 : 0, info.getBlocks(), info.getPartitionKey() + " on " + endpoint);
                            if (owner) {
                                serversUsed.merge(endpoint, 1, Integer::sum);
                            }
                        }
                    }
                }
                assertTrue(serversUsed.size() >= 2, "partitions spread over servers: " + serversUsed);
            }
        }
    }
}
