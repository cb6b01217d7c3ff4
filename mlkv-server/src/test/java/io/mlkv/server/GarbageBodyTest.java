package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.TokenCacheException;
import io.mlkv.client.proto.TokenCacheGrpc;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Request bodies that are not protobuf get INVALID_ARGUMENT from every method, and the server's
 * log grows by a few lines, not a stack trace per request.
 */
class GarbageBodyTest {
    @TempDir
    Path dir;

    /** A method of the service called with raw bytes. */
    private static MethodDescriptor<byte[], byte[]> raw(MethodDescriptor<?, ?> m) {
        MethodDescriptor.Marshaller<byte[]> bytes = new MethodDescriptor.Marshaller<>() {
            @Override
            public InputStream stream(byte[] value) {
                return new ByteArrayInputStream(value);
            }

            @Override
            public byte[] parse(InputStream stream) {
                try {
                    return stream.readAllBytes();
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            }
        };
        return m.toBuilder(bytes, bytes).build();
    }

    /** Counts bytes written to stderr and to java.util.logging while it is installed. */
    private static final class LogCounter extends Handler implements AutoCloseable {
        final ByteArrayOutputStream err = new ByteArrayOutputStream();
        long julBytes;
        private final PrintStream saved = System.err;
        private final java.util.logging.Logger root = java.util.logging.Logger.getLogger("");

        LogCounter() {
            System.setErr(new PrintStream(new OutputStream() {
                @Override
                public void write(int b) {
                    synchronized (err) {
                        err.write(b);
                    }
                    saved.write(b);
                }
            }, true));
            root.addHandler(this);
        }

        @Override
        public synchronized void publish(LogRecord r) {
            julBytes += String.valueOf(r.getMessage()).length();
            if (r.getThrown() != null) {
                julBytes += 2000;
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
            root.removeHandler(this);
            System.setErr(saved);
        }

        long total() {
            synchronized (err) {
                return err.size() + julBytes;
            }
        }
    }

    @Test
    void aThousandGarbageBodiesToEveryMethodGetInvalidArgumentAndLittleLog() throws Exception {
        List<MethodDescriptor<?, ?>> methods = new ArrayList<>();
        for (var m : TokenCacheGrpc.getServiceDescriptor().getMethods()) {
            methods.add(m);
        }
        SplittableRandom random = new SplittableRandom(21);
        try (TokenCacheServer server = Fixture.server(dir).start()) {
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            try (LogCounter log = new LogCounter()) {
                int refused = 0;
                for (MethodDescriptor<?, ?> m : methods) {
                    MethodDescriptor<byte[], byte[]> call = raw(m);
                    for (int i = 0; i < 1000; i++) {
                        // 0xFF bytes: field 31, wire type 7, which no protobuf parser accepts.
                        byte[] body = new byte[1 + random.nextInt(64)];
                        random.nextBytes(body);
                        body[0] = (byte) 0xFF;
                        try {
                            ClientCalls.blockingUnaryCall(channel, call, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), body);
                        } catch (StatusRuntimeException e) {
                            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), m.getFullMethodName() + ": " + e);
                            assertTrue(e.getStatus().getDescription().startsWith("malformed " + m.getBareMethodName()),
                                    e.getStatus().getDescription());
                            refused++;
                            continue;
                        }
                        throw new AssertionError(m.getFullMethodName() + " accepted a garbage body");
                    }
                }
                assertEquals(1000 * methods.size(), refused);
                assertEquals(refused, server.malformedRequests());
                assertTrue(log.total() < 10_000, "the log grew by " + log.total() + " bytes for " + refused
                        + " refused requests");
            } finally {
                channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            }
            try (TokenCacheClient client = Fixture.client(server, "default")) {
                int[] prompt = Fixture.prompt(new SplittableRandom(5), 256);
                client.writeBatchAsync(client.chunksOf(prompt)).join();
                assertEquals(2, client.lookup("after-garbage", prompt).getCachedBlocks(), "the server still serves");
            }
        }
    }

    @Test
    void clientFailuresNameTheStatusTheServerAndTheCall() throws Exception {
        int[] prompt = Fixture.prompt(new SplittableRandom(9), 128);
        try (TokenCacheServer server = Fixture.server(dir).bearerToken("right-token").start();
                TokenCacheClient wrong = TokenCacheClient.builder().endpoints("127.0.0.1:" + server.port())
                        .bearerToken("wrong-token").build()) {
            TokenCacheException e = org.junit.jupiter.api.Assertions.assertThrows(TokenCacheException.class,
                    () -> wrong.lookup("x", prompt));
            assertEquals(Status.Code.UNAUTHENTICATED, e.code());
            assertEquals("127.0.0.1:" + server.port(), e.server());
            assertEquals("Lookup", e.call());
            assertTrue(e.getMessage().contains("127.0.0.1:" + server.port()) && e.getMessage().contains("bearerToken"),
                    e.getMessage());
        }
        int closedPort;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            closedPort = s.getLocalPort();
        }
        try (TokenCacheClient nobody = TokenCacheClient.builder().endpoints("127.0.0.1:" + closedPort)
                .maxAttempts(1).deadline(java.time.Duration.ofSeconds(5)).build()) {
            TokenCacheException e = org.junit.jupiter.api.Assertions.assertThrows(TokenCacheException.class,
                    () -> nobody.health("default"));
            assertEquals(Status.Code.UNAVAILABLE, e.code());
            assertTrue(e.getMessage().contains("127.0.0.1:" + closedPort) && e.getMessage().contains("Health"),
                    e.getMessage());
        }
    }
}
