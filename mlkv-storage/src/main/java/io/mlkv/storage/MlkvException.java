package io.mlkv.storage;

/**
 * The one exception type for I/O, device and storage failures. It names the failed operation
 * and, where a native library reported it, the native status by name (for example
 * {@code IOError(NoSpace) during flush (n=4096)}).
 */
public final class MlkvException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final StatusCode status;
    private final String operation;
    private final String nativeCode;

    public MlkvException(StatusCode status, String operation, String nativeCode, String message,
            Throwable cause) {
        super(format(status, operation, nativeCode, message), cause);
        this.status = status;
        this.operation = operation;
        this.nativeCode = nativeCode;
    }

    public MlkvException(StatusCode status, String operation, String message) {
        this(status, operation, null, message, null);
    }

    private static String format(StatusCode status, String operation, String nativeCode,
            String message) {
        StringBuilder sb = new StringBuilder().append(status);
        if (nativeCode != null) {
            sb.append(' ').append(nativeCode);
        }
        sb.append(" during ").append(operation);
        if (message != null && !message.isEmpty()) {
            sb.append(": ").append(message);
        }
        return sb.toString();
    }

    /** The kind of failure. */
    public StatusCode status() {
        return status;
    }

    /** The operation that failed, for example {@code "flush (n=4096)"}. */
    public String operation() {
        return operation;
    }

    /** The native library's status by name, or {@code null} if none was involved. */
    public String nativeCode() {
        return nativeCode;
    }
}
