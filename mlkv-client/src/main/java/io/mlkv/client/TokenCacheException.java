package io.mlkv.client;

import io.grpc.Status;
import java.util.Locale;

/**
 * A token cache call that failed: the gRPC status, the server the call went to and the call,
 * with a message that says what to check. Futures of {@link TokenCacheClient} complete with it
 * (so {@code join()} throws a {@link java.util.concurrent.CompletionException} whose cause it is);
 * the client's blocking methods throw it directly. The gRPC exception is its cause.
 */
public final class TokenCacheException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final transient Status status;
    private final String server;
    private final String call;

    TokenCacheException(Status status, String server, String call, Throwable cause) {
        super(describe(status, server, call, cause), cause);
        this.status = status;
        this.server = server;
        this.call = call;
    }

    /** Turns whatever a call failed with into this exception (already one: returned as is). */
    static TokenCacheException of(Throwable t, String server, String call) {
        if (t instanceof TokenCacheException e) {
            return e;
        }
        return new TokenCacheException(Status.fromThrowable(t), server, call, t);
    }

    /** The gRPC status the call ended with. */
    public Status status() {
        return status;
    }

    /** The status code, for switching on. */
    public Status.Code code() {
        return status.getCode();
    }

    /** The server ({@code host:port}) the call went to. */
    public String server() {
        return server;
    }

    /** The call, for example {@code Lookup}. */
    public String call() {
        return call;
    }

    /** Whether the failure was the TLS handshake (an untrusted or mismatched certificate). */
    public boolean isTlsFailure() {
        return tlsCause(getCause()) != null;
    }

    private static String describe(Status status, String server, String call, Throwable cause) {
        StringBuilder sb = new StringBuilder().append(status.getCode()).append(" from ").append(server)
                .append(" during ").append(call);
        if (status.getDescription() != null) {
            sb.append(": ").append(status.getDescription());
        }
        Throwable tls = tlsCause(cause);
        if (tls != null) {
            sb.append(" (TLS handshake failed: ").append(tls.getMessage())
                    .append("; check the client's trustCertificate and that the server uses TLS)");
        } else {
            switch (status.getCode()) {
                case UNAUTHENTICATED -> sb.append(" (check the client's bearerToken against the server's --auth-token-file)");
                case UNAVAILABLE -> sb.append(" (is a server listening there? check the endpoint list"
                        + (status.getCause() != null ? "; " + status.getCause().getMessage() : "") + ")");
                case DEADLINE_EXCEEDED -> sb.append(" (raise the client's deadline or check the server's load)");
                default -> { }
            }
        }
        return sb.toString();
    }

    private static Throwable tlsCause(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof javax.net.ssl.SSLException
                    || c.getClass().getName().toLowerCase(Locale.ROOT).contains("ssl")) {
                return c;
            }
        }
        return null;
    }
}
