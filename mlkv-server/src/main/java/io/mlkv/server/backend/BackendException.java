package io.mlkv.server.backend;

/** A blob storage call failed; the message names the operation and the service's error. */
public final class BackendException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BackendException(String operation, String error, Throwable cause) {
        super("blob backend: " + operation + " failed: " + error, cause);
    }
}
