package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.Location;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.Chunk;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every kind of bad request gets its status and a message, and leaves the stored blocks intact. */
class BadInputTest {
    @TempDir
    Path dir;
    private TokenCacheServer server;
    private TokenCacheClient client;
    private int[] prompt;
    private List<Chunk> stored;

    @BeforeEach
    void start() throws Exception {
        server = Fixture.server(dir, "a", "b").maxMessageBytes(64 << 10).maxLookupTokens(8 * 128).maxBatch(8).start();
        client = Fixture.client(server, "a");
        prompt = Fixture.prompt(new SplittableRandom(11), 3 * 128);
        stored = client.chunksOf(prompt);
        client.writeBatchAsync(stored).join();
    }

    @AfterEach
    void stop() {
        // Whatever was sent, the stored blocks are still there, unchanged.
        assertEquals(3, client.lookup("after", prompt).getCachedBlocks());
        for (Chunk c : stored) {
            assertEquals(c, client.readAsync(Location.of("a", c.getHash()).encode()).join().getChunk());
        }
        client.close();
        server.close();
    }

    private static TokenCacheException fails(Status.Code code, String messagePart, Supplier<?> call) {
        CompletionException e = assertThrows(CompletionException.class, call::get);
        TokenCacheException s = (TokenCacheException) e.getCause();
        assertEquals(code, s.code(), s.getMessage());
        assertTrue(s.status().getDescription() != null && s.status().getDescription().contains(messagePart),
                "message '" + s.status().getDescription() + "' should name '" + messagePart + "'");
        return s;
    }

    @Test
    void aChunkOfTheWrongBlockSizeIsRefused() {
        Chunk c = stored.get(0).toBuilder().clearTokens().addAllTokens(List.of(1, 2, 3)).build();
        fails(Status.Code.INVALID_ARGUMENT, "exactly 128 tokens", () -> client.writeAsync(c).join());
    }

    @Test
    void aChunkWhoseHashDoesNotMatchItsTokensIsRefused() {
        Chunk forged = stored.get(1).toBuilder().setTokens(0, stored.get(1).getTokens(0) + 1).build();
        fails(Status.Code.INVALID_ARGUMENT, "does not match", () -> client.writeAsync(forged).join());
    }

    @Test
    void aBatchWithOneBadChunkStoresNothing() {
        int[] fresh = Fixture.prompt(new SplittableRandom(12), 2 * 128);
        List<Chunk> batch = new ArrayList<>(client.chunksOf(fresh));
        batch.add(batch.get(0).toBuilder().setHash(42).build());
        fails(Status.Code.INVALID_ARGUMENT, "chunk 2", () -> client.writeBatchAsync(batch).join());
        assertEquals(0, client.lookup("x", fresh).getCachedBlocks());
    }

    @Test
    void unknownPartitionsAreNotFound() {
        Chunk c = stored.get(0).toBuilder().setPartitionKey("nope").build();
        fails(Status.Code.NOT_FOUND, "unknown partition 'nope'", () -> client.writeAsync(c).join());
        fails(Status.Code.NOT_FOUND, "unknown partition", () -> client.lookupAsync("nope", "x", prompt).join());
        fails(Status.Code.INVALID_ARGUMENT, "partition_key is empty", () -> client.lookupAsync("", "x", prompt).join());
    }

    @Test
    void aLocationOfAnotherPartitionIsRefused() {
        ByteString ofA = Location.of("a", stored.get(0).getHash()).encode();
        fails(Status.Code.PERMISSION_DENIED, "another partition", () -> client.readAsync("b", ofA, null).join());
    }

    @Test
    void malformedLocationsAreInvalid() {
        fails(Status.Code.INVALID_ARGUMENT, "malformed location",
                () -> client.readAsync(ByteString.copyFromUtf8("garbage")).join());
        byte[] bytes = Location.of("a", 1).encode().toByteArray();
        bytes[0] = 2;
        fails(Status.Code.INVALID_ARGUMENT, "unknown format 2", () -> client.readAsync(ByteString.copyFrom(bytes)).join());
    }

