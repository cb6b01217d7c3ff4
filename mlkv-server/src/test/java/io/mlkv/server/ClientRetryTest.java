package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.Status;
import io.mlkv.client.TokenCacheException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.PingRequest;
import io.mlkv.client.proto.PingResponse;
import io.mlkv.client.proto.TokenCacheGrpc;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The client retries calls that fail with UNAVAILABLE, up to its attempt limit, and no others. */
class ClientRetryTest {
    /** A server whose Ping fails with {@code code} for its first {@code failures} calls. */
    private static Server flaky(AtomicInteger calls, int failures, Status.Code code) throws Exception {
        return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new TokenCacheGrpc.TokenCacheImplBase() {
                    @Override
                    public void ping(PingRequest request, StreamObserver<PingResponse> out) {
                        if (calls.incrementAndGet() <= failures) {
                            out.onError(Status.fromCode(code).withDescription("flaky").asRuntimeException());
                        } else {
                            out.onNext(PingResponse.getDefaultInstance());
                            out.onCompleted();
                        }
                    }
                }).build().start();
    }

    private static TokenCacheClient client(Server s, int attempts) {
        return TokenCacheClient.builder().endpoints("127.0.0.1:" + s.getPort()).maxAttempts(attempts)
                .deadline(Duration.ofSeconds(10)).build();
    }

    @Test
    void unavailableIsRetriedUntilTheCallSucceeds() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        Server s = flaky(calls, 2, Status.Code.UNAVAILABLE);
        try (TokenCacheClient c = client(s, 4)) {
            c.pingAsync("default").join();
            assertEquals(3, calls.get(), "two failures, then the third attempt succeeded");
        } finally {
            s.shutdownNow();
        }
    }

    @Test
    void retriesStopAtTheAttemptLimit() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        Server s = flaky(calls, 10, Status.Code.UNAVAILABLE);
        try (TokenCacheClient c = client(s, 3)) {
            CompletionException e = assertThrows(CompletionException.class, () -> c.pingAsync("default").join());
            assertEquals(Status.Code.UNAVAILABLE, ((TokenCacheException) e.getCause()).code());
            assertEquals(3, calls.get());
        } finally {
            s.shutdownNow();
        }
    }

    @Test
    void otherFailuresAreNotRetried() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        Server s = flaky(calls, 10, Status.Code.INVALID_ARGUMENT);
        try (TokenCacheClient c = client(s, 4)) {
            CompletionException e = assertThrows(CompletionException.class, () -> c.pingAsync("default").join());
            assertTrue(e.getCause() instanceof TokenCacheException);
            assertEquals(1, calls.get());
        } finally {
            s.shutdownNow();
        }
    }
}
