package io.mlkv.server.metrics;

import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Counts calls and records their latency per method (an interceptor, so every call is seen,
 * failed ones included). {@link #snapshot()} returns and resets the interval's figures.
 * Thread-safe.
 */
public final class RpcMetrics implements ServerInterceptor {
    private final Map<String, MethodStats> methods = new ConcurrentHashMap<>();
    /** Also told of every finished call (an exporter); {@link CallListener#NONE} if nothing else listens. */
    private final CallListener listener;

    /** Told of every call as it closes: its method, status and nanoseconds since it started. */
    @FunctionalInterface
    public interface CallListener {
        CallListener NONE = (method, status, nanos) -> { };

        void closed(String method, Status status, long nanos);
    }

    public RpcMetrics() {
        this(CallListener.NONE);
    }

    public RpcMetrics(CallListener listener) {
        this.listener = listener;
    }

    /** One method's figures over one interval. */
    public record Interval(long calls, long errors, Histogram latencyMicros) {
    }

    private static final class MethodStats {
        final LongAdder calls = new LongAdder();
        final LongAdder errors = new LongAdder();
        final Recorder latency = new Recorder(3);
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getBareMethodName();
        MethodStats stats = methods.computeIfAbsent(method, m -> new MethodStats());
        long started = System.nanoTime();
        return next.startCall(new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            @Override
            public void close(Status status, Metadata trailers) {
                long nanos = System.nanoTime() - started;
                stats.calls.increment();
                if (!status.isOk()) {
                    stats.errors.increment();
                }
                stats.latency.recordValue(Math.max(1, nanos / 1000));
                listener.closed(method, status, nanos);
                super.close(status, trailers);
            }
        }, headers);
    }

    /** Per method (sorted by name): calls, errors and latencies since the last snapshot. */
    public Map<String, Interval> snapshot() {
        Map<String, Interval> out = new TreeMap<>();
        methods.forEach((name, s) -> out.put(name, new Interval(s.calls.sumThenReset(), s.errors.sumThenReset(),
                s.latency.getIntervalHistogram())));
        return out;
    }
}
