package io.mlkv.server;

import io.grpc.Status;
import io.mlkv.server.metrics.RpcMetrics;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.net.InetAddress;

/**
 * The server's figures in Prometheus' text format over HTTP ({@code GET /metrics}) on a port of
 * its own: calls by method and status code, their latency (a histogram per method), blocks looked
 * up and found (the hit rate), backend reads, write-behind uploads pending (the backend queue
 * depth) and failed, evictions and expirations per partition, and malformed requests refused. Served by the Prometheus Java client's HTTP
 * server on the gRPC server's address. It hears of every call from the server's {@link RpcMetrics}
 * interceptor, refused ones too.
 */
final class PrometheusEndpoint implements RpcMetrics.CallListener, AutoCloseable {
    private final Counter calls;
    private final Histogram latency;
    private final HTTPServer http;

    PrometheusEndpoint(String host, int port, ChunkCache cache, MalformedRequests malformed) throws IOException {
        PrometheusRegistry registry = new PrometheusRegistry();
        calls = Counter.builder().name("mlkv_token_cache_calls_total").help("Calls finished, by method and gRPC status code")
                .labelNames("method", "code").register(registry);
        latency = Histogram.builder().name("mlkv_token_cache_call_duration_seconds")
                .help("Time from a call's start to its close, by method").labelNames("method").classicOnly()
                .classicUpperBounds(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
                .register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_blocks_asked_total")
                .help("Blocks looked up or read (the hit rate's denominator)")
                .callback(c -> c.call(cache.blocksAsked.get())).register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_blocks_hit_total").help("Blocks found")
                .callback(c -> c.call(cache.blocksHit.get())).register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_backend_reads_total").help("Blocks read from the shared backend")
                .callback(c -> c.call(cache.backendReads.get())).register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_upload_failures_total")
                .help("Write-behind uploads to the backend that failed").callback(c -> c.call(cache.uploadFailures.get()))
                .register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_malformed_requests_total")
                .help("Requests refused because their body did not parse").callback(c -> c.call(malformed.refused()))
                .register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_evictions_total")
                .help("Blocks removed to keep a partition to its capacity, by partition").labelNames("partition")
                .callback(c -> cache.partitions().forEach(p -> c.call(p.lifetimes.evictions(), p.key))).register(registry);
        CounterWithCallback.builder().name("mlkv_token_cache_expirations_total")
                .help("Blocks removed as expired (their TTL passed), by partition").labelNames("partition")
                .callback(c -> cache.partitions().forEach(p -> c.call(p.lifetimes.expirations(), p.key))).register(registry);
        GaugeWithCallback.builder().name("mlkv_token_cache_uploads_pending")
                .help("Write-behind uploads queued for the backend (its queue depth)")
                .callback(g -> g.call(cache.pendingUploads())).register(registry);
        http = HTTPServer.builder().inetAddress(InetAddress.getByName(host)).port(port).registry(registry).buildAndStart();
    }

    /** The port the endpoint listens on (the chosen one when asked for port 0). */
    int port() {
        return http.getPort();
    }

    @Override
    public void closed(String method, Status status, long nanos) {
        calls.labelValues(method, status.getCode().name()).inc();
        latency.labelValues(method).observe(nanos / 1e9);
    }

    @Override
    public void close() {
        http.close();
    }
}
