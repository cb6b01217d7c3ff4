package io.mlkv.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.CallCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.HealthRequest;
import io.mlkv.client.proto.HealthResponse;
import io.mlkv.client.proto.LookupRequest;
import io.mlkv.client.proto.LookupResponse;
import io.mlkv.client.proto.PingRequest;
import io.mlkv.client.proto.ReadBatchRequest;
import io.mlkv.client.proto.ReadBatchResponse;
import io.mlkv.client.proto.ReadRequest;
import io.mlkv.client.proto.ReadResponse;
import io.mlkv.client.proto.TokenCacheGrpc;
import io.mlkv.client.proto.WriteBatchRequest;
import io.mlkv.client.proto.WriteBatchResponse;
import io.mlkv.client.proto.UnpinRequest;
import io.mlkv.client.proto.UnpinResponse;
import io.mlkv.client.proto.WriteRequest;
import io.mlkv.client.proto.WriteResponse;
import java.io.File;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import javax.net.ssl.SSLException;

/**
 * Java client of the prompt-token cache service.
 *
 * <pre>{@code
 * try (TokenCacheClient client = TokenCacheClient.builder()
 *         .endpoints("cache-host:8085,cache-host:8086")   // or KVSTORE_GRPC_SERVER
 *         .container("tenant-a/model-x")                  // the default partition key
 *         .build()) {
 *     LookupResponse hit = client.lookup("completion-17", promptTokens);
 *     for (Chunk c : client.chunksOf(promptTokens)) client.writeAsync(c);
 *     ReadResponse r = client.readAsync(hit.getLocations(0)).join();
 * }
 * }</pre>
 *
 * <p>Each partition belongs to one server of the endpoint list ({@link ServerRing}), so all calls
 * of a partition, a Lookup included, go to one server. Every call has a deadline; calls that fail
 * with UNAVAILABLE are retried by grpc's retry policy (all calls are idempotent: a block's content
 * is fixed by its hash). Failures complete the futures with a {@link TokenCacheException} naming the
 * status, the server and the call; the blocking methods throw it.
 * Thread-safe; one instance per process is enough.
 */
public final class TokenCacheClient implements AutoCloseable {
    /** Environment variable with the comma-separated server list. */
    public static final String SERVERS_ENV = "KVSTORE_GRPC_SERVER";
    private static final String SERVICE = "mlkv.tokencache.v1.TokenCache";

    private final ServerRing ring;
    private final ManagedChannel[] channels;
    private final TokenCacheGrpc.TokenCacheFutureStub[] stubs;
    private final String container;
    private final int blockSize;
    private final HashScheme hashScheme;
    private final Duration deadline;
    private final AtomicBoolean closed = new AtomicBoolean();

    private TokenCacheClient(Builder b) {
        this.ring = new ServerRing(b.endpoints);
        this.container = b.container;
        this.blockSize = b.blockSize;
        this.hashScheme = b.hashScheme;
        this.deadline = b.deadline;
        this.channels = new ManagedChannel[b.endpoints.size()];
        this.stubs = new TokenCacheGrpc.TokenCacheFutureStub[channels.length];
        CallCredentials credentials = b.bearerToken == null ? null : new BearerToken(b.bearerToken);
        for (int i = 0; i < channels.length; i++) {
            channels[i] = channel(b, b.endpoints.get(i));
            TokenCacheGrpc.TokenCacheFutureStub stub = TokenCacheGrpc.newFutureStub(channels[i]);
            stubs[i] = credentials == null ? stub : stub.withCallCredentials(credentials);
        }
    }

