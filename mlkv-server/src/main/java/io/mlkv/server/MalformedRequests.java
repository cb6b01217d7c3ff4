package io.mlkv.server;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.io.InputStream;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Answers request bodies that do not parse with INVALID_ARGUMENT and a short reason.
 *
 * <p>Left to grpc, a body its protobuf marshaller cannot parse throws inside grpc's own listener:
 * the call ends as UNKNOWN ("Application error processing RPC") and grpc logs a SEVERE stack trace
 * per request, so garbage sent in a loop fills the server's disk. Here each method's request
 * marshaller is wrapped so that parsing never throws: a body that fails becomes a
 * {@link Malformed} value, and the call handler closes such a call itself. Refusals are logged at
 * most once per {@link #LOG_INTERVAL_NANOS}, with the count since the last line.
 */
final class MalformedRequests {
    private static final Logger LOG = LoggerFactory.getLogger(MalformedRequests.class);
    static final long LOG_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(10);
    /** Longest parser message quoted back to the client. */
    private static final int MAX_REASON_CHARS = 120;

    private final AtomicLong refused = new AtomicLong();
    private final AtomicLong refusedSinceLog = new AtomicLong();
    private final AtomicLong lastLogNanos = new AtomicLong(System.nanoTime() - LOG_INTERVAL_NANOS);

    /** A request body that did not parse, and why. */
    record Malformed(String reason) {
    }

    /** Requests refused as malformed since the server started. */
    long refused() {
        return refused.get();
    }

    /**
     * The same service, with every method's request parsing guarded; its schema (what server
     * reflection reports) stays.
     */
    ServerServiceDefinition guard(ServerServiceDefinition service) {
        io.grpc.ServiceDescriptor original = service.getServiceDescriptor();
        io.grpc.ServiceDescriptor.Builder descriptor = io.grpc.ServiceDescriptor.newBuilder(original.getName())
                .setSchemaDescriptor(original.getSchemaDescriptor());
        java.util.List<ServerMethodDefinition<?, ?>> methods = new java.util.ArrayList<>();
        for (ServerMethodDefinition<?, ?> m : service.getMethods()) {
            ServerMethodDefinition<?, ?> guarded = guard(m);
            methods.add(guarded);
            descriptor.addMethod(guarded.getMethodDescriptor());
        }
        ServerServiceDefinition.Builder b = ServerServiceDefinition.builder(descriptor.build());
        methods.forEach(b::addMethod);
        return b.build();
    }

    private <Q, R> ServerMethodDefinition<Object, R> guard(ServerMethodDefinition<Q, R> m) {
        MethodDescriptor<Q, R> original = m.getMethodDescriptor();
        MethodDescriptor.Marshaller<Q> parser = original.getRequestMarshaller();
        MethodDescriptor.Marshaller<Object> tolerant = new MethodDescriptor.Marshaller<>() {
            @Override
            @SuppressWarnings("unchecked")
            public InputStream stream(Object value) {
                return parser.stream((Q) value);
            }

            @Override
            public Object parse(InputStream body) {
                try {
                    return parser.parse(body);
                } catch (RuntimeException e) {
                    return new Malformed(reason(e));
                }
            }
        };
        MethodDescriptor<Object, R> guarded = original.toBuilder(tolerant, original.getResponseMarshaller()).build();
        ServerCallHandler<Q, R> handler = m.getServerCallHandler();
        return ServerMethodDefinition.create(guarded, (call, headers) -> startCall(call, headers, original, handler));
    }

    @SuppressWarnings("unchecked")
    private <Q, R> ServerCall.Listener<Object> startCall(ServerCall<Object, R> call, Metadata headers,
            MethodDescriptor<Q, R> original, ServerCallHandler<Q, R> handler) {
        ServerCall<Q, R> typed = new ForwardingServerCall.SimpleForwardingServerCall<>((ServerCall<Q, R>) (ServerCall<?, R>) call) {
            @Override
            public MethodDescriptor<Q, R> getMethodDescriptor() {
                return original;
            }
        };
        ServerCall.Listener<Q> inner = handler.startCall(typed, headers);
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>((ServerCall.Listener<Object>) inner) {
            private boolean refusedThis;

            @Override
            public void onMessage(Object message) {
                if (refusedThis) {
                    return;
                }
                if (message instanceof Malformed bad) {
                    refusedThis = true;
                    note(original.getBareMethodName(), bad.reason());
                    call.close(Status.INVALID_ARGUMENT.withDescription("malformed " + original.getBareMethodName()
                            + " request: " + bad.reason()), new Metadata());
                    return;
                }
                super.onMessage(message);
            }

            @Override
            public void onHalfClose() {
                if (!refusedThis) {
                    super.onHalfClose();
                }
            }
        };
    }

    private void note(String method, String reason) {
        refused.incrementAndGet();
        refusedSinceLog.incrementAndGet();
        long now = System.nanoTime();
        long last = lastLogNanos.get();
        if (now - last >= LOG_INTERVAL_NANOS && lastLogNanos.compareAndSet(last, now)) {
            long count = refusedSinceLog.getAndSet(0);
            LOG.warn("refused {} malformed request(s) in the last {} s as INVALID_ARGUMENT (latest: {}: {})", count,
                    TimeUnit.NANOSECONDS.toSeconds(LOG_INTERVAL_NANOS), method, reason);
        }
    }

    private static String reason(RuntimeException e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String msg = root.getMessage() == null ? root.getClass().getSimpleName() : root.getMessage();
        msg = msg.replaceAll("\\s+", " ");
        return msg.length() <= MAX_REASON_CHARS ? msg : msg.substring(0, MAX_REASON_CHARS) + "...";
    }
}
