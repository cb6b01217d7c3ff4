package io.mlkv.client;

import java.time.Duration;

/**
 * The HTTP/2 transport settings that servers and clients of the token cache share.
 *
 * <p>grpc-java cannot raise the HTTP/2 max frame size above its 16 KiB default (its Netty transport
 * exposes no setting for it), so large messages travel in many frames; the wide flow-control
 * window keeps them from stalling.
 */
public final class TransportSettings {
    /** HTTP/2 flow-control window per stream and connection: 64 MiB. */
    public static final int FLOW_CONTROL_WINDOW_BYTES = 64 << 20;
    /** Keepalive ping interval; servers permit pings this often, even without calls. */
    public static final Duration KEEPALIVE_INTERVAL = Duration.ofSeconds(10);
    /** How long a keepalive ping may go unanswered before the connection is dropped. */
    public static final Duration KEEPALIVE_TIMEOUT = Duration.ofSeconds(20);
    /** Concurrent streams (calls) a server allows on one connection. */
    public static final int MAX_CONCURRENT_STREAMS = 200;
    /** Default largest message either side accepts: 16 MiB. */
    public static final int DEFAULT_MAX_MESSAGE_BYTES = 16 << 20;

    private TransportSettings() {
    }

    /**
     * The checks of settings that a server and a client of the token cache both take, with one
     * message each, so the two builders refuse the same value the same way.
     */
    public static final class Checks {
        private Checks() {
        }

        /** Largest message accepted, at least 1 KiB. */
        public static int maxMessageBytes(int bytes) {
            if (bytes < 1024) {
                throw new IllegalArgumentException("maxMessageBytes must be at least 1024, was " + bytes);
            }
            return bytes;
        }

        /** A bearer token: not null, not blank. */
        public static String bearerToken(String token) {
            if (token == null || token.isBlank()) {
                throw new IllegalArgumentException("bearerToken must not be blank");
            }
            return token;
        }

        /** A PEM file that exists; {@code what} names it in the message. */
        public static java.io.File pemFile(String what, java.io.File pem) {
            if (pem == null || !pem.isFile()) {
                throw new IllegalArgumentException(what + ": no such file " + pem);
            }
            return pem;
        }

        /** A host name or address, not blank. */
        public static String host(String host) {
            if (host == null || host.isBlank()) {
                throw new IllegalArgumentException("host must not be blank");
            }
            return host;
        }
    }
}