    private static ManagedChannel channel(Builder b, String endpoint) {
        int colon = endpoint.lastIndexOf(':');
        String host = endpoint.substring(0, colon);
        int port = Integer.parseInt(endpoint.substring(colon + 1));
        NettyChannelBuilder cb = NettyChannelBuilder.forAddress(host, port)
                .flowControlWindow(TransportSettings.FLOW_CONTROL_WINDOW_BYTES)
                .keepAliveTime(TransportSettings.KEEPALIVE_INTERVAL.toMillis(), TimeUnit.MILLISECONDS)
                .keepAliveTimeout(TransportSettings.KEEPALIVE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                .keepAliveWithoutCalls(true)
                .withOption(ChannelOption.TCP_NODELAY, true)
                .maxInboundMessageSize(b.maxMessageBytes);
        if (b.maxAttempts > 1) {
            cb.defaultServiceConfig(retryConfig(b.maxAttempts)).enableRetry();
        } else {
            cb.disableRetry();
        }
        if (b.trustCertificate == null) {
            cb.usePlaintext();
        } else {
            try {
                SslContext ssl = GrpcSslContexts.forClient().trustManager(b.trustCertificate).build();
                cb.sslContext(ssl);
            } catch (SSLException e) {
                throw new IllegalArgumentException("cannot use " + b.trustCertificate + " as the trusted certificate: "
                        + e.getMessage(), e);
            }
        }
        return cb.build();
    }

    private static Map<String, ?> retryConfig(int maxAttempts) {
        Map<String, Object> retry = Map.of(
                "maxAttempts", (double) maxAttempts,
                "initialBackoff", "0.05s",
                "maxBackoff", "1s",
                "backoffMultiplier", 2.0,
                "retryableStatusCodes", List.of("UNAVAILABLE"));
        return Map.of("methodConfig", List.of(Map.of(
                "name", List.of(Map.of("service", SERVICE)),
                "retryPolicy", retry)));
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The default partition key, given as {@link Builder#container}. */
    public String container() {
        return container;
    }

    /** The block hash scheme this client names blocks with. */
    public HashScheme hashScheme() {
        return hashScheme;
    }

    /** Tokens per block this client hashes with. */
    public int blockSize() {
        return blockSize;
    }

    /** The server that owns a partition. */
    public String serverFor(String partitionKey) {
        return ring.owner(partitionKey);
    }

    /** The whole blocks of a prompt as chunks of the default partition, hashes filled in. */
    public List<Chunk> chunksOf(int[] promptTokens) {
        return chunksOf(container, promptTokens);
    }

    /** The whole blocks of a prompt as chunks of a partition, hashes filled in. */
    public List<Chunk> chunksOf(String partitionKey, int[] promptTokens) {
        return chunksOf(partitionKey, null, promptTokens);
    }

    /**
     * The whole blocks of a prompt as chunks of a partition, hashed under {@code salt} (a model,
     * adapter or tenant name; null or empty: none) with this client's {@link HashScheme}.
     */
    public List<Chunk> chunksOf(String partitionKey, String salt, int[] promptTokens) {
        List<Chunk> chunks = new ArrayList<>(promptTokens.length / blockSize);
        long parent = hashScheme.root(salt);
        for (int off = 0; off + blockSize <= promptTokens.length; off += blockSize) {
            long hash = hashScheme.block(parent, promptTokens, off, blockSize);
            Chunk.Builder c = Chunk.newBuilder().setPartitionKey(partitionKey).setParentHash(parent).setHash(hash);
            for (int i = off; i < off + blockSize; i++) {
                c.addTokens(promptTokens[i]);
            }
            chunks.add(c.build());
            parent = hash;
        }
        return chunks;
    }

    /** {@link #lookupAsync} on the default partition, waiting for the answer. */
    public LookupResponse lookup(String completionId, int[] promptTokens) {
        return await(lookupAsync(container, completionId, promptTokens));
    }

    /** How many leading blocks of the prompt are cached, with their locations. */
    public CompletableFuture<LookupResponse> lookupAsync(String partitionKey, String completionId, int[] promptTokens) {
        return lookupAsync(partitionKey, completionId, null, promptTokens);
    }

    /** {@link #lookupAsync(String, String, int[])} of a prompt written under {@code salt} (null or empty: none). */
    public CompletableFuture<LookupResponse> lookupAsync(String partitionKey, String completionId, String salt,
            int[] promptTokens) {
        LookupRequest.Builder r = LookupRequest.newBuilder().setPartitionKey(partitionKey)
                .setCompletionId(completionId == null ? "" : completionId).setSalt(salt == null ? "" : salt)
                .setPackedTokens(packed(promptTokens));
        return call(partitionKey, "Lookup", s -> s.lookup(r.build()));
    }

    /** Tokens as little-endian u32, as {@code packed_tokens} carries them. */
    private static com.google.protobuf.ByteString packed(int[] tokens) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(tokens.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(tokens);
        return com.google.protobuf.UnsafeByteOperations.unsafeWrap(b.array());
    }

    /** Lookup by block hashes the caller computed ({@link HashScheme#prompt}, with the partition's scheme and the salt mixed in); no token check. */
    public CompletableFuture<LookupResponse> lookupHashesAsync(String partitionKey, String completionId, long[] hashes) {
        LookupRequest.Builder r = LookupRequest.newBuilder().setPartitionKey(partitionKey)
                .setCompletionId(completionId == null ? "" : completionId);
        for (long h : hashes) {
            r.addBlockHashes(h);
        }
        return call(partitionKey, "Lookup", s -> s.lookup(r.build()));
    }

    /** Stores a chunk on its partition's server; completes with its location. */
    public CompletableFuture<WriteResponse> writeAsync(Chunk chunk) {
        return call(chunk.getPartitionKey(), "Write", s -> s.write(WriteRequest.newBuilder().setChunk(chunk).build()));
    }

    /** Stores chunks of one partition in one call. */
    public CompletableFuture<WriteBatchResponse> writeBatchAsync(List<Chunk> chunks) {
        if (chunks.isEmpty()) {
            return CompletableFuture.completedFuture(WriteBatchResponse.getDefaultInstance());
        }
        String partition = chunks.get(0).getPartitionKey();
        for (Chunk c : chunks) {
            if (!c.getPartitionKey().equals(partition)) {
                throw new IllegalArgumentException("a batch holds one partition; found '" + partition + "' and '"
                        + c.getPartitionKey() + "'");
            }
        }
        return call(partition, "WriteBatch", s -> s.writeBatch(WriteBatchRequest.newBuilder().addAllChunks(chunks).build()));
    }

    /**
     * Ends the pins of blocks of a partition written with {@code pinned} (see {@link Chunk}'s
     * {@code ttl_seconds} and {@code pinned}); the response counts those that were pinned.
     */
    public CompletableFuture<UnpinResponse> unpinAsync(String partitionKey, long... blockHashes) {
        UnpinRequest.Builder r = UnpinRequest.newBuilder().setPartitionKey(partitionKey);
        for (long h : blockHashes) {
            r.addBlockHashes(h);
        }
        UnpinRequest request = r.build();
        return call(partitionKey, "Unpin", s -> s.unpin(request));
    }

    /** Reads a block of the default partition. The response's {@code found} is false on a miss. */
    public CompletableFuture<ReadResponse> readAsync(com.google.protobuf.ByteString location) {
        return readAsync(container, location, null);
    }

    /**
     * Reads a block; with {@code expectedTokens} the server reports a block holding other tokens
     * (a hash collision) as a miss.
     */
    public CompletableFuture<ReadResponse> readAsync(String partitionKey, com.google.protobuf.ByteString location,
            int[] expectedTokens) {
        return call(partitionKey, "Read", s -> s.read(readRequest(partitionKey, location, expectedTokens)));
    }

    /** Reads blocks of one partition in one call; results come in request order. */
    public CompletableFuture<ReadBatchResponse> readBatchAsync(String partitionKey,
            List<com.google.protobuf.ByteString> locations) {
        ReadBatchRequest.Builder r = ReadBatchRequest.newBuilder();
        for (com.google.protobuf.ByteString l : locations) {
            r.addReads(readRequest(partitionKey, l, null));
        }
        return call(partitionKey, "ReadBatch", s -> s.readBatch(r.build()));
    }

    private static ReadRequest readRequest(String partitionKey, com.google.protobuf.ByteString location, int[] expected) {
        ReadRequest.Builder r = ReadRequest.newBuilder().setPartitionKey(partitionKey).setLocation(location);
        if (expected != null) {
            for (int t : expected) {
                r.addExpectedTokens(t);
            }
        }
        return r.build();
    }

    /** Health of the server that owns the partition. */
    public HealthResponse health(String partitionKey) {
        return await(call(partitionKey, "Health", s -> s.health(HealthRequest.getDefaultInstance())));
    }

    /** An empty call to the partition's server (the transport's own cost). */
    public CompletableFuture<Void> pingAsync(String partitionKey) {
        return call(partitionKey, "Ping", s -> s.ping(PingRequest.getDefaultInstance())).thenApply(r -> null);
    }

    /**
     * A Ping carrying {@code payload}, which the server ignores: the transport's own cost for a
     * request of that size (a benchmark's floor for calls that send as many bytes).
     */
    public CompletableFuture<Void> pingAsync(String partitionKey, com.google.protobuf.ByteString payload) {
        PingRequest request = PingRequest.newBuilder().setPayload(payload).build();
        return call(partitionKey, "Ping", s -> s.ping(request)).thenApply(r -> null);
    }

    /** Waits for a call; its failure is thrown as the {@link TokenCacheException} it is. */
    private static <T> T await(CompletableFuture<T> f) {
        try {
            return f.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof TokenCacheException t) {
                throw t;
            }
            throw e;
        }
    }

    private <T> CompletableFuture<T> call(String partitionKey, String method,
            Function<TokenCacheGrpc.TokenCacheFutureStub, ListenableFuture<T>> rpc) {
        Objects.requireNonNull(partitionKey, "partitionKey");
        if (closed.get()) {
            throw new IllegalStateException("the client is closed");
        }
        int owner = ring.ownerIndex(partitionKey);
        String server = ring.owner(partitionKey);
        TokenCacheGrpc.TokenCacheFutureStub stub = stubs[owner]
                .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
        CompletableFuture<T> result = new CompletableFuture<>();
        Futures.addCallback(rpc.apply(stub), new FutureCallback<T>() {
            @Override
            public void onSuccess(T value) {
                result.complete(value);
            }

            @Override
            public void onFailure(Throwable t) {
                result.completeExceptionally(TokenCacheException.of(t, server, method));
            }
        }, MoreExecutors.directExecutor());
        return result;
    }

    /** Closes every channel, waiting up to 5 s for calls in flight. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        for (ManagedChannel c : channels) {
            c.shutdown();
        }
        for (ManagedChannel c : channels) {
            try {
                if (!c.awaitTermination(5, TimeUnit.SECONDS)) {
                    c.shutdownNow();
                }
            } catch (InterruptedException e) {
                c.shutdownNow();
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Adds {@code authorization: Bearer <token>} to every call. */
    private static final class BearerToken extends CallCredentials {
        private static final Metadata.Key<String> AUTHORIZATION =
                Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
        private final String token;

        BearerToken(String token) {
            this.token = token;
        }

        @Override
        public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + token);
            applier.apply(headers);
        }
    }

