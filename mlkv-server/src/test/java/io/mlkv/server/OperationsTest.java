package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import io.mlkv.client.proto.TokenCacheGrpc;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The standard health service and server reflection, as probes and grpcurl use them. */
class OperationsTest {
    private static final String TOKEN = "ops-token";

    @TempDir
    Path dir;

    private static ManagedChannel channel(TokenCacheServer server) {
        return NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    private static HealthCheckResponse.ServingStatus check(ManagedChannel ch, String service) {
        return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
    }

    /** The services reflection lists, with {@code token} as the bearer token (null: none). */
    private static List<String> listServices(ManagedChannel ch, String token) throws Exception {
        ServerReflectionGrpc.ServerReflectionStub stub = ServerReflectionGrpc.newStub(ch);
        if (token != null) {
            Metadata headers = new Metadata();
            headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
            stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        CompletableFuture<List<String>> result = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> requests = stub.serverReflectionInfo(new StreamObserver<>() {
            @Override
            public void onNext(ServerReflectionResponse r) {
                result.complete(r.getListServicesResponse().getServiceList().stream().map(ServiceResponse::getName)
                        .collect(Collectors.toList()));
            }

            @Override
            public void onError(Throwable t) {
                result.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        try {
            return result.get(5, TimeUnit.SECONDS);
        } finally {
            requests.onCompleted();
        }
    }

    @Test
    void healthAnswersWithoutTheTokenAndReflectionNeedsIt() throws Exception {
        try (TokenCacheServer server = Fixture.server(dir).bearerToken(TOKEN).start()) {
            ManagedChannel ch = channel(server);
            try {
                assertEquals(HealthCheckResponse.ServingStatus.SERVING, check(ch, ""));
                assertEquals(HealthCheckResponse.ServingStatus.SERVING, check(ch, TokenCacheGrpc.SERVICE_NAME));
                StatusRuntimeException unknown = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                        () -> check(ch, "no.such.Service"));
                assertEquals(Status.Code.NOT_FOUND, unknown.getStatus().getCode());
                java.util.concurrent.ExecutionException refused = org.junit.jupiter.api.Assertions.assertThrows(
                        java.util.concurrent.ExecutionException.class, () -> listServices(ch, null));
                assertEquals(Status.Code.UNAUTHENTICATED, Status.fromThrowable(refused.getCause()).getCode());
                List<String> services = listServices(ch, TOKEN);
                assertTrue(services.contains(TokenCacheGrpc.SERVICE_NAME) && services.contains("grpc.health.v1.Health"),
                        services.toString());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /**
     * With a Prometheus port, /metrics is served over loopback and counts the calls made (by
     * method and code, a refused one included), their latency, and the blocks looked up and found.
     */
    @Test
    void prometheusMetricsAreServedAndCountTheCalls() throws Exception {
        try (TokenCacheServer server = Fixture.server(dir).prometheus(0).start();
             io.mlkv.client.TokenCacheClient client = Fixture.client(server, "default")) {
            int[] prompt = Fixture.prompt(new java.util.SplittableRandom(7), 3 * 128);
            for (io.mlkv.client.proto.Chunk c : client.chunksOf(prompt)) {
                assertTrue(client.writeAsync(c).join().getCreated());
            }
            assertEquals(3, client.lookup("c1", prompt).getCachedBlocks());
            // HttpURLConnection, not java.net.http.HttpClient: the JDK client reads its restricted-header
            // setting once, and the Azure backend (other tests in this JVM) must be first to set it.
            java.net.HttpURLConnection c = (java.net.HttpURLConnection) java.net.URI.create("http://127.0.0.1:"
                    + server.prometheusPort() + "/metrics").toURL().openConnection();
            assertEquals(200, c.getResponseCode());
            String body;
            try (java.io.InputStream in = c.getInputStream()) {
                body = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            }
            for (String expected : new String[] {"mlkv_token_cache_calls_total{code=\"OK\",method=\"Lookup\"} 1.0",
                "mlkv_token_cache_call_duration_seconds_count{method=\"Lookup\"} 1", "mlkv_token_cache_blocks_asked_total",
                "mlkv_token_cache_blocks_hit_total", "mlkv_token_cache_uploads_pending 0.0"}) {
                assertTrue(body.contains(expected), expected + " in:\n" + body);
            }
        }
    }

    /** A probe watching the server sees NOT_SERVING as soon as a shutdown starts draining. */
    @Test
    void healthTurnsNotServingWhenTheServerDrains() throws Exception {
        TokenCacheServer server = Fixture.start(dir);
        ManagedChannel ch = channel(server);
        CompletableFuture<Void> closing = null;
        try {
            Iterator<HealthCheckResponse> watch = HealthGrpc.newBlockingStub(ch)
                    .watch(HealthCheckRequest.newBuilder().setService("").build());
            assertEquals(HealthCheckResponse.ServingStatus.SERVING, watch.next().getStatus());
            closing = CompletableFuture.runAsync(server::close);
            assertEquals(HealthCheckResponse.ServingStatus.NOT_SERVING, watch.next().getStatus());
        } finally {
            ch.shutdownNow(); // ends the watch, so the drain need not wait for it
            if (closing != null) {
                closing.get(30, TimeUnit.SECONDS);
            }
            server.close();
        }
    }
}