    @Test
    void tooManyTokensOrBlocksAreRefused() {
        int[] long9 = Fixture.prompt(new SplittableRandom(13), 9 * 128);
        fails(Status.Code.INVALID_ARGUMENT, "too many tokens", () -> client.lookupAsync("a", "x", long9).join());
        fails(Status.Code.INVALID_ARGUMENT, "too many blocks",
                () -> client.lookupHashesAsync("a", "x", new long[9]).join());
        List<ByteString> nine = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            nine.add(Location.of("a", i).encode());
        }
        fails(Status.Code.INVALID_ARGUMENT, "exceeds the limit of 8", () -> client.readBatchAsync("a", nine).join());
    }

    @Test
    void oversizedMessagesAreResourceExhausted() {
        int[] huge = new int[40_000]; // 160+ KB on the wire, over the 64 KiB limit
        java.util.Arrays.fill(huge, 1 << 30);
        TokenCacheException e = assertThrows(CompletionException.class,
                () -> client.lookupAsync("a", "x", huge).join()).getCause() instanceof TokenCacheException s ? s : null;
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.code(), e.getMessage());
    }

    @Test
    void packedTokensAnswerAsTokensDoAndMalformedOnesAreRefused() {
        var channel = io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                .usePlaintext().build();
        try {
            var stub = io.mlkv.client.proto.TokenCacheGrpc.newBlockingStub(channel);
            java.nio.ByteBuffer le = java.nio.ByteBuffer.allocate(prompt.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            le.asIntBuffer().put(prompt);
            ByteString packed = ByteString.copyFrom(le.array());
            var byPacked = stub.lookup(io.mlkv.client.proto.LookupRequest.newBuilder().setPartitionKey("a")
                    .setPackedTokens(packed).build());
            var plain = io.mlkv.client.proto.LookupRequest.newBuilder().setPartitionKey("a");
            for (int t : prompt) {
                plain.addTokens(t);
            }
            var byTokens = stub.lookup(plain.build());
            assertEquals(3, byPacked.getCachedBlocks());
            assertEquals(byTokens, byPacked, "the same answer either way");
            StatusRuntimeException both = assertThrows(StatusRuntimeException.class,
                    () -> stub.lookup(plain.setPackedTokens(packed).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, both.getStatus().getCode());
            assertTrue(both.getStatus().getDescription().contains("not both"), both.getStatus().getDescription());
            StatusRuntimeException ragged = assertThrows(StatusRuntimeException.class,
                    () -> stub.lookup(io.mlkv.client.proto.LookupRequest.newBuilder().setPartitionKey("a")
                            .setPackedTokens(packed.substring(0, 9)).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, ragged.getStatus().getCode());
            assertTrue(ragged.getStatus().getDescription().contains("4 per token"), ragged.getStatus().getDescription());
        } finally {
            channel.shutdownNow();
        }
    }

    @Test
    void tokensAndHashesTogetherAreAmbiguous() {
        io.mlkv.client.proto.LookupRequest both = io.mlkv.client.proto.LookupRequest.newBuilder()
                .setPartitionKey("a").addTokens(1).addBlockHashes(2).build();
        var stub = io.mlkv.client.proto.TokenCacheGrpc.newBlockingStub(
                io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                        .usePlaintext().build());
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> stub.lookup(both));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("not both"));
        ((io.grpc.ManagedChannel) stub.getChannel()).shutdownNow();
    }

    @Test
    void expectedTokensOfTheWrongLengthAreInvalid() {
        fails(Status.Code.INVALID_ARGUMENT, "expected_tokens has 2",
                () -> client.readAsync("a", Location.of("a", stored.get(0).getHash()).encode(), new int[] {1, 2}).join());
    }
}