    /** Validating builder; see each setter. */
    public static final class Builder {
        private List<String> endpoints;
        private String container = "default";
        private int blockSize = 128;
        private HashScheme hashScheme = HashScheme.MLKV_V1;
        private Duration deadline = Duration.ofSeconds(5);
        private int maxAttempts = 4;
        private int maxMessageBytes = TransportSettings.DEFAULT_MAX_MESSAGE_BYTES;
        private String bearerToken;
        private File trustCertificate;

        private Builder() {
        }

        /**
         * Servers as {@code host:port[,host:port...]}. Without this call the list comes from
         * {@value #SERVERS_ENV}.
         */
        public Builder endpoints(String commaSeparated) {
            Objects.requireNonNull(commaSeparated, "endpoints");
            List<String> list = new ArrayList<>();
            for (String e : commaSeparated.split(",")) {
                String s = e.trim();
                if (s.isEmpty()) {
                    continue;
                }
                int colon = s.lastIndexOf(':');
                if (colon <= 0 || colon == s.length() - 1) {
                    throw new IllegalArgumentException("endpoint '" + s + "' is not host:port");
                }
                try {
                    int port = Integer.parseInt(s.substring(colon + 1));
                    if (port < 1 || port > 65535) {
                        throw new NumberFormatException();
                    }
                } catch (NumberFormatException ex) {
                    throw new IllegalArgumentException("endpoint '" + s + "' has no valid port (1-65535)");
                }
                list.add(s);
            }
            if (list.isEmpty()) {
                throw new IllegalArgumentException("endpoints: no host:port in '" + commaSeparated + "'");
            }
            this.endpoints = list;
            return this;
        }

