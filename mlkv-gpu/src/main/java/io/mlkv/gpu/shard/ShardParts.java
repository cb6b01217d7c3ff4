package io.mlkv.gpu.shard;

import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/** Waiting for the parts of a call that run on several shards at once. */
public final class ShardParts {
    private ShardParts() {
    }

    /**
     * Waits for every part, even after one failed (their buffers must be free before the next call),
     * then rethrows the first failure with the others suppressed; an interrupt while waiting is kept
     * for the caller.
     *
     * @return {@code parts}, every one complete
     */
    public static <F extends Future<?>> List<F> awaitAll(String op, List<F> parts) {
        RuntimeException failure = null;
        boolean interrupted = false;
        for (F f : parts) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    RuntimeException r = cause instanceof RuntimeException re ? re
                            : new IllegalStateException(op + ": a shard failed: " + cause, cause);
                    if (failure == null) {
                        failure = r;
                    } else if (failure != r) {
                        failure.addSuppressed(r);
                    }
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure != null) {
            throw failure;
        }
        return parts;
    }

    /** The value of a part that {@link #awaitAll} saw complete normally. */
    public static <T> T done(Future<T> f) {
        try {
            return f.get();
        } catch (InterruptedException | ExecutionException e) {
            throw new IllegalStateException("a completed shard call has no result", e);
        }
    }
}
