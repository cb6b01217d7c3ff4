package io.mlkv.server;

import io.mlkv.client.TokenCacheClient;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/** Test helpers: servers on loopback ports and prompts of random tokens. */
final class Fixture {
    private Fixture() {
    }

    static TokenCacheServer.Builder server(Path dir, String... partitions) {
        return TokenCacheServer.builder().host("127.0.0.1").port(0).dataDirectory(dir)
                .partitions(List.of(partitions.length == 0 ? new String[] {"default"} : partitions))
                .dramBytes(16 << 20).bloom(100_000, 0.01).metrics(0, System.out);
    }

    static TokenCacheServer start(Path dir, String... partitions) throws IOException {
        return server(dir, partitions).start();
    }

    static TokenCacheClient client(TokenCacheServer server, String container) {
        return TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port()).container(container).build();
    }

    static int[] prompt(SplittableRandom rnd, int tokens) {
        int[] p = new int[tokens];
        for (int i = 0; i < tokens; i++) {
            p[i] = rnd.nextInt(128_000);
        }
        return p;
    }
}