        /** The partition key calls use when they name none (default "default"). */
        public Builder container(String partitionKey) {
            if (partitionKey == null || partitionKey.isEmpty()) {
                throw new IllegalArgumentException("container (partition key) must not be empty");
            }
            this.container = partitionKey;
            return this;
        }

        /** Tokens per block; must equal the servers' block size (default 128). */
        public Builder blockSize(int tokens) {
            if (tokens <= 0) {
                throw new IllegalArgumentException("blockSize must be positive, was " + tokens);
            }
            this.blockSize = tokens;
            return this;
        }

        /**
         * The block hash scheme of the partitions this client writes (default
         * {@link HashScheme#MLKV_V1}); a server refuses chunks hashed under another scheme than
         * their partition's (Health reports each partition's).
         */
        public Builder hashScheme(HashScheme scheme) {
            if (scheme == null) {
                throw new IllegalArgumentException("hashScheme must not be null");
            }
            this.hashScheme = scheme;
            return this;
        }

        /** Deadline of each call, retries included (default 5 s). */
        public Builder deadline(Duration deadline) {
            if (deadline.isNegative() || deadline.isZero()) {
                throw new IllegalArgumentException("deadline must be positive, was " + deadline);
            }
            this.deadline = deadline;
            return this;
        }

        /** Attempts per call on UNAVAILABLE, first included (default 4, at most 5 as grpc allows). */
        public Builder maxAttempts(int attempts) {
            if (attempts < 1 || attempts > 5) {
                throw new IllegalArgumentException("maxAttempts must be 1-5, was " + attempts);
            }
            this.maxAttempts = attempts;
            return this;
        }

