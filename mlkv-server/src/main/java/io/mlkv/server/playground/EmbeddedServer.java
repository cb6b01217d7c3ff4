package io.mlkv.server.playground;

import io.mlkv.server.TokenCacheServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/** A server on a loopback port over a temporary directory, deleted when closed. */
final class EmbeddedServer implements AutoCloseable {
    final TokenCacheServer server;
    private final Path dir;

    EmbeddedServer(int blockSize, List<String> partitions) throws IOException {
        this(blockSize, partitions, io.mlkv.core.Durability.WRITE_THROUGH);
    }

    /** A server on a loopback port over a temporary directory, its local store at {@code durability}. */
    EmbeddedServer(int blockSize, List<String> partitions, io.mlkv.core.Durability durability) throws IOException {
        this.dir = Files.createTempDirectory("mlkv-token-cache-");
        this.server = TokenCacheServer.builder().host("127.0.0.1").port(0).blockSize(blockSize).partitions(partitions)
                .dataDirectory(dir).localDurability(durability).metrics(0, System.out).start();
    }

    String endpoint() {
        return "127.0.0.1:" + server.port();
    }

    @Override
    public void close() {
        try {
            server.close();
        } finally {
            try (Stream<Path> s = Files.walk(dir)) {
                for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot delete " + dir, e);
            }
        }
    }
}
