package io.mlkv.server;

import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.mlkv.client.HashScheme;
import io.mlkv.client.TransportSettings;
import io.mlkv.client.proto.TokenCacheGrpc;
import io.mlkv.core.Durability;
import io.mlkv.server.backend.AzureBlobBackend;
import io.mlkv.server.metrics.RpcMetrics;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running prompt-token cache server: the gRPC service over a local tiered store (DRAM over
 * RocksDB), optionally backed by Azure Blob Storage.
 *
 * <pre>{@code
 * try (TokenCacheServer server = TokenCacheServer.builder().port(50051).dataDirectory(dir).start()) {
 *     server.awaitTermination();
 * }
 * }</pre>
 *
 * <p>Transport: TCP_NODELAY, keepalive pings every 10 s (clients may ping as often, even without
 * calls), a 64 MiB flow-control window, 200 concurrent streams per connection (see
 * {@link TransportSettings}). {@link #close()} first reports {@code NOT_SERVING} on the health
 * service, then stops accepting calls, lets calls in flight finish (up to 10 s), drains
 * write-behind uploads and closes the store, saying so in the log.
 *
 * <p>Operations: the standard {@code grpc.health.v1.Health} service (answered without the bearer
 * token, as load balancers probe it; the overall status {@code ""} and the cache's own service name
 * report {@code SERVING} while the server runs) and server reflection
 * ({@code grpc.reflection.v1}, behind the token like the cache's calls), so {@code grpcurl} and
 * health probes work without the project's protos.
 */
public final class TokenCacheServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TokenCacheServer.class);
    static final Pattern PARTITION_KEY = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    private final Server server;
    private final ChunkCache cache;
    private final ExecutorService executor;
    private final ScheduledExecutorService reporter;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final MalformedRequests malformed = new MalformedRequests();
    private final HealthStatusManager health = new HealthStatusManager();
    /** Null unless the builder asked for a Prometheus endpoint. */
    private final PrometheusEndpoint prometheus;

    private TokenCacheServer(Builder b) throws IOException {
        AzureBlobBackend backend = b.azureConnectionString == null ? null
                : new AzureBlobBackend(b.azureConnectionString, b.azureContainer);
        this.cache = new ChunkCache(b.dataDirectory, b.dramBytes, b.localDurability, b.gpu, b.blockSize, b.schemes(),
                b.bloomExpectedBlocks, b.bloomFpp, backend, b.writeMode, b.uploadThreads, b.uploadQueue,
                b.partitionCapacityBlocks, b.clock);
        AtomicInteger threadNo = new AtomicInteger();
        this.executor = Executors.newFixedThreadPool(b.threads, r -> {
            Thread t = new Thread(r, "mlkv-rpc-" + threadNo.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        if (b.prometheusPort >= 0) {
            try {
                this.prometheus = new PrometheusEndpoint(b.host, b.prometheusPort, cache, malformed);
            } catch (IOException | RuntimeException e) {
                executor.shutdownNow();
                cache.close();
                throw e;
            }
        } else {
            this.prometheus = null;
        }
        RpcMetrics metrics = new RpcMetrics(prometheus == null ? RpcMetrics.CallListener.NONE : prometheus);
        List<io.grpc.ServerInterceptor> interceptors = new ArrayList<>();
        if (b.bearerToken != null) {
            interceptors.add(new AuthInterceptor(b.bearerToken));
        }
        interceptors.add(metrics); // added last, so it runs first and times refused calls too
        ServerServiceDefinition service = ServerInterceptors.intercept(
                malformed.guard(new TokenCacheService(cache, b.maxLookupTokens, b.maxBatch).bindService()), interceptors);
        InetSocketAddress address = new InetSocketAddress(b.host, b.port);
        NettyServerBuilder sb = b.tlsCertificate == null ? NettyServerBuilder.forAddress(address)
                : NettyServerBuilder.forAddress(address, TlsServerCredentials.create(b.tlsCertificate, b.tlsKey));
        sb.executor(executor)
                .addService(service)
                .addService(health.getHealthService())
                .addService(ServerInterceptors.intercept(ProtoReflectionServiceV1.newInstance(), interceptors))
                .flowControlWindow(TransportSettings.FLOW_CONTROL_WINDOW_BYTES)
                .maxConcurrentCallsPerConnection(TransportSettings.MAX_CONCURRENT_STREAMS)
                .keepAliveTime(TransportSettings.KEEPALIVE_INTERVAL.toMillis(), TimeUnit.MILLISECONDS)
                .keepAliveTimeout(TransportSettings.KEEPALIVE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                .permitKeepAliveTime(TransportSettings.KEEPALIVE_INTERVAL.toMillis(), TimeUnit.MILLISECONDS)
                .permitKeepAliveWithoutCalls(true)
                .withChildOption(ChannelOption.TCP_NODELAY, true)
                .maxInboundMessageSize(b.maxMessageBytes);
        try {
            this.server = sb.build().start();
        } catch (IOException | RuntimeException e) {
            executor.shutdownNow();
            if (prometheus != null) {
                prometheus.close();
            }
            cache.close();
            throw e;
        }
        health.setStatus("", HealthCheckResponse.ServingStatus.SERVING);
        health.setStatus(TokenCacheGrpc.SERVICE_NAME, HealthCheckResponse.ServingStatus.SERVING);
        if (b.metricsInterval > 0) {
            reporter = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "mlkv-metrics");
                t.setDaemon(true);
                return t;
            });
            MetricsLine line = new MetricsLine(metrics, cache, b.metricsOut);
            reporter.scheduleAtFixedRate(line::print, b.metricsInterval, b.metricsInterval, TimeUnit.SECONDS);
        } else {
            reporter = null;
        }
        LOG.info("token cache listening on {}:{} ({}), block size {}, partitions {}, backend {}", b.host, port(),
                b.tlsCertificate == null ? "plaintext" : "TLS", b.blockSize, b.partitions, cache.backendName());
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Requests refused because their body did not parse, since the server started. */
    public long malformedRequests() {
        return malformed.refused();
    }

    /** The port of the Prometheus endpoint ({@code GET /metrics}), or -1 without one. */
    public int prometheusPort() {
        return prometheus == null ? -1 : prometheus.port();
    }

    /** The port the server listens on (the chosen one when built with port 0). */
    public int port() {
        return server.getPort();
    }

    /** Blocks until the server is shut down. */
    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /** Idempotent; see the class comment. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        RuntimeException failure = null;
        int port = port();
        // Probes see NOT_SERVING from here on, while calls in flight finish.
        health.enterTerminalState();
        LOG.info("token cache on port {} draining: health NOT_SERVING, no new calls, calls in flight finish (up to 10 s)",
                port);
        try {
            if (reporter != null) {
                reporter.shutdownNow();
            }
            server.shutdown();
            if (!server.awaitTermination(10, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            failure = e;
        }
        executor.shutdownNow();
        if (prometheus != null) {
            prometheus.close();
        }
        try {
            cache.close();
            LOG.info("token cache on port {} closed: calls finished, uploads drained, store closed", port);
        } catch (RuntimeException e) {
            if (failure == null) {
                failure = e;
            } else {
                failure.addSuppressed(e);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Prints one console line of metrics per interval. */
    private static final class MetricsLine {
        private final RpcMetrics metrics;
        private final ChunkCache cache;
        private final PrintStream out;
        private long lastAsked;
        private long lastHit;
        private long lastNanos = System.nanoTime();

        MetricsLine(RpcMetrics metrics, ChunkCache cache, PrintStream out) {
            this.metrics = metrics;
            this.cache = cache;
            this.out = out;
        }

        void print() {
            long now = System.nanoTime();
            double seconds = (now - lastNanos) / 1e9;
            lastNanos = now;
            long asked = cache.blocksAsked.get();
            long hit = cache.blocksHit.get();
            long dAsked = asked - lastAsked;
            long dHit = hit - lastHit;
            lastAsked = asked;
            lastHit = hit;
            StringBuilder s = new StringBuilder("[metrics]");
            for (Map.Entry<String, RpcMetrics.Interval> e : metrics.snapshot().entrySet()) {
                RpcMetrics.Interval i = e.getValue();
                if (i.calls() == 0) {
                    continue;
                }
                s.append(String.format(Locale.ROOT, " %s %.0f/s p50 %.2f p99 %.2f ms%s;", e.getKey(), i.calls() / seconds,
                        i.latencyMicros().getValueAtPercentile(50) / 1000.0,
                        i.latencyMicros().getValueAtPercentile(99) / 1000.0,
                        i.errors() == 0 ? "" : " errors " + i.errors()));
            }
            s.append(String.format(Locale.ROOT, " block hit rate %s", dAsked == 0 ? "-"
                    : String.format(Locale.ROOT, "%.1f %%", 100.0 * dHit / dAsked)));
            int pending = cache.pendingUploads();
            if (pending > 0) {
                s.append(" uploads pending ").append(pending);
            }
            out.println(s);
        }
    }

    /** Validating builder: each setter checks its argument; {@link #start()} checks the rest. */
    public static final class Builder {
        private String host = "127.0.0.1";
        private int port = 50051;
        private int prometheusPort = -1;
        private int threads = Math.max(2, Runtime.getRuntime().availableProcessors());
        private int blockSize = 128;
        private List<String> partitions = List.of("default");
        private HashScheme hashScheme = HashScheme.MLKV_V1;
        private final Map<String, HashScheme> partitionSchemes = new HashMap<>();
        private Path dataDirectory;
        private long dramBytes = 256L << 20;
        private Durability localDurability = Durability.WRITE_THROUGH;
        private io.mlkv.core.GpuMode gpu = io.mlkv.core.GpuMode.OFF;
        private long bloomExpectedBlocks = 10_000_000;
        private double bloomFpp = 0.01;
        private long partitionCapacityBlocks;
        private java.util.function.LongSupplier clock = System::currentTimeMillis;
        private String azureConnectionString;
        private String azureContainer = "mlkv-chunks";
        private WriteMode writeMode = WriteMode.THROUGH;
        private int uploadThreads = 4;
        private int uploadQueue = 10_000;
        private String bearerToken;
        private File tlsCertificate;
        private File tlsKey;
        private int maxMessageBytes = TransportSettings.DEFAULT_MAX_MESSAGE_BYTES;
        private int maxLookupTokens = 1 << 20;
        private int maxBatch = 4096;
        private int metricsInterval = 10;
        private PrintStream metricsOut = System.out;

        private Builder() {
        }

        /** Address to bind (default 127.0.0.1, this machine only; the server command refuses a non-loopback address without a token unless told). */
        public Builder host(String host) {
            this.host = TransportSettings.Checks.host(host);
            return this;
        }

        /** TCP port, 0 for any free one (default 50051). */
        public Builder port(int port) {
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("port must be 0-65535, was " + port);
            }
            this.port = port;
            return this;
        }

        /**
         * Serves Prometheus' text format at {@code http://HOST:PORT/metrics} on the server's address
         * ({@code 0}: any free port, see {@link TokenCacheServer#prometheusPort()}); off by default.
         */
        public Builder prometheus(int port) {
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("prometheus port must be 0-65535, was " + port);
            }
            this.prometheusPort = port;
            return this;
        }

        /** Threads running calls (default: the number of cores, at least 2). */
        public Builder threads(int threads) {
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be at least 1, was " + threads);
            }
            this.threads = threads;
            return this;
        }

        /** Tokens per block, fixed for a deployment (default 128). */
        public Builder blockSize(int tokens) {
            if (tokens < 1 || tokens > 65536 - ChunkRecord.HEADER_FLOATS) {
                throw new IllegalArgumentException("blockSize must be 1-" + (65536 - ChunkRecord.HEADER_FLOATS)
                        + ", was " + tokens);
            }
            this.blockSize = tokens;
            return this;
        }

        /** Partitions served: 1-64 characters of letters, digits, '.', '_' and '-' (default "default"). */
        public Builder partitions(List<String> keys) {
            if (keys.isEmpty()) {
                throw new IllegalArgumentException("partitions must not be empty");
            }
            for (String k : keys) {
                if (!PARTITION_KEY.matcher(k).matches()) {
                    throw new IllegalArgumentException("partition key '" + k
                            + "' must be 1-64 characters of letters, digits, '.', '_' and '-'");
                }
            }
            if (keys.stream().distinct().count() != keys.size()) {
                throw new IllegalArgumentException("partitions has duplicates: " + keys);
            }
            this.partitions = List.copyOf(keys);
            return this;
        }

        /**
         * The block hash scheme of partitions created by this server that {@link #partitionHashScheme}
         * does not name (default {@link HashScheme#MLKV_V1}). A partition keeps the scheme it was
         * created with: starting on a data directory where it has another is refused.
         */
        public Builder hashScheme(HashScheme scheme) {
            if (scheme == null) {
                throw new IllegalArgumentException("hashScheme must not be null");
            }
            this.hashScheme = scheme;
            return this;
        }

        /** The block hash scheme of one partition (one of {@link #partitions}). */
        public Builder partitionHashScheme(String key, HashScheme scheme) {
            if (key == null || scheme == null) {
                throw new IllegalArgumentException("partitionHashScheme needs a key and a scheme");
            }
            partitionSchemes.put(key, scheme);
            return this;
        }

        /** Each served partition's scheme, in the order of {@link #partitions}. */
        private Map<String, HashScheme> schemes() {
            for (String k : partitionSchemes.keySet()) {
                if (!partitions.contains(k)) {
                    throw new IllegalArgumentException("a hash scheme is given for partition '" + k
                            + "', which is not among the partitions served " + partitions);
                }
            }
            Map<String, HashScheme> m = new LinkedHashMap<>();
            for (String k : partitions) {
                m.put(k, partitionSchemes.getOrDefault(k, hashScheme));
            }
            return m;
        }

        /** Directory of the local store; required. */
        public Builder dataDirectory(Path dir) {
            if (dir == null) {
                throw new IllegalArgumentException("dataDirectory must not be null");
            }
            this.dataDirectory = dir;
            return this;
        }

        /** DRAM tier size (default 256 MiB). */
        public Builder dramBytes(long bytes) {
            if (bytes < (1 << 20)) {
                throw new IllegalArgumentException("dramBytes must be at least 1 MiB, was " + bytes);
            }
            this.dramBytes = bytes;
            return this;
        }

        /**
         * Whether the local store takes an HBM tier: OFF (default: the GPU's memory stays with
         * whatever serves the model), AUTO (where a GPU can be used) or ON (fail without one).
         */
        public Builder gpu(io.mlkv.core.GpuMode mode) {
            this.gpu = java.util.Objects.requireNonNull(mode, "gpu");
            return this;
        }

        /** Local store durability (default WRITE_THROUGH: every acknowledged write is in RocksDB's log). */
        public Builder localDurability(Durability d) {
            this.localDurability = java.util.Objects.requireNonNull(d, "localDurability");
            return this;
        }

        /** Bloom filter size per partition: blocks expected and target false-positive rate. */
        public Builder bloom(long expectedBlocks, double fpp) {
            if (expectedBlocks < 1) {
                throw new IllegalArgumentException("bloom expected blocks must be positive, was " + expectedBlocks);
            }
            if (!(fpp > 0 && fpp < 1)) {
                throw new IllegalArgumentException("bloom false-positive rate must be in (0, 1), was " + fpp);
            }
            this.bloomExpectedBlocks = expectedBlocks;
            this.bloomFpp = fpp;
            return this;
        }

        /**
         * Most blocks each partition keeps locally (default 0: unbounded). Past it, a write evicts
         * the partition's oldest stored blocks that are not pinned (first in, first out; lookups
         * do not refresh blocks); with a blob backend only the local copy goes.
         */
        public Builder partitionCapacityBlocks(long blocks) {
            if (blocks < 0) {
                throw new IllegalArgumentException("partition capacity must be 0 (unbounded) or a number of blocks, was " + blocks);
            }
            this.partitionCapacityBlocks = blocks;
            return this;
        }

        /** The clock of block expiry, in epoch milliseconds (default the system's; tests pass their own). */
        Builder clock(java.util.function.LongSupplier millis) {
            this.clock = java.util.Objects.requireNonNull(millis, "clock");
            return this;
        }

        /** Azure Blob Storage behind the local cache (Azurite's connection string works). */
        public Builder azure(String connectionString, String container) {
            if (connectionString == null || connectionString.isBlank()) {
                throw new IllegalArgumentException("azure connection string must not be blank");
            }
            if (container == null || !container.matches("[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")) {
                throw new IllegalArgumentException("azure container '" + container
                        + "' must be 3-63 lower-case letters, digits and single dashes");
            }
            this.azureConnectionString = connectionString;
            this.azureContainer = container;
            return this;
        }

        /** Write-through (default) or write-behind to the blob backend; see {@link WriteMode}. */
        public Builder writeMode(WriteMode mode, int uploadThreads, int uploadQueue) {
            java.util.Objects.requireNonNull(mode, "writeMode");
            if (uploadThreads < 1 || uploadQueue < 1) {
                throw new IllegalArgumentException("upload threads and queue must be positive, were " + uploadThreads
                        + " and " + uploadQueue);
            }
            this.writeMode = mode;
            this.uploadThreads = uploadThreads;
            this.uploadQueue = uploadQueue;
            return this;
        }

        /** Requires {@code authorization: Bearer <token>} on every call. */
        public Builder bearerToken(String token) {
            this.bearerToken = TransportSettings.Checks.bearerToken(token);
            return this;
        }

        /** Serves TLS with a PEM certificate chain and PKCS#8 PEM private key. */
        public Builder tls(File certificateChain, File privateKey) {
            this.tlsCertificate = TransportSettings.Checks.pemFile("TLS certificate", certificateChain);
            this.tlsKey = TransportSettings.Checks.pemFile("TLS private key", privateKey);
            return this;
        }

        /** Largest request accepted; larger ones get RESOURCE_EXHAUSTED (default 16 MiB). */
        public Builder maxMessageBytes(int bytes) {
            this.maxMessageBytes = TransportSettings.Checks.maxMessageBytes(bytes);
            return this;
        }

        /** Most tokens in one Lookup (default 1,048,576). */
        public Builder maxLookupTokens(int tokens) {
            if (tokens < 1) {
                throw new IllegalArgumentException("maxLookupTokens must be positive, was " + tokens);
            }
            this.maxLookupTokens = tokens;
            return this;
        }

        /** Most chunks or reads in one batch call (default 4096). */
        public Builder maxBatch(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("maxBatch must be positive, was " + n);
            }
            this.maxBatch = n;
            return this;
        }

        /** Console metrics every {@code seconds} (default 10); 0 turns them off. */
        public Builder metrics(int seconds, PrintStream out) {
            if (seconds < 0) {
                throw new IllegalArgumentException("metrics interval must not be negative, was " + seconds);
            }
            this.metricsInterval = seconds;
            this.metricsOut = java.util.Objects.requireNonNull(out, "metrics output");
            return this;
        }

        /**
         * Opens the store (rebuilding the Bloom filters from it and from the backend) and starts
         * serving.
         *
         * @throws IOException if the port cannot be bound
         */
        public TokenCacheServer start() throws IOException {
            if (dataDirectory == null) {
                throw new IllegalStateException("dataDirectory is required: the local store's directory");
            }
            if ((long) maxLookupTokens * 4 > maxMessageBytes) {
                LOG.warn("maxLookupTokens {} can need more than maxMessageBytes {}; such Lookups get RESOURCE_EXHAUSTED",
                        maxLookupTokens, maxMessageBytes);
            }
            checkPortFree();
            try {
                return new TokenCacheServer(this);
            } catch (UncheckedIOException e) {
                throw e.getCause();
            }
        }

        /**
         * Fails, naming the address, if the port is taken, before the data directory is created or
         * the store opened. (Another process can still take it in between; then the server's own
         * bind fails the same way.)
         */
        private void checkPortFree() throws IOException {
            if (port == 0) {
                return;
            }
            try (java.net.ServerSocket probe = new java.net.ServerSocket()) {
                probe.setReuseAddress(true);
                probe.bind(new InetSocketAddress(host, port));
            } catch (IOException e) {
                java.net.BindException b = new java.net.BindException(host + ":" + port + ": " + e.getMessage());
                b.initCause(e);
                throw b;
            }
        }
    }
}