        /** Largest response accepted (default 16 MiB). */
        public Builder maxMessageBytes(int bytes) {
            this.maxMessageBytes = TransportSettings.Checks.maxMessageBytes(bytes);
            return this;
        }

        /** Sends {@code authorization: Bearer <token>} with every call. */
        public Builder bearerToken(String token) {
            this.bearerToken = TransportSettings.Checks.bearerToken(token);
            return this;
        }

        /** Uses TLS, trusting this PEM certificate (chain); without it the channel is plaintext. */
        public Builder trustCertificate(File pem) {
            this.trustCertificate = TransportSettings.Checks.pemFile("trustCertificate", pem);
            return this;
        }

        public TokenCacheClient build() {
            Builder b = this;
            if (endpoints == null) {
                String env = System.getenv(SERVERS_ENV);
                if (env == null || env.isBlank()) {
                    throw new IllegalStateException("no endpoints: call endpoints(...) or set " + SERVERS_ENV
                            + "=host:port[,host:port...]");
                }
                b = copy().endpoints(env);
            }
            return new TokenCacheClient(b);
        }

        private Builder copy() {
            Builder c = new Builder();
            c.endpoints = endpoints;
            c.container = container;
            c.blockSize = blockSize;
            c.hashScheme = hashScheme;
            c.deadline = deadline;
            c.maxAttempts = maxAttempts;
            c.maxMessageBytes = maxMessageBytes;
            c.bearerToken = bearerToken;
            c.trustCertificate = trustCertificate;
            return c;
        }
    }

    @Override
    public String toString() {
        return "TokenCacheClient" + Arrays.toString(ring.servers().toArray());
    }
}
